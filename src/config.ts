import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { OAuthConfig } from './oauth.js'
import { parseTrustProxy, type TrustProxy } from './trust-proxy.js'
import { SERVER_NAME, SERVER_VERSION } from './meta.js'

/**
 * The environment contract (README "Configuration"). Every variable is a string in the
 * environment; TypeBox converts, defaults and validates it, and `loadConfig` turns the result
 * into the typed `Config` the app is built from.
 */
const Int = (min: number, max: number, def: number) =>
  Type.Integer({ minimum: min, maximum: max, default: def })

export const EnvSchema = Type.Object({
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Int(0, 65535, 8080),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' }
  ),
  AUTH_TOKENS: Type.String({ default: '' }),
  ALLOWED_ORIGINS: Type.String({ default: '' }),
  ALLOWED_HOSTS: Type.String({ default: '' }),
  MAX_CONNECTIONS: Int(1, 1_000_000, 1000),
  HEARTBEAT_INTERVAL_MS: Int(100, 3_600_000, 15_000),
  SESSION_IDLE_TIMEOUT_MS: Int(1000, 7 * 24 * 3_600_000, 1_800_000),
  REPLAY_BUFFER_SIZE: Int(1, 1_000_000, 1000),
  BODY_LIMIT: Int(1024, 1024 * 1024 * 1024, 1_048_576),
  DRAIN_TIMEOUT_MS: Int(0, 600_000, 10_000),
  RATE_LIMIT_MAX: Int(0, 10_000_000, 1000),
  RATE_LIMIT_WINDOW_MS: Int(1000, 86_400_000, 60_000),
  MAX_INFLIGHT_PER_SESSION: Int(1, 10_000, 32),
  TOOL_TIMEOUT_MS: Int(100, 3_600_000, 60_000),
  STATE_SECRET: Type.String({ default: '', pattern: '^(.{32,})?$' }),
  STATE_TTL_MS: Int(1000, 86_400_000, 600_000),
  CACHE_TTL_MS: Int(0, 86_400_000, 60_000),
  REDIS_URL: Type.String({ default: '', pattern: '^(rediss?://.+)?$' }),
  REDIS_COMMAND_TIMEOUT_MS: Int(100, 60_000, 2000),
  // Redis through Sentinel (instead of REDIS_URL): comma-separated host:port of the sentinels.
  REDIS_SENTINELS: Type.String({ default: '' }),
  REDIS_SENTINEL_NAME: Type.String({ default: 'mymaster', pattern: '^[^\\s]{1,200}$' }),
  REDIS_SENTINEL_PASSWORD: Type.String({ default: '' }),
  TLS_CERT_FILE: Type.String({ default: '' }),
  TLS_KEY_FILE: Type.String({ default: '' }),
  TRUST_PROXY: Type.String({ default: 'false' }),
  OAUTH_JWKS_URL: Type.String({ default: '', pattern: '^(https?://.+)?$' }),
  OAUTH_PUBLIC_KEY_FILE: Type.String({ default: '' }),
  OAUTH_ISSUER: Type.String({ default: '' }),
  OAUTH_RESOURCE: Type.String({ default: '' }),
  OAUTH_AUTHORIZATION_SERVERS: Type.String({ default: '' }),
  OAUTH_SCOPES_SUPPORTED: Type.String({ default: '' }),
  MCP_FIXTURES: Type.Union([Type.Literal(''), Type.Literal('conformance')], { default: '' }),
  METRICS_PUBLIC: Type.Boolean({ default: false }),
  DOCS_PUBLIC: Type.Boolean({ default: false }),
  // Operator role (POST /broadcast when auth is on).
  OPERATOR_TOKENS: Type.String({ default: '' }),
  OAUTH_OPERATOR_SCOPE: Type.String({ default: 'mcp:broadcast', pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }),
  // Failed authentications per client IP per RATE_LIMIT_WINDOW_MS before 429; 0 = unlimited.
  AUTH_FAILURE_MAX: Int(0, 1_000_000, 10),
  // Resource budgets (README "Resource budgets"): everything a client can make us hold.
  MAX_SESSIONS_PER_CLIENT: Int(1, 1_000_000, 100),
  MAX_STREAMS_PER_CLIENT: Int(1, 1_000_000, 100),
  MAX_INFLIGHT_PER_CLIENT: Int(1, 100_000, 64),
  MAX_CLIENT_INFO_BYTES: Int(256, 16 * 1024 * 1024, 16_384),
  MAX_SUBSCRIPTIONS_PER_SESSION: Int(0, 100_000, 64),
  MAX_URI_BYTES: Int(64, 1024 * 1024, 2048),
  MAX_LISTEN_FILTER_BYTES: Int(256, 16 * 1024 * 1024, 16_384),
  REPLAY_BUFFER_BYTES: Int(1024, 1024 * 1024 * 1024, 1_048_576),
  REPLAY_TOTAL_BYTES: Int(1024 * 1024, 64 * 1024 * 1024 * 1024, 134_217_728),
  MAX_BROADCAST_BYTES: Int(64, 64 * 1024 * 1024, 65_536),
  MAX_STATE_BYTES: Int(1024, 64 * 1024 * 1024, 65_536),
  // One JSON reader with limits for every body.
  JSON_MAX_DEPTH: Int(2, 10_000, 64),
  JSON_MAX_KEYS: Int(1, 10_000_000, 10_000),
  JSON_MAX_STRING_BYTES: Int(64, 1024 * 1024 * 1024, 1_048_576),
  // Tool modules loaded at start (comma-separated files or directories, resolved against the cwd).
  MCP_TOOLS: Type.String({ default: '' }),
  // Every socket has a bound (README "Security model"): open sockets per peer address, and how long
  // a request may take to arrive (headers; headers + body). Streams are not cut: a GET's request
  // has fully arrived once its headers have.
  MAX_CONNECTIONS_PER_CLIENT: Int(1, 1_000_000, 64),
  HEADERS_TIMEOUT_MS: Int(100, 600_000, 10_000),
  REQUEST_TIMEOUT_MS: Int(100, 3_600_000, 30_000),
  KEEP_ALIVE_TIMEOUT_MS: Int(100, 3_600_000, 65_000),
  // Bytes of every in-memory replay ring one client's streams may hold together (of REPLAY_TOTAL_BYTES).
  REPLAY_CLIENT_BYTES: Int(1024, 64 * 1024 * 1024 * 1024, 16_777_216),
  // HTTP/2 over TLS (with HTTP/1.1 on the same port for older clients); needs TLS_CERT_FILE.
  HTTP2: Type.Boolean({ default: false }),
  // What initialize / server/discover say (serverInfo, instructions); empty = this package's.
  SERVER_NAME: Type.String({ default: '', maxLength: 200 }),
  SERVER_VERSION: Type.String({ default: '', maxLength: 100 }),
  SERVER_INSTRUCTIONS: Type.String({ default: '', maxLength: 65_536 })
})
export type Env = Static<typeof EnvSchema>
export type LogLevel = Env['LOG_LEVEL']

