import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { hostAllowed, originAllowed } from '../src/config.js'
import { cap } from '../src/budget.js'
import { refuse } from '../src/http-error.js'

import type { RoutePolicy } from './route-policy.js'
export type { RoutePolicy } from './route-policy.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered after this plugin, with its declared policy (for tests and docs). */
    routePolicies: ReadonlyArray<{ method: string, url: string, policy: RoutePolicy | undefined }>
  }
}

/** The usual policies, so routes say what they mean in one word. */
export const POLICY = {
  /** MCP traffic, docs, metrics: a client credential when auth is on, same-origin only. */
  client: { access: 'client', crossOrigin: 'guarded' },
  /** Operator actions (POST /broadcast). */
  operator: { access: 'operator', crossOrigin: 'guarded' },
  /** Probes: anyone, any Host (load balancers), never rate limited. */
  probe: { access: 'public', crossOrigin: 'open', rateLimit: false },
  /** Public documents (OAuth metadata): anyone, any origin. */
  open: { access: 'public', crossOrigin: 'open' },
  /** Public but same-origin only (METRICS_PUBLIC, DOCS_PUBLIC). */
  publicGuarded: { access: 'public', crossOrigin: 'guarded' }
} as const satisfies Record<string, RoutePolicy>

const ACCESS = new Set(['public', 'client', 'operator'])
const CROSS_ORIGIN = new Set(['guarded', 'open'])

function validPolicy (p: unknown): p is RoutePolicy {
  if (typeof p !== 'object' || p === null) return false
  const o = p as Record<string, unknown>
  return ACCESS.has(o.access as string) && CROSS_ORIGIN.has(o.crossOrigin as string) &&
    (o.rateLimit === undefined || typeof o.rateLimit === 'boolean')
}

/**
 * The one guard. Every route declares a policy in its `config`; a route that does not makes the app
 * refuse to start (naming it). One onRequest hook reads `request.routeOptions.config.policy` — the
 * route the router chose, however the path was spelt — and applies in order: Origin/Host (403),
 * failed-auth limit (429), auth (401 + WWW-Authenticate), operator role (403), rate limit (429).
 * A request no route matched has no policy and goes to the plain not-found handler (404).
 * Register after CORS (so refusals carry CORS headers) and before any route.
 */
const policyPlugin: FastifyPluginAsync = async (app) => {
  const { allowedOrigins, allowedHosts } = app.config
  const routes: Array<{ method: string, url: string, policy: RoutePolicy | undefined }> = []
  app.decorate('routePolicies', routes)

  app.addHook('onRoute', (route) => {
    const policy = route.config?.policy
    for (const method of [route.method].flat()) {
      routes.push({
        method,
        url: route.url ?? route.path,
        policy: validPolicy(policy) ? policy : undefined
      })
    }
  })
  app.addHook('onReady', async () => {
    const missing = routes.filter((r) => r.policy === undefined).map((r) => `${r.method} ${r.url}`)
    if (missing.length > 0) {
      throw new Error(`Routes without a valid access policy (config.policy): ${missing.join(', ')}; declare { access, crossOrigin } on each`)
    }
  })

  /** Why a cross-origin request is refused (DNS rebinding), or undefined when it is same-origin. */
  function crossOriginRefusal (request: FastifyRequest): string | undefined {
    const origin = request.headers.origin
    if (origin !== undefined && !originAllowed(origin, allowedOrigins)) return `Origin ${cap(origin, 100)} is not allowed`
    // request.host honours X-Forwarded-Host when TRUST_PROXY is on (behind nginx).
    const host = request.host
    if (!hostAllowed(host, allowedHosts)) return `Host ${cap(host, 100)} is not allowed`
    // An absolute-form target (`POST http://x/mcp`) names its own authority, which wins over Host.
    const target = request.raw.url ?? '/'
    if (!target.startsWith('/')) {
      const authority = URL.canParse(target) ? new URL(target).host : undefined
      if (authority === undefined || !hostAllowed(authority, allowedHosts)) return `Host ${cap(authority ?? target, 100)} is not allowed`
    }
    return undefined
  }

  const { auth } = app
  app.addHook('onRequest', async (request, reply) => {
    const policy = request.routeOptions.config.policy
    // No route (the not-found handler) or CORS's own preflight route: nothing here serves data.
    if (policy === undefined) return
    if (policy.crossOrigin === 'guarded') {
      const refusal = crossOriginRefusal(request)
      if (refusal !== undefined) return await refuse(reply, 403, refusal)
    }
    if (policy.access !== 'public' && auth.enabled) {
      const wait = auth.failures.retryAfter(request.ip)
      if (wait !== undefined) {
        request.log.info('too many failed authentications')
        return await refuse(reply, 429, `Too many failed authentications from this address; retry in ${wait} s`, { retryAfter: wait })
      }
      const outcome = await auth.authenticate(request)
      if (!outcome.ok) {
        if (outcome.reason === 'invalid') auth.failures.record(request.ip)
        request.log.info({ reason: `${outcome.reason} token` }, 'unauthorized')
        return await refuse(reply, 401, outcome.reason === 'missing' ? 'A bearer token is required' : 'The bearer token is invalid', { headers: { 'www-authenticate': auth.challenge(outcome.reason) } })
      }
      request.identity = outcome.identity
      request.scopes = outcome.scopes
      request.role = outcome.role
      request.authInfo = outcome.auth
      if (policy.access === 'operator' && outcome.role !== 'operator') {
        const challenge = auth.operatorChallenge()
        if (challenge !== undefined) reply.header('WWW-Authenticate', challenge)
        return await refuse(reply, 403, 'This route needs an operator credential (OPERATOR_TOKENS or the operator scope)')
      }
    }
    if (policy.rateLimit !== false && app.limitRequest !== null) return await app.limitRequest(request, reply)
  })
}

export default fp(policyPlugin, { name: 'policy', dependencies: ['config', 'auth', 'rate-limit'] })
