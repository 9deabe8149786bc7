import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import { resolveConfig, type ConfigInput } from './config.js'
import configPlugin from '../plugins/config.js'
import lifecyclePlugin from '../plugins/lifecycle.js'
import budgetsPlugin from '../plugins/budgets.js'
import jsonBodyPlugin from '../plugins/json-body.js'
import corsPlugin from '../plugins/cors.js'
import authPlugin from '../plugins/auth.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import policyPlugin from '../plugins/policy.js'
import redisPlugin from '../plugins/redis.js'
import hubPlugin from '../plugins/sse-hub.js'
import mcpPlugin from '../plugins/mcp.js'
import metricsPlugin from '../plugins/metrics.js'
import healthRoutes from '../routes/health.js'
import broadcastRoutes from '../routes/broadcast.js'
import mcpRoutes from '../routes/mcp.js'
import sseRoutes from '../routes/sse.js'
import oauthMetadataRoutes from '../routes/oauth-metadata.js'
import metricsRoutes from '../routes/metrics.js'
import docsRoutes from '../routes/docs.js'
import { loadToolModules } from './tools/loader.js'
import { isRedisUnavailable, REDIS_RETRY_AFTER_S, REDIS_UNAVAILABLE } from './hub/redis.js'
import { refuse } from './http-error.js'
import { kEngine } from './mcp/engine.js'

/**
 * An app's own authentication (the plugin's `authenticate` option): who made this request, or null
 * to refuse it (401). Used by the route policy like the built-in bearer tokens: a request whose
 * bearer token matches AUTH_TOKENS/OPERATOR_TOKENS/OAuth is the built-in's, any other goes to the hook.
 */
export type Authenticate = (request: FastifyRequest) => Promise<CustomAuth | null>
/** What an `authenticate` hook returns: the caller's subject, and optionally scopes, claims and role. */
export interface CustomAuth {
  subject: string
  scopes?: string[]
  claims?: Record<string, unknown>
  role?: 'client' | 'operator'
}

/**
 * Internal (not exported by the package): the service's app puts the guards (CORS, auth, policy,
 * rate limit, JSON reader, error handler) on the whole app, so every route — its own and test
 * routes — must declare a policy. Without it (the plugin in someone's app) they cover only the
 * routes the plugin adds.
 */
export const kWholeApp = Symbol('sse-mcp-server whole app')

/**
 * Options of the plugin: any part of the typed Config (but `logLevel`: the host app's logger and
 * Fastify's own `logLevel` register option decide), plus the switches below.
 */
export type SseMcpOptions = Omit<ConfigInput, 'logLevel'> & {
  /** Registers the demo tools (current_time, echo, …); default false in the plugin, true in the service. */
  builtins?: boolean
  /**
   * The app's own authentication: returns who made the request (`{ subject, scopes?, claims?, role? }`,
   * handlers read it as `ctx.auth`) or null to refuse it with 401. Routes that need a client use it
   * like the built-in credentials (a bearer token that matches AUTH_TOKENS/OPERATOR_TOKENS/OAuth is theirs).
   */
  authenticate?: Authenticate
  /** Fastify's prefix: applies to every route the plugin adds (and to the HTTP+SSE `endpoint` event). */
  prefix?: string
  [kWholeApp]?: boolean
}

/**
 * Client mistakes are answered with a 4xx JSON body and logged without a stack trace; only genuine
 * server faults are 5xx, and they never leak internals.
 */
export async function errorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (isRedisUnavailable(err)) {
    // Not a bug: Redis is down or failing over. Bounded by REDIS_COMMAND_TIMEOUT_MS; the client retries.
    request.log.warn({ err: err.message }, 'request refused: Redis unavailable')
    return await refuse(reply, 503, REDIS_UNAVAILABLE, { retryAfter: REDIS_RETRY_AFTER_S })
  }
  const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  if (status >= 500) request.log.error({ err }, 'request failed')
  else request.log.info({ code: err.code, message: err.message }, 'client error')
  return await refuse(reply, status, status >= 500 ? STATUS_CODES[status] ?? 'Internal Server Error' : err.message)
}

/** A prefix as Fastify spells it: '' or '/x' (no trailing slash). */
function normalPrefix (prefix: string | undefined): string {
  const p = (prefix ?? '').replace(/\/+$/, '')
  return p === '' || p.startsWith('/') ? p : `/${p}`
}

/**
 * The whole MCP server as a Fastify plugin. Embedded in a host app it owns only its routes and
 * names: its state (config, lifecycle, Redis, hub, engine), guards, CORS, JSON reader and error
 * handler live in one encapsulated context, and the host gets one decorator, `app.mcp` (the public
 * API, src/mcp/api.ts, with the hub's `broadcast`). The service (`buildApp`, kWholeApp) puts it all
 * on its own app, so the guards cover every route there.
 */
const sseMcp: FastifyPluginAsync<SseMcpOptions> = async (app, opts) => {
  const { builtins = false, prefix, authenticate, [kWholeApp]: wholeApp = false, ...input } = opts
  const config = resolveConfig(input)
  const mcpPrefix = normalPrefix(prefix)

  const server = async (scope: FastifyInstance): Promise<void> => {
    await scope.register(configPlugin, { config })
    await scope.register(lifecyclePlugin)
    await scope.register(budgetsPlugin)
    await scope.register(redisPlugin)
    await scope.register(hubPlugin)
    await scope.register(mcpPlugin, { builtins, privateReads: authenticate !== undefined })
    // MCP_TOOLS / `tools`: before ready (with REDIS_URL the registry is locked once ready).
    if (config.tools.length > 0) {
      const files = await loadToolModules(config.tools, scope)
      scope.log.info({ files }, 'tool modules loaded')
    }
    await guardedRoutes(scope)
  }
  const guardedRoutes = async (scope: FastifyInstance): Promise<void> => {
    scope.setErrorHandler(errorHandler)
    await scope.register(jsonBodyPlugin)
    // CORS first (its headers reach every refusal), then the one guard: every route registered
    // after it must declare a policy (plugins/policy.ts).
    await scope.register(corsPlugin)
    await scope.register(authPlugin, { authenticate })
    await scope.register(rateLimitPlugin)
    await scope.register(policyPlugin)
    await scope.register(metricsPlugin)
    // RFC 9728 puts the metadata at the origin's /.well-known, whatever the prefix.
    await scope.register(oauthMetadataRoutes, { mcpPrefix })
    await scope.register(async (routes) => {
      await routes.register(healthRoutes)
      await routes.register(broadcastRoutes)
      await routes.register(mcpRoutes)
      await routes.register(sseRoutes)
      await routes.register(metricsRoutes)
      await routes.register(docsRoutes)
    }, { prefix: mcpPrefix })
    // A browser's preflight for each of those paths (and no other).
    scope.corsPreflights()
  }
  if (wholeApp) {
    await server(app)
    return
  }
  let inner: FastifyInstance | undefined
  await app.register(async (scope) => {
    await server(scope)
    inner = scope
  })
  if (inner === undefined) throw new Error('sse-mcp-server: the plugin did not load')
  app.decorate('mcp', inner.mcp)
  app.decorate(kEngine, inner[kEngine])
}

export default fp(sseMcp, { name: 'sse-mcp-server', fastify: '5.x' })
