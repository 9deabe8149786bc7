// The ceiling: a bare Fastify route that parses the same JSON-RPC body and returns a JSON-RPC
// result of the same shape as a tools/call echo, with no MCP logic at all.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.post('/mcp', async (request, reply) => {
  const body = request.body
  reply.header('mcp-session-id', 'bare')
  return { jsonrpc: '2.0', id: body.id, result: { content: [{ type: 'text', text: body.params?.arguments?.message ?? '' }] } }
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
console.log('listening')
