// app.mjs — the MCP server inside your own Fastify app, beside your own routes.
import Fastify from 'fastify'
import sseMcp from 'sse-mcp-server'
import { Type } from '@sinclair/typebox'
import { z } from 'zod'

const app = Fastify({ forceCloseConnections: true })
app.get('/hello', async () => ({ hello: 'world' }))

// Any part of the config (camelCase); `prefix` applies to every route the server adds.
await app.register(sseMcp, { prefix: '/api', rateLimitMax: 600 })

// A TypeBox schema: the handler's arguments are inferred ({ a: number, b: number }).
app.mcp.tool({
  name: 'add',
  description: 'Adds two numbers',
  inputSchema: Type.Object({ a: Type.Number(), b: Type.Number() }),
  handler: ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] })
})

// Any Standard Schema that gives a JSON Schema (zod 4) works the same way.
app.mcp.tool({
  name: 'shout',
  description: 'Upper-cases a text',
  inputSchema: z.object({ text: z.string().max(1000) }),
  handler: ({ text }) => ({ content: [{ type: 'text', text: text.toUpperCase() }] })
})

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
// Streamable HTTP: http://127.0.0.1:3000/api/mcp — HTTP+SSE: http://127.0.0.1:3000/api/sse
console.log(`listening ${app.listeningOrigin}`)