export interface Config {
  host: string
  port: number
  logLevel: LogLevel
  /** Bearer tokens; empty means auth is off. */
  authTokens: string[]
  /** Allowed browser origins; `*` allows any. An entry without a port matches any port. */
  allowedOrigins: string[]
  /** Allowed Host header names (without port); empty means any host. */
  allowedHosts: string[]
  maxConnections: number
  heartbeatIntervalMs: number
  sessionIdleTimeoutMs: number
  replayBufferSize: number
  bodyLimit: number
  /** Requests per window per caller (identity, else IP); 0 turns rate limiting off. */
  rateLimitMax: number
  rateLimitWindowMs: number
  /** On SIGTERM, how long in-flight calls may run before the process closes anyway. */
  drainTimeoutMs: number
  /** Concurrent requests one session may have running; more get a JSON-RPC error. */
  maxInflightPerSession: number
  /** A tool call running longer is aborted and answered with a tool error. */
  toolTimeoutMs: number
  /**
   * HMAC key for 2026-07-28 MRTR requestState. Unset: shared through Redis when REDIS_URL is set
   * (every replica accepts every other's state), else random per process.
   */
  stateSecret: string | undefined
  /** How long an InputRequiredResult's requestState stays valid. */
  stateTtlMs: number
  /** ttlMs caching hint on 2026-07-28 discover and list results. */
  cacheTtlMs: number
  redisUrl: string | undefined
  /** The longest one Redis call may take before it fails (and the request gets 503 + Retry-After). */
  redisCommandTimeoutMs: number
  /** Redis found through Sentinel (REDIS_SENTINELS); exclusive with redisUrl. */
  redisSentinel: RedisSentinel | undefined
  tls: { certFile: string, keyFile: string } | undefined
  /** Proxies whose X-Forwarded-* headers are believed (by address, never "any peer"); false = none. */
  trustProxy: false | TrustProxy
  fixtures: 'conformance' | undefined
  /** When true, /metrics needs no token even with auth on (a scraper inside the network). */
  metricsPublic: boolean
  /** OAuth 2.1 resource-server mode; undefined when neither a JWKS URL nor a key file is set. */
  oauth: OAuthConfig | undefined
  /** When true, /docs needs no token even with auth on. */
  docsPublic: boolean
  /** Bearer tokens that may use operator routes (POST /broadcast) when auth is on. */
  operatorTokens: string[]
  /** OAuth scope that grants the operator role. */
  oauthOperatorScope: string
  /** Failed authentications per client IP per rate-limit window before 429; 0 = unlimited. */
  authFailureMax: number
  /** Budgets (README "Resource budgets"); "client" = auth identity, else IP. */
  budgets: Budgets
  /** Limits of the one JSON reader every body goes through. */
  json: JsonLimits
  /** MCP_TOOLS: tool modules (files or directories, resolved against the cwd) the service loads at start. */
  tools: string[]
  /** Open sockets per peer address (proxies named by TRUST_PROXY exempt). */
  maxConnectionsPerClient: number
  /** A request's headers must have arrived within this; its headers and body within requestTimeoutMs. */
  headersTimeoutMs: number
  requestTimeoutMs: number
  /** An idle keep-alive socket is closed after this (above the proxy's upstream keepalive_timeout). */
  keepAliveTimeoutMs: number
  /** HTTP/2 over TLS, HTTP/1.1 still served on the same port (needs `tls`). */
  http2: boolean
  /** SERVER_NAME / SERVER_VERSION: the `serverInfo` clients see (default: this package's name and version). */
  serverName: string
  serverVersion: string
  /** SERVER_INSTRUCTIONS: the `instructions` of initialize and server/discover (none by default). */
  serverInstructions: string | undefined
}

