import Fastify, { type FastifyError, type FastifyServerOptions } from 'fastify'
import sensible from '@fastify/sensible'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { Config } from './config.js'
import { cap } from './budget.js'
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
import healthRoutes from '../routes/health.js'
import broadcastRoutes from '../routes/broadcast.js'
import mcpRoutes from '../routes/mcp.js'
import sseRoutes from '../routes/sse.js'
import oauthMetadataRoutes from '../routes/oauth-metadata.js'
import metricsPlugin from '../plugins/metrics.js'
import { RequestLogController } from '../plugins/request-log.js'
import metricsRoutes from '../routes/metrics.js'
import docsRoutes from '../routes/docs.js'

export interface BuildOptions {
  /** Overrides the pino logger options (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
}

/** Secrets never reach the logs. */
export const LOG_REDACT = ['req.headers.authorization', 'req.headers.cookie', 'req.query.token', 'req.query.access_token']

function loggerOptions (config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: LOG_REDACT, censor: '[redacted]' },
    // Pretty output for a person at a terminal, JSON for everything else (files, collectors, CI).
    ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {})
  }
}

/**
 * Builds the whole service from a validated config: one plugin per concern, composed in order.
 * Tests call this and use `app.inject`; `src/server.ts` calls it and listens.
 */
export async function buildApp (config: Config, options: BuildOptions = {}) {
  const https = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }
    : null
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config),
    bodyLimit: config.bodyLimit,
    // A hop count trusts that many proxies in front of us (nginx = 1).
    trustProxy: typeof config.trustProxy === 'number'
      ? (_addr: string, hop: number) => hop < (config.trustProxy as number)
      : config.trustProxy,
    // Long-lived SSE sockets must not hold up app.close().
    forceCloseConnections: true,
    // One log line per request, with MCP session id and JSON-RPC method (plugins/request-log.ts).
    logController: new RequestLogController(),
    return503OnClosing: true,
    requestTimeout: 30_000,
    keepAliveTimeout: 65_000,
    routerOptions: { ignoreTrailingSlash: true },
    ...(https ? { https } : {})
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Client mistakes are answered with a 4xx JSON body and logged without a stack trace;
  // only genuine server faults are 5xx, and they never leak internals.
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
    if (status >= 500) request.log.error({ err }, 'request failed')
    else request.log.info({ code: err.code, message: err.message }, 'client error')
    return reply.code(status).send({
      statusCode: status,
      error: STATUS_CODES[status] ?? 'Error',
      message: status >= 500 ? 'Internal Server Error' : err.message
    })
  })

  // A path no route serves is a plain 404 whatever the token: no auth, no challenge, no echo of
  // the whole URL (OAuth-probing clients ask for /.well-known/oauth-authorization-server, /register).
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send({
    statusCode: 404,
    error: 'Not Found',
    message: `Route ${request.method}:${cap(request.url, 100)} not found`
  }))

  await app.register(configPlugin, { config })
  await app.register(lifecyclePlugin)
  await app.register(sensible)
  await app.register(jsonBodyPlugin)
  // CORS first (its headers reach every refusal and it answers preflights), then the one guard:
  // every route registered after it must declare a policy (plugins/policy.ts).
  await app.register(corsPlugin)
  await app.register(authPlugin)
  await app.register(rateLimitPlugin)
  await app.register(policyPlugin)
  await app.register(redisPlugin)
  await app.register(hubPlugin)
  await app.register(mcpPlugin)
  await app.register(metricsPlugin)
  await app.register(healthRoutes)
  await app.register(broadcastRoutes)
  await app.register(mcpRoutes)
  await app.register(sseRoutes)
  await app.register(oauthMetadataRoutes)
  await app.register(metricsRoutes)
  await app.register(docsRoutes)
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
