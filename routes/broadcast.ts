import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { POLICY } from '../plugins/policy.js'
import { utf8Bytes } from '../src/budget.js'
import { refuse } from '../src/http-error.js'
import { kEngine } from '../src/mcp/engine.js'

const BroadcastBody = Type.Object({
  event: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\r\\n:]+$', description: 'SSE event name for the public stream' }),
  data: Type.Optional(Type.Unknown())
}, { additionalProperties: false })

/**
 * POST /broadcast: an operator message to every open stream. With auth on it needs an operator
 * credential (OPERATOR_TOKENS or the OAuth operator scope; client tokens get 403); with auth off it
 * is open to same-origin callers. `data` is at most MAX_BROADCAST_BYTES of JSON text (413 beyond);
 * its depth is bounded by the JSON reader (plugins/json-body.ts).
 */
const broadcastRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const maxBytes = app.config.budgets.broadcastBytes
  app.post('/broadcast', {
    config: { policy: POLICY.operator },
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
    const { event } = request.body
    const data = request.body.data ?? null
    const bytes = utf8Bytes(JSON.stringify(data))
    if (bytes > maxBytes) {
      app.budgetRefusals.count('broadcast_bytes')
      return await refuse(reply, 413, `Broadcast data is ${bytes} bytes of JSON; the limit is ${maxBytes} (MAX_BROADCAST_BYTES)`)
    }
    // Public stream + MCP session streams, and the 2026-07-28 listen streams that opted in.
    // Both run to the end; a failure of either (Redis unavailable: the event could not be logged) refuses
    // the broadcast — 503 + Retry-After from the error handler — rather than report it accepted.
    const results = await Promise.allSettled([app.hub.broadcast(event, data), app[kEngine].changed({ kind: 'broadcast', event, data })])
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const fanoutMs = Math.round((performance.now() - started) * 100) / 100
    return reply.code(202).send({ accepted: true, streams: app.hub.stats().streams, fanoutMs })
  })
}

export default broadcastRoutes