export interface Budgets {
  /** Live sessions one client may hold (both transports). */
  sessionsPerClient: number
  /** Open SSE streams one client may hold on this process. */
  streamsPerClient: number
  /** Stateless (2026-07-28) requests one client may have running. */
  inflightPerClient: number
  /** Bytes of clientInfo + capabilities kept per session (JSON text). */
  clientInfoBytes: number
  /** resources/subscribe URIs per session. */
  subscriptionsPerSession: number
  /** Longest URI accepted for a subscription (bytes, UTF-8). */
  uriBytes: number
  /** Largest subscriptions/listen filter (JSON text bytes). */
  listenFilterBytes: number
  /** Bytes kept per replay ring (besides REPLAY_BUFFER_SIZE events). */
  replayBufferBytes: number
  /** Bytes kept across every replay ring of this process (in-memory log). */
  replayTotalBytes: number
  /** Of replayTotalBytes, what the rings of one client's streams may hold together. */
  replayClientBytes: number
  /** Largest /broadcast `data` (JSON text bytes). */
  broadcastBytes: number
  /** Largest MRTR requestState accepted or issued. */
  stateBytes: number
}

/** REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_SENTINEL_PASSWORD. */
export interface RedisSentinel {
  sentinels: Array<{ host: string, port: number }>
  /** The master group name the sentinels monitor. */
  name: string
  /** Password of the sentinels themselves (the master's comes with its own AUTH, if any). */
  password: string | undefined
}

export interface JsonLimits {
  maxDepth: number
  maxKeys: number
  maxStringBytes: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export const DEFAULT_ALLOWED_ORIGINS = [
  'http://localhost', 'https://localhost',
  'http://127.0.0.1', 'https://127.0.0.1',
  'http://[::1]', 'https://[::1]'
]
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '::1']

const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean)

function isLoopback (host: string): boolean {
  return LOOPBACK_HOSTS.includes(host) || host.startsWith('127.')
}

const SECRET_VARIABLES = new Set(['AUTH_TOKENS', 'OPERATOR_TOKENS', 'STATE_SECRET', 'REDIS_SENTINEL_PASSWORD'])

/** `host:port` (IPv6 in brackets) → address; undefined when malformed. */
function parseHostPort (entry: string): { host: string, port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(entry)
  if (m === null) return undefined
  const port = Number(m[2])
  if (port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port }
}

