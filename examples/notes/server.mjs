// The notes example inside your own Fastify app, next to your own routes:
//   node examples/notes/server.mjs   → MCP at http://127.0.0.1:3000/notes/mcp (and /notes/sse)
import Fastify from 'fastify'
import sseMcp from 'sse-mcp-server'
import notes from './notes.mjs'

export async function createServer () {
  const app = Fastify({ logger: true, forceCloseConnections: true })
  app.get('/', async () => ({ hello: 'my own route' }))
  await app.register(sseMcp, { prefix: '/notes' })
  notes(app.mcp)
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = await createServer()
  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
}
