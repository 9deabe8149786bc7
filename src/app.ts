import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions, type RawServerDefault } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { readFileSync } from 'node:fs'
import { resolveConfig, type Config } from './config.js'
import { cap } from './budget.js'
import sseMcp, { kWholeApp, type SseMcpOptions } from './plugin.js'
import { RequestLogController } from '../plugins/request-log.js'

export interface BuildOptions {
  /** Overrides the pino logger options (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
  /** Fastify server options that win over the ones the service chooses (e.g. `forceCloseConnections`). */
  server?: FastifyServerOptions
}

/** The service's options: any part of the Config, the plugin's switches (`builtins` defaults to true here) and BuildOptions. */
export type BuildAppOptions = Omit<SseMcpOptions, typeof kWholeApp> & { logLevel?: Config['logLevel'] } & BuildOptions

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
 * The service: a Fastify server configured for long-lived streams with the sse-mcp-server plugin
 * over the whole app (its guards cover every route, so every route must declare a policy). Takes a
 * partial config merged over the defaults — `buildApp()`, `buildApp({ authTokens })` — and, for
 * older call sites, BuildOptions as a second argument. `src/server.ts` calls it and listens.
 */
export async function buildApp (options: BuildAppOptions = {}, more: BuildOptions = {}): Promise<App> {
  const { logger, server, builtins = true, ...input } = { ...options, ...more }
  const config = resolveConfig(input)
  const https = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }
    : null
  const app = Fastify({
    logger: logger ?? loggerOptions(config),
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
    ...(https ? { https } : {}),
    ...server
  }).withTypeProvider<TypeBoxTypeProvider>()

  // A path no route serves is a plain 404 whatever the token: no auth, no challenge, no echo of
  // the whole URL (OAuth-probing clients ask for /.well-known/oauth-authorization-server, /register).
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send({
    statusCode: 404,
    error: 'Not Found',
    message: `Route ${request.method}:${cap(request.url, 100)} not found`
  }))
  const { logLevel: _level, ...pluginConfig } = config
  await app.register(sseMcp, { ...pluginConfig, builtins, prefix: input.prefix, [kWholeApp]: true })
  return app
}

/**
 * The service's app: a Fastify instance with the TypeBox type provider. Spelled out (not inferred) so
 * the declaration names only exported types, valid under every moduleResolution (bundler, node10 too).
 */
export type App = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse<IncomingMessage>, FastifyBaseLogger, TypeBoxTypeProvider>