/** What to write instead, for variables whose schema error would be a regex or a union. */
const HINTS: Record<string, string> = {
  LOG_LEVEL: 'is not a level: use one of fatal, error, warn, info, debug, trace, silent',
  STATE_SECRET: 'is too short: use at least 32 characters (e.g. the output of `openssl rand -hex 32`), or leave it unset',
  REDIS_URL: 'is not a Redis URL: use redis://host:6379 (or rediss:// for TLS)',
  OAUTH_JWKS_URL: 'is not an http(s):// URL',
  MCP_FIXTURES: 'is not a fixture set: leave it empty or use conformance',
  METRICS_PUBLIC: 'is not a boolean: use true or false',
  DOCS_PUBLIC: 'is not a boolean: use true or false',
  OAUTH_OPERATOR_SCOPE: 'is not one OAuth scope (no spaces, quotes or backslashes)'
}

function fail (variable: string, value: unknown, why: string): never {
  throw new ConfigError(`Invalid configuration: ${variable}=${JSON.stringify(value)} ${why}`)
}

/** Misspellings of variables that turn a guard on; set instead of the real one, the guard stays off. */
const MISSPELT: Record<string, string> = {
  AUTH_TOKEN: 'AUTH_TOKENS',
  OPERATOR_TOKEN: 'OPERATOR_TOKENS',
  ALLOWED_HOST: 'ALLOWED_HOSTS',
  ALLOWED_ORIGIN: 'ALLOWED_ORIGINS'
}

/**
 * Start-up refusals for a server that would be open to any web page: a misspelt guard variable, or a
 * non-loopback bind (HOST=0.0.0.0, ::, an interface address) with neither a Host allow-list nor auth,
 * where a DNS-rebinding page could read /mcp, /sse, /docs and /metrics (browsers send no Origin on
 * same-origin GETs, so only the Host check stands in the way).
 */
function refuseUnguardedExposure (env: NodeJS.ProcessEnv, e: Env, explicitHosts: string[]): void {
  for (const [typo, real] of Object.entries(MISSPELT)) {
    if (env[typo] && !env[real]) {
      throw new ConfigError(`Invalid configuration: ${typo} is not a variable (the guard stays off); did you mean ${real}? Rename it`)
    }
  }
  const auth = list(e.AUTH_TOKENS).length > 0 || list(e.OPERATOR_TOKENS).length > 0 || Boolean(e.OAUTH_JWKS_URL || e.OAUTH_PUBLIC_KEY_FILE)
  if (!isLoopback(e.HOST) && explicitHosts.length === 0 && !auth) {
    fail('HOST', e.HOST, 'listens beyond loopback with no ALLOWED_HOSTS and no auth, so any web page could read it (DNS rebinding): set ALLOWED_HOSTS to the host names clients use (ALLOWED_HOSTS=* allows any), or AUTH_TOKENS')
  }
}

/** Why STATE_SECRET without REDIS_URL is refused (src/config.ts and plugins/mcp.ts say the same). */
export const STATE_SECRET_NEEDS_REDIS = 'needs REDIS_URL: without Redis each process keeps its own record of used requestStates, so processes sharing the secret (or one restarted) would accept a used state again; unset STATE_SECRET (each process then uses a random key) or set REDIS_URL'

