import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { POLICY } from '../plugins/policy.js'
import { refuse } from '../src/http-error.js'
import { PROTOCOL_VERSIONS, SERVER_NAME, SERVER_VERSION } from '../src/meta.js'
import { kEngine } from '../src/mcp/engine.js'
import { hostAllowed, originAllowed } from '../src/config.js'

const HealthResponse = Type.Object({
  status: Type.Literal('ok'),
  timestamp: Type.String(),
  server: Type.String(),
  version: Type.String(),
  protocolVersions: Type.Array(Type.String()),
  uptime: Type.Number({ description: 'seconds since start' }),
  streams: Type.Optional(Type.Integer({ description: 'open SSE streams on this process (to whom /metrics is open without a token)' })),
  sessions: Type.Optional(Type.Integer({ description: 'live MCP sessions (to whom /metrics is open without a token)' }))
})

const ReadyResponse = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('draining'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), Type.Boolean())
})

/** Not ready: the refusal shape every 4xx/5xx has (src/http-error.ts), with the readiness report beside it. */
const NotReadyResponse = Type.Composite([
  Type.Object({ statusCode: Type.Literal(503), error: Type.String(), message: Type.String() }),
  ReadyResponse
])

/**
 * Liveness (/health) and readiness (/ready) probes; both are public even when auth is on, from any
 * Host (load balancers). The stream and session counts are told only to whom /metrics is open
 * without a token: a same-origin request (Host and Origin allowed) with auth off or METRICS_PUBLIC;
 * anyone else (a DNS-rebinding page, a stranger with auth on) gets plain liveness.
 */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { allowedHosts, allowedOrigins, metricsPublic } = app.config
  const countsOpen = !app.auth.enabled || metricsPublic
  app.get('/health', { config: { policy: POLICY.probe }, schema: { response: { 200: HealthResponse } } }, async (request) => {
    const origin = request.headers.origin
    const told = countsOpen && hostAllowed(request.host, allowedHosts) && (origin === undefined || originAllowed(origin, allowedOrigins))
    return {
      status: 'ok' as const,
      timestamp: new Date().toISOString(),
      server: SERVER_NAME,
      version: SERVER_VERSION,
      protocolVersions: [...PROTOCOL_VERSIONS],
      uptime: Math.round((Date.now() - app.lifecycle.startedAt) / 1000),
      ...(told ? { streams: app.hub.stats().streams, sessions: app[kEngine].stats().sessions } : {})
    }
  })

  app.get('/ready', { config: { policy: POLICY.probe }, schema: { response: { 200: ReadyResponse, 503: NotReadyResponse } } }, async (_request, reply) => {
    const { ready, checks } = await app.lifecycle.readiness()
    if (ready) return { status: 'ready' as const, checks }
    const status = app.lifecycle.draining ? 'draining' as const : 'unavailable' as const
    const down = Object.keys(checks).filter((name) => !checks[name])
    const message = status === 'draining' ? 'Not ready: draining for shutdown' : `Not ready: ${down.join(', ')} down`
    return await refuse(reply, 503, message, { body: { status, checks } })
  })
}

export default healthRoutes
