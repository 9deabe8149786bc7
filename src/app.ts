import Fastify, { type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, type FastifyServerOptions, type RawServerDefault } from 'fastify'
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { readFileSync } from 'node:fs'
import { resolveConfig, type Config } from './config.js'
import { cap } from './budget.js'
import { refuse } from './http-error.js'
import sseMcp, { kWholeApp, type SseMcpOptions } from './plugin.js'
import { RequestLogController, sessionFingerprinter } from '../plugins/request-log.js'
import { trustProxyFunction } from './trust-proxy.js'
import { boundHttp1OverHttp2, limitConnections } from './connections.js'

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
 * partial config merged over the defaults, with BuildOptions beside it — `buildApp()`,
 * `buildApp({ authTokens, logger: false })`. `src/server.ts` calls it and listens.
 */
export async function buildApp (options: BuildAppOptions = {}): Promise<App> {
  const { logger, server, builtins = true, authenticate, ...input } = options
  const config = resolveConfig(input)
  // Node's own bounds on a request's arrival (checked every connectionsCheckingInterval, so that
  // the timeouts hold within a quarter of the headers timeout). requestTimeout covers receiving the
  // request only: a stream's GET has fully arrived once its headers have, so streams are not cut.
  const arrival = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.headersTimeoutMs / 4)))
  }
  const https = config.tls
    ? {
        cert: readFileSync(config.tls.certFile),
        key: readFileSync(config.tls.keyFile),
        // A socket that never completes the TLS handshake is bounded like one that sends no header.
        handshakeTimeout: config.headersTimeoutMs,
        ...arrival
      }
    : null
  const serverOptions: FastifyHttpOptions<HttpServer> = {
    logger: logger ?? loggerOptions(config),
    bodyLimit: config.bodyLimit,
    // X-Forwarded-* only from the proxies TRUST_PROXY names by address (src/trust-proxy.ts).
    trustProxy: config.trustProxy === false ? false : trustProxyFunction(config.trustProxy),
    // Long-lived SSE sockets must not hold up app.close().
    forceCloseConnections: true,
    // One log line per request, with the session's fingerprint (never its id) and JSON-RPC method
    // (plugins/request-log.ts).
    logController: new RequestLogController(sessionFingerprinter(config.stateSecret)),
    return503OnClosing: true,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: arrival,
    routerOptions: { ignoreTrailingSlash: true },
    ...(https ? { https } : {}),
    ...server
  }
  if (config.http2 && https !== null) {
    // HTTP/2 over TLS (ALPN), HTTP/1.1 on the same port for clients that do not speak it. Every
    // transport works over both (test/tls.test.ts); the hub leaves out the Connection header h2
    // forbids. The server stays typed as the HTTP/1 one: the service only listens on it, reads
    // address() and counts 'connection's; routes use the compat request/response API.
    Object.assign(serverOptions, {
      http2: true,
      https: { ...https, allowHTTP1: true, settings: { maxConcurrentStreams: 128 } },
      http2SessionTimeout: config.keepAliveTimeoutMs,
      ...server
    })
  }
  const app = Fastify(serverOptions).withTypeProvider<TypeBoxTypeProvider>()
  // Every socket has a bound: MAX_CONNECTIONS_PER_CLIENT per peer address (src/connections.ts).
  const trusted = config.trustProxy === false ? undefined : trustProxyFunction(config.trustProxy)
  app.decorate('connections', limitConnections(app.server, {
    perClient: config.maxConnectionsPerClient,
    ...(https === null ? { firstByteMs: config.headersTimeoutMs } : {}),
    ...(trusted !== undefined ? { exempt: (address: string) => trusted(address, 0) } : {})
  }))
  if (config.http2 && https !== null) {
    boundHttp1OverHttp2(app.server, { headersMs: config.headersTimeoutMs, requestMs: config.requestTimeoutMs })
  }

  // A path no route serves is a plain 404 whatever the token: no auth, no challenge, no echo of
  // the whole URL (OAuth-probing clients ask for /.well-known/oauth-authorization-server, /register).
  // It counts against the caller's (IP's) rate limit like any request, so probing is bounded too.
  app.setNotFoundHandler(async (request, reply) => {
    const limited = app.limitRequest === null ? undefined : await app.limitRequest(request, reply)
    if (limited !== undefined) return limited
    return await refuse(reply, 404, `Route ${request.method}:${cap(request.url, 100)} not found`)
  })
  const { logLevel: _level, ...pluginConfig } = config
  await app.register(sseMcp, { ...pluginConfig, builtins, authenticate, prefix: input.prefix, [kWholeApp]: true })
  return app
}

/**
 * The service's app: a Fastify instance with the TypeBox type provider. Spelled out (not inferred) so
 * the declaration names only exported types, valid under every moduleResolution (bundler, node10 too).
 */
export type App = FastifyInstance<
  RawServerDefault, IncomingMessage, ServerResponse<IncomingMessage>, FastifyBaseLogger, TypeBoxTypeProvider
>