/** Reads the environment; throws ConfigError with one line naming the first bad variable. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const converted = Value.Convert(EnvSchema, Value.Default(EnvSchema, raw))
  const first = Value.Errors(EnvSchema, converted).First()
  if (first) {
    const variable = first.path.replace(/^\//, '') || 'environment'
    // Secrets are never echoed into logs, even when malformed.
    fail(variable, SECRET_VARIABLES.has(variable) ? '<redacted>' : raw[variable], HINTS[variable] ?? `is invalid: ${first.message}`)
  }
  const e = converted as Env

  if (Boolean(e.TLS_CERT_FILE) !== Boolean(e.TLS_KEY_FILE)) {
    fail(e.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE', '', 'must be set together with its pair')
  }
  if (e.HTTP2 && !e.TLS_CERT_FILE) fail('HTTP2', e.HTTP2, 'needs TLS_CERT_FILE and TLS_KEY_FILE (browsers speak HTTP/2 only over TLS)')
  if (e.HEADERS_TIMEOUT_MS > e.REQUEST_TIMEOUT_MS) fail('HEADERS_TIMEOUT_MS', e.HEADERS_TIMEOUT_MS, `must not exceed REQUEST_TIMEOUT_MS (${e.REQUEST_TIMEOUT_MS})`)
  // A requestState is single-use only where every process sharing its secret sees the used nonces.
  if (e.STATE_SECRET && !e.REDIS_URL && !e.REDIS_SENTINELS) fail('STATE_SECRET', '<redacted>', STATE_SECRET_NEEDS_REDIS)
  if (e.OAUTH_RESOURCE && !URL.canParse(e.OAUTH_RESOURCE)) fail('OAUTH_RESOURCE', e.OAUTH_RESOURCE, 'is not a URL')
  for (const server of list(e.OAUTH_AUTHORIZATION_SERVERS)) {
    if (!URL.canParse(server)) fail('OAUTH_AUTHORIZATION_SERVERS', server, 'is not a URL')
  }
  const allowedOrigins = list(e.ALLOWED_ORIGINS)
  for (const origin of allowedOrigins) {
    if (origin !== '*' && !URL.canParse(origin)) fail('ALLOWED_ORIGINS', origin, 'is not an origin such as https://app.example.com')
  }
  let trustProxy: Config['trustProxy']
  try {
    trustProxy = parseTrustProxy(e.TRUST_PROXY)
  } catch (err) {
    fail('TRUST_PROXY', e.TRUST_PROXY, err instanceof Error ? err.message : String(err))
  }
  const explicitHosts = list(e.ALLOWED_HOSTS).map((h) => h.toLowerCase())
  refuseUnguardedExposure(env, e, explicitHosts)
  const sentinels = list(e.REDIS_SENTINELS).map((entry) => parseHostPort(entry) ?? fail('REDIS_SENTINELS', entry, 'is not host:port (e.g. 10.0.0.5:26379)'))
  if (sentinels.length > 0 && e.REDIS_URL) fail('REDIS_SENTINELS', e.REDIS_SENTINELS, 'and REDIS_URL are exclusive: set one')
  if (sentinels.length === 0 && e.REDIS_SENTINEL_PASSWORD) fail('REDIS_SENTINEL_PASSWORD', '<redacted>', 'needs REDIS_SENTINELS')
  return {
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    authTokens: list(e.AUTH_TOKENS),
    allowedOrigins: allowedOrigins.length > 0 ? allowedOrigins : DEFAULT_ALLOWED_ORIGINS,
    allowedHosts: explicitHosts.length > 0
      ? explicitHosts
      : isLoopback(e.HOST) ? LOOPBACK_HOSTS : [],
    maxConnections: e.MAX_CONNECTIONS,
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    sessionIdleTimeoutMs: e.SESSION_IDLE_TIMEOUT_MS,
    replayBufferSize: e.REPLAY_BUFFER_SIZE,
    bodyLimit: e.BODY_LIMIT,
    drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    rateLimitMax: e.RATE_LIMIT_MAX,
    rateLimitWindowMs: e.RATE_LIMIT_WINDOW_MS,
    maxInflightPerSession: e.MAX_INFLIGHT_PER_SESSION,
    toolTimeoutMs: e.TOOL_TIMEOUT_MS,
    stateSecret: e.STATE_SECRET || undefined,
    stateTtlMs: e.STATE_TTL_MS,
    cacheTtlMs: e.CACHE_TTL_MS,
    redisUrl: e.REDIS_URL || undefined,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    redisSentinel: sentinels.length > 0
      ? { sentinels, name: e.REDIS_SENTINEL_NAME, password: e.REDIS_SENTINEL_PASSWORD || undefined }
      : undefined,
    tls: e.TLS_CERT_FILE ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE } : undefined,
    trustProxy,
    fixtures: e.MCP_FIXTURES || undefined,
    metricsPublic: e.METRICS_PUBLIC,
    docsPublic: e.DOCS_PUBLIC,
    operatorTokens: list(e.OPERATOR_TOKENS),
    oauthOperatorScope: e.OAUTH_OPERATOR_SCOPE,
    authFailureMax: e.AUTH_FAILURE_MAX,
    budgets: {
      sessionsPerClient: e.MAX_SESSIONS_PER_CLIENT,
      streamsPerClient: e.MAX_STREAMS_PER_CLIENT,
      inflightPerClient: e.MAX_INFLIGHT_PER_CLIENT,
      clientInfoBytes: e.MAX_CLIENT_INFO_BYTES,
      subscriptionsPerSession: e.MAX_SUBSCRIPTIONS_PER_SESSION,
      uriBytes: e.MAX_URI_BYTES,
      listenFilterBytes: e.MAX_LISTEN_FILTER_BYTES,
      replayBufferBytes: e.REPLAY_BUFFER_BYTES,
      replayTotalBytes: e.REPLAY_TOTAL_BYTES,
      replayClientBytes: e.REPLAY_CLIENT_BYTES,
      broadcastBytes: e.MAX_BROADCAST_BYTES,
      stateBytes: e.MAX_STATE_BYTES
    },
    json: { maxDepth: e.JSON_MAX_DEPTH, maxKeys: e.JSON_MAX_KEYS, maxStringBytes: e.JSON_MAX_STRING_BYTES },
    tools: list(e.MCP_TOOLS),
    maxConnectionsPerClient: e.MAX_CONNECTIONS_PER_CLIENT,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    http2: e.HTTP2,
    serverName: e.SERVER_NAME || SERVER_NAME,
    serverVersion: e.SERVER_VERSION || SERVER_VERSION,
    serverInstructions: e.SERVER_INSTRUCTIONS || undefined,
    oauth: e.OAUTH_JWKS_URL || e.OAUTH_PUBLIC_KEY_FILE
      ? {
          resource: e.OAUTH_RESOURCE || `${e.TLS_CERT_FILE ? 'https' : 'http'}://${e.HOST.includes(':') ? `[${e.HOST}]` : e.HOST}:${e.PORT}/mcp`,
          issuer: e.OAUTH_ISSUER || undefined,
          jwksUrl: e.OAUTH_JWKS_URL || undefined,
          publicKeyFile: e.OAUTH_PUBLIC_KEY_FILE || undefined,
          authorizationServers: list(e.OAUTH_AUTHORIZATION_SERVERS),
          scopesSupported: list(e.OAUTH_SCOPES_SUPPORTED)
        }
      : undefined
  }
}

type Check = { schema: TSchema, says: string }
const P = EnvSchema.properties
/** An option with its variable's schema; integers need only be ≥ 0 (tests use budgets below the deployed ranges). */
function like (variable: keyof typeof P): Check {
  const schema: TSchema = P[variable]
  if (schema.type === 'integer') return { schema: Type.Integer({ minimum: 0 }), says: `must be a whole number ≥ 0 (like ${variable})` }
  if (schema.type === 'boolean') return { schema, says: 'must be true or false' }
  const hint = HINTS[variable]
  return { schema, says: hint ?? `must be a string (like ${variable})` }
}
const strings: Check = { schema: Type.Array(Type.String()), says: 'must be an array of strings, e.g. ["a", "b"]' }
const OAUTH: Check = {
  schema: Type.Object({
    resource: Type.String(),
    issuer: Type.Optional(Type.String()),
    jwksUrl: Type.Optional(Type.String()),
    publicKeyFile: Type.Optional(Type.String()),
    authorizationServers: Type.Array(Type.String()),
    scopesSupported: Type.Array(Type.String())
  }, { additionalProperties: false }),
  says: 'must be { resource, issuer?, jwksUrl? or publicKeyFile?, authorizationServers: [], scopesSupported: [] }'
}
const BUDGET_OPTIONS: Record<keyof Budgets, Check> = {
  sessionsPerClient: like('MAX_SESSIONS_PER_CLIENT'),
  streamsPerClient: like('MAX_STREAMS_PER_CLIENT'),
  inflightPerClient: like('MAX_INFLIGHT_PER_CLIENT'),
  clientInfoBytes: like('MAX_CLIENT_INFO_BYTES'),
  subscriptionsPerSession: like('MAX_SUBSCRIPTIONS_PER_SESSION'),
  uriBytes: like('MAX_URI_BYTES'),
  listenFilterBytes: like('MAX_LISTEN_FILTER_BYTES'),
  replayBufferBytes: like('REPLAY_BUFFER_BYTES'),
  replayTotalBytes: like('REPLAY_TOTAL_BYTES'),
  broadcastBytes: like('MAX_BROADCAST_BYTES'),
  stateBytes: like('MAX_STATE_BYTES'),
  replayClientBytes: like('REPLAY_CLIENT_BYTES')
}
const JSON_OPTIONS: Record<keyof JsonLimits, Check> = {
  maxDepth: like('JSON_MAX_DEPTH'), maxKeys: like('JSON_MAX_KEYS'), maxStringBytes: like('JSON_MAX_STRING_BYTES')
}
/** Every option of the plugin and buildApp that is part of the Config: checked as its variable is. */
const OPTIONS: Record<Exclude<keyof Config, 'budgets' | 'json'>, Check> = {
  host: like('HOST'),
  port: like('PORT'),
  logLevel: like('LOG_LEVEL'),
  authTokens: strings,
  allowedOrigins: strings,
  allowedHosts: strings,
  maxConnections: like('MAX_CONNECTIONS'),
  heartbeatIntervalMs: like('HEARTBEAT_INTERVAL_MS'),
  sessionIdleTimeoutMs: like('SESSION_IDLE_TIMEOUT_MS'),
  replayBufferSize: like('REPLAY_BUFFER_SIZE'),
  bodyLimit: like('BODY_LIMIT'),
  rateLimitMax: like('RATE_LIMIT_MAX'),
  rateLimitWindowMs: like('RATE_LIMIT_WINDOW_MS'),
  drainTimeoutMs: like('DRAIN_TIMEOUT_MS'),
  maxInflightPerSession: like('MAX_INFLIGHT_PER_SESSION'),
  toolTimeoutMs: like('TOOL_TIMEOUT_MS'),
  stateSecret: like('STATE_SECRET'),
  stateTtlMs: like('STATE_TTL_MS'),
  cacheTtlMs: like('CACHE_TTL_MS'),
  redisUrl: like('REDIS_URL'),
  redisSentinel: {
    schema: Type.Object({
      sentinels: Type.Array(Type.Object({
        host: Type.String({ minLength: 1 }),
        port: Type.Integer({ minimum: 1, maximum: 65535 })
      }, { additionalProperties: false }), { minItems: 1 }),
      name: Type.String({ minLength: 1 }),
      password: Type.Optional(Type.String())
    }, { additionalProperties: false }),
    says: 'must be { sentinels: [{ host, port }], name, password? } (like REDIS_SENTINELS / REDIS_SENTINEL_NAME)'
  },
  tls: { schema: Type.Object({ certFile: Type.String(), keyFile: Type.String() }, { additionalProperties: false }), says: 'must be { certFile, keyFile }' },
  trustProxy: {
    schema: Type.Union([
      Type.Literal(false),
      Type.Object(
        { addresses: Type.Array(Type.String()), hops: Type.Optional(Type.Integer({ minimum: 1 })) },
        { additionalProperties: false }
      )
    ]),
    says: 'must be false or { addresses: [addresses, CIDRs or presets], hops? }'
  },
  fixtures: { schema: Type.Literal('conformance'), says: 'must be "conformance" or left out' },
  metricsPublic: like('METRICS_PUBLIC'),
  oauth: OAUTH,
  docsPublic: like('DOCS_PUBLIC'),
  operatorTokens: strings,
  oauthOperatorScope: like('OAUTH_OPERATOR_SCOPE'),
  authFailureMax: like('AUTH_FAILURE_MAX'),
  tools: strings,
  redisCommandTimeoutMs: like('REDIS_COMMAND_TIMEOUT_MS'),
  maxConnectionsPerClient: like('MAX_CONNECTIONS_PER_CLIENT'),
  headersTimeoutMs: like('HEADERS_TIMEOUT_MS'),
  requestTimeoutMs: like('REQUEST_TIMEOUT_MS'),
  keepAliveTimeoutMs: like('KEEP_ALIVE_TIMEOUT_MS'),
  http2: like('HTTP2'),
  serverName: like('SERVER_NAME'),
  serverVersion: like('SERVER_VERSION'),
  serverInstructions: like('SERVER_INSTRUCTIONS')
}
/** Options the plugin itself takes (not part of the Config), and the nested ones checked on their own. */
const PLUGIN_OPTIONS = new Set(['prefix', 'builtins', 'authenticate', 'logger', 'server', 'budgets', 'json'])
const SECRET_OPTIONS = new Set(['authTokens', 'operatorTokens', 'stateSecret'])

