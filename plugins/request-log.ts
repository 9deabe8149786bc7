import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { createHmac, randomBytes } from 'node:crypto'

/**
 * A session id (MCP or HTTP+SSE) is a capability: whoever holds it may use the session. The log
 * carries only a short keyed fingerprint of it (12 base64url characters = 72 bits of HMAC-SHA256),
 * the same on every line of that session so lines still correlate. The key is derived from
 * STATE_SECRET when one is set (replicas sharing it print the same fingerprint for a session that
 * moves between them), else random per process.
 */
export function sessionFingerprinter (stateSecret: string | undefined): (id: string) => string {
  const key = stateSecret === undefined
    ? randomBytes(32)
    : createHmac('sha256', stateSecret).update('sse-mcp-server log fingerprint v1').digest()
  return (id) => createHmac('sha256', key).update(id).digest('base64url').slice(0, 12)
}

/** JSON-RPC methods named in a request body (a single message or a batch); undefined when it is not JSON-RPC. */
function rpcMethods (body: unknown): { rpc?: string, tool?: string } {
  const messages = Array.isArray(body) ? body.slice(0, 10) : [body]
  const methods: string[] = []
  let tool: string | undefined
  for (const m of messages) {
    if (typeof m !== 'object' || m === null || !('method' in m) || typeof m.method !== 'string') continue
    methods.push(m.method.slice(0, 100))
    if (m.method === 'tools/call' && tool === undefined && 'params' in m && typeof m.params === 'object' && m.params !== null &&
      'name' in m.params && typeof m.params.name === 'string') {
      tool = m.params.name.slice(0, 100)
    }
  }
  return {
    ...(methods.length > 0 ? { rpc: methods.join(',') } : {}),
    ...(tool !== undefined ? { tool } : {})
  }
}

/** pino's numeric levels, to skip building a line that would not be written. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }

const first = (v: unknown): string | undefined => {
  const s = Array.isArray(v) ? v[0] : v
  return typeof s === 'string' && s !== '' ? s.slice(0, 128) : undefined
}

/**
 * Query-string secrets never reach the logs, even if a client puts them there: tokens, and the
 * HTTP+SSE transport's `sessionId` (whoever holds it can post into the session).
 */
export function redactUrl (url: string): string {
  return url.replace(/([?&](?:access_token|token|sessionId)=)[^&#]*/gi, '$1[redacted]')
}

/**
 * The fields of the one line logged per request: what was asked (method, url, JSON-RPC method and
 * tool), by whom (session fingerprint, token fingerprint, ip) and how it ended (status, ms). Never
 * headers, never bodies, never tokens, never a session id.
 */
export function requestLogFields (request: FastifyRequest, reply: FastifyReply, fingerprint: (id: string) => string) {
  const query = request.query
  const httpSseSession = typeof query === 'object' && query !== null && 'sessionId' in query ? first(query.sessionId) : undefined
  const session = first(reply.getHeader('mcp-session-id')) ?? first(request.headers['mcp-session-id']) ?? httpSseSession
  return {
    method: request.method,
    url: redactUrl(request.url),
    statusCode: reply.statusCode,
    ms: Math.round(reply.elapsedTime * 10) / 10,
    ...(session !== undefined ? { session: fingerprint(session) } : {}),
    ...(request.method === 'POST' ? rpcMethods(request.body) : {}),
    ...(request.identity ? { client: request.identity } : {}),
    ip: request.ip
  }
}

/**
 * Fastify's request logging, one line per request (issue 8 "Logs"): Fastify's default
 * "incoming request" + "request completed" pair becomes a single `request completed` line carrying
 * the session's fingerprint and JSON-RPC method. Client errors are `info` (401/403/429 `warn`, worth an
 * operator's eye), server errors `error`; no stack traces (the error handler in src/plugin.ts logs faults).
 * Passed to Fastify as `logController` (src/app.ts).
 */
export class RequestLogController extends LogController {
  readonly #fingerprint: (id: string) => string

  /** `fingerprint` turns a session id into what the log shows (sessionFingerprinter). */
  constructor (fingerprint: (id: string) => string = sessionFingerprinter(undefined)) {
    super()
    this.#fingerprint = fingerprint
  }

  override incomingRequest (request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return
    request.log.debug({ method: request.method, url: redactUrl(request.url) }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const status = reply.statusCode
    // Build the line only when it will be written (the hot path runs at LOG_LEVEL=warn in production too).
    const level = error || status >= 500 ? 'error' : status === 401 || status === 403 || status === 429 ? 'warn' : 'info'
    if ((LEVELS[level] ?? 0) < (LEVELS[reply.log.level] ?? 0)) return
    const fields = requestLogFields(request, reply, this.#fingerprint)
    reply.log[level](error ? { ...fields, error: error.message } : fields, 'request completed')
  }

  /** The 404 is in the `request completed` line already. */
  override routeNotFound (): void {}
}
