import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { POLICY } from '../plugins/policy.js'

const MetricsHeaders = Type.Object({
  accept: Type.Optional(Type.String())
})

/** True when the client asks for JSON rather than the Prometheus text format. */
function wantsJson (accept: string | undefined): boolean {
  if (accept === undefined) return false
  const types = accept.split(',').map((part) => (part.split(';', 1)[0] ?? '').trim().toLowerCase())
  const json = types.indexOf('application/json')
  if (json === -1) return false
  // A scraper sends text/plain or openmetrics first; a person's tool sends application/json.
  const text = types.findIndex((t) => t === 'text/plain' || t === 'application/openmetrics-text')
  return text === -1 || json < text
}

/**
 * GET /metrics: Prometheus text exposition (prom-client), or a JSON summary with
 * `Accept: application/json`. Behind auth when auth is on, unless METRICS_PUBLIC=true; same-origin only.
 */
const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/metrics', { config: { policy: app.config.metricsPublic ? POLICY.publicGuarded : POLICY.client }, schema: { headers: MetricsHeaders } }, async (request, reply) => {
    reply.header('Cache-Control', 'no-store')
    if (wantsJson(request.headers.accept)) {
      return reply.type('application/json; charset=utf-8').send(await app.metrics.json())
    }
    return reply.type(app.metrics.contentType).send(await app.metrics.text())
  })
}

export default metricsRoutes
