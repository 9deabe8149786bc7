import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const BroadcastBody = Type.Object({
  event: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\r\\n:]+$', description: 'SSE event name for the public stream' }),
  data: Type.Optional(Type.Unknown())
}, { additionalProperties: false })

/** POST /broadcast: an operator message to every open stream (behind auth when auth is on). */
const broadcastRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/broadcast', {
    schema: {
      body: BroadcastBody,
      response: {
        202: Type.Object({
          accepted: Type.Boolean(),
          streams: Type.Integer({ description: 'open streams on this process' }),
          fanoutMs: Type.Number({ description: 'time to log the event and write it to every stream on this process' })
        })
      }
    }
  }, async (request, reply) => {
    const started = performance.now()
    const { event, data } = request.body
    // Public stream + MCP session streams, and the 2026-07-28 listen streams that opted in.
    await Promise.all([app.hub.broadcast(event, data ?? null), app.mcp.changed({ kind: 'broadcast', event, data: data ?? null })])
    const fanoutMs = Math.round((performance.now() - started) * 100) / 100
    return reply.code(202).send({ accepted: true, streams: app.hub.stats().streams, fanoutMs })
  })
}

export default broadcastRoutes