/** The closest known name within two edits, for "did you mean". */
function closest (name: string, known: readonly string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i)
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0] ?? 0
      row[0] = i
      for (let j = 1; j <= b.length; j++) {
        const current = row[j] ?? 0
        row[j] = Math.min(current + 1, (row[j - 1] ?? 0) + 1, previous + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1))
        previous = current
      }
    }
    return row[b.length] ?? Infinity
  }
  let best: string | undefined
  let bestDistance = 3
  for (const k of known) {
    const d = distance(name, k)
    if (d < bestDistance) { best = k; bestDistance = d }
  }
  return best
}

/** One line per mistake in `given` against `checks` (a misspelt or unknown key, a value of the wrong kind). */
function optionMistakes (given: Record<string, unknown>, checks: Record<string, Check>, path: string): string[] {
  const lines: string[] = []
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined || (path === '' && PLUGIN_OPTIONS.has(key))) continue
    const name = `${path}${key}`
    const check = checks[key]
    if (check === undefined) {
      const hint = closest(key, Object.keys(checks))
      lines.push(`Invalid option: ${name} is not an option of sse-mcp-server${hint === undefined ? '' : `; did you mean ${path}${hint}?`}`)
    } else if (!Value.Check(check.schema, value)) {
      const shown = SECRET_OPTIONS.has(key) ? '<redacted>' : cap80(JSON.stringify(value) ?? String(value))
      lines.push(`Invalid option: ${name}=${shown} ${check.says}`)
    }
  }
  return lines
}
const cap80 = (s: string): string => s.length > 80 ? `${s.slice(0, 80)}…` : s

