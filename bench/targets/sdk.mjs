// The official SDK (@modelcontextprotocol/sdk 1.x) Streamable HTTP server with an echo tool,
// on a plain node:http server. MODE=stateful: one transport per session (its documented pattern);
// MODE=stateless: a new server + transport per request (sessionIdGenerator undefined).
import { createServer } from 'node:http'
import { randomUUID } from 'node:crypto'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'

const stateful = process.env.MODE !== 'stateless'

function makeServer () {
  const server = new McpServer({ name: 'sdk-bench', version: '1.0.0' })
  server.registerTool('echo', { description: 'Echo', inputSchema: { message: z.string() } }, async ({ message }) => ({ content: [{ type: 'text', text: message }] }))
  return server
}

async function readBody (req) {
  const chunks = []
  for await (const c of req) chunks.push(c)
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined
}

const transports = new Map()
const http = createServer(async (req, res) => {
  try {
    const body = req.method === 'POST' ? await readBody(req) : undefined
    if (!stateful) {
      const server = makeServer()
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
      res.on('close', () => { transport.close(); server.close() })
      await server.connect(transport)
      await transport.handleRequest(req, res, body)
      return
    }
    const sid = req.headers['mcp-session-id']
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined
    if (transport === undefined && req.method === 'POST' && isInitializeRequest(body)) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (id) => { transports.set(id, transport) }
      })
      transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId) }
      await makeServer().connect(transport)
    }
    if (transport === undefined) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"no session"}')
      return
    }
    await transport.handleRequest(req, res, body)
  } catch (err) {
    if (!res.headersSent) res.writeHead(500).end(String(err))
  }
})
http.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'))
