import fp from 'fastify-plugin'
import sensible from '@fastify/sensible'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import { resolveConfig, type ConfigInput } from './config.js'
import configPlugin from '../plugins/config.js'
import lifecyclePlugin from '../plugins/lifecycle.js'
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
import { httpError } from './http-error.js'

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
    return await reply.code(503).header('retry-after', String(REDIS_RETRY_AFTER_S)).send(httpError(503, REDIS_UNAVAILABLE))
  }
  const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  if (status >= 500) request.log.error({ err }, 'request failed')
  else request.log.info({ code: err.code, message: err.message }, 'client error')
  return await reply.code(status).send({
    statusCode: status,
    error: STATUS_CODES[status] ?? 'Error',
    message: status >= 500 ? 'Internal Server Error' : err.message
  })
}

/** A prefix as Fastify spells it: '' or '/x' (no trailing slash). */
function normalPrefix (prefix: string | undefined): string {
  const p = (prefix ?? '').replace(/\/+$/, '')
  return p === '' || p.startsWith('/') ? p : `/${p}`
}

/**
 * The whole MCP server as a Fastify plugin. The state every part shares (`app.config`,
 * `app.lifecycle`, `app.redis`, `app.hub`, `app.mcp`) is decorated on the app it is registered in;
 * the guards and the routes live in their own encapsulated context, so the host's own routes,
 * JSON parser, error handler and hooks stay as they were.
 */
const sseMcp: FastifyPluginAsync<SseMcpOptions> = async (app, opts) => {
  const { builtins = false, prefix, [kWholeApp]: wholeApp = false, ...input } = opts
  const config = resolveConfig(input)
  const mcpPrefix = normalPrefix(prefix)
  await app.register(configPlugin, { config })
  await app.register(lifecyclePlugin)
  await app.register(redisPlugin)
  await app.register(hubPlugin)
  await app.register(mcpPlugin, { builtins })
  // MCP_TOOLS / `tools`: before ready (with REDIS_URL the registry is locked once ready).
  if (config.tools.length > 0) {
    const files = await loadToolModules(config.tools, app)
    app.log.info({ files }, 'tool modules loaded')
  }

  const guardedRoutes = async (scope: FastifyInstance): Promise<void> => {
    scope.setErrorHandler(errorHandler)
    await scope.register(sensible)
    await scope.register(jsonBodyPlugin)
    // CORS first (its headers reach every refusal and it answers preflights), then the one guard:
    // every route registered after it must declare a policy (plugins/policy.ts).
    await scope.register(corsPlugin)
    await scope.register(authPlugin)
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
  }
  if (wholeApp) await guardedRoutes(app)
  else await app.register(guardedRoutes)
}

export default fp(sseMcp, { name: 'sse-mcp-server', fastify: '5.x' })