/**
 * Checks the plugin's / buildApp's options as the environment is checked: a ConfigError with one line
 * per mistake (unknown or misspelt keys refused, values of the wrong kind named with what they must be).
 */
export function checkOptions (input: Record<string, unknown>): void {
  const lines = optionMistakes(input, OPTIONS, '')
  const nested = { budgets: BUDGET_OPTIONS, json: JSON_OPTIONS } as const
  for (const [key, checks] of Object.entries(nested)) {
    const value = input[key]
    if (value === undefined) continue
    if (typeof value !== 'object' || value === null || Array.isArray(value)) lines.push(`Invalid option: ${key}=${cap80(JSON.stringify(value) ?? String(value))} must be an object such as { ${Object.keys(checks)[0] ?? ''}: 10 }`)
    else lines.push(...optionMistakes(value as Record<string, unknown>, checks, `${key}.`))
  }
  if (lines.length > 0) throw new ConfigError(lines.join('\n'))
}

/** A config where only some fields are given; `budgets` and `json` may be given in part too. */
export type ConfigInput = Partial<Omit<Config, 'budgets' | 'json'>> & { budgets?: Partial<Budgets>, json?: Partial<JsonLimits> }

/**
 * The typed config from a partial one: every field not given takes its default (as with an empty
 * environment). Giving `host` without `allowedHosts` derives the Host allow-list as HOST does.
 */
export function resolveConfig (input: ConfigInput = {}): Config {
  checkOptions(input)
  const defaults = loadConfig({})
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ConfigInput
  const config: Config = {
    ...defaults,
    ...given,
    budgets: { ...defaults.budgets, ...given.budgets },
    json: { ...defaults.json, ...given.json }
  }
  if (given.host !== undefined && given.allowedHosts === undefined) {
    config.allowedHosts = isLoopback(given.host) ? LOOPBACK_HOSTS : []
  }
  return config
}

/** True when `origin` (a request's Origin header) is on the allow-list. */
export function originAllowed (origin: string, allowed: readonly string[]): boolean {
  if (allowed.includes('*')) return true
  if (!URL.canParse(origin)) return false
  const o = new URL(origin)
  return allowed.some((entry) => {
    if (!URL.canParse(entry)) return false
    const a = new URL(entry)
    return a.protocol === o.protocol && a.hostname === o.hostname && (a.port === '' || a.port === o.port)
  })
}

/**
 * A Host header's name, lower-cased: a bracketed IPv6 literal or a name without `:`, then an
 * optional `:port` and nothing else (`[::1]anything`, `a:1:2`, `a b` → undefined).
 */
export function hostName (hostHeader: string): string | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[^[\]:@/\\\s]+)(?::\d{1,5})?$/i.exec(hostHeader)
  return match?.[1]?.toLowerCase()
}

/** True when the Host header's name (port stripped) is on the allow-list; an empty list allows all. */
export function hostAllowed (hostHeader: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.length === 0 || allowed.includes('*')) return true
  if (!hostHeader) return false
  const name = hostName(hostHeader)
  return name !== undefined && allowed.includes(name)
}
