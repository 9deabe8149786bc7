import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, RpcError, errorResponse, type Classified, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse, type RequestId } from '../src/mcp/jsonrpc.js'
import type { AttachOptions } from '../src/hub/types.js'
import { insufficientScope as scopeRefusal } from '../src/oauth.js'
import { metadataUrl } from '../plugins/auth.js'
import { isSessionId, type SessionRecord } from '../src/mcp/sessions/store.js'
import { readMessage as readBody } from '../src/mcp/http.js'
import { SHUTTING_DOWN, refuseRpc } from '../src/http-error.js'
import { logFailure } from '../src/ignore.js'
import { StoreUnavailableError, cap, type Release } from '../src/budget.js'
import { clientOf } from '../plugins/auth.js'
import { kEngine } from '../src/mcp/engine.js'

/**
 * Keeps the JSON body as text in this encapsulated context, so a malformed body becomes a JSON-RPC
 * parse error (-32700, id null) instead of Fastify's generic 400, and other types a 415.
 */
export function rawJsonBodies (app: FastifyInstance): void {
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser(/^application\/([\w.+-]+\+)?json(\s*;.*)?$/i, { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
}

/**
 * OAuth mode: a tools/call whose tool requires scopes the access token lacks gets 403 with
 * `WWW-Authenticate: Bearer error="insufficient_scope"` (the client can step up). True when answered.
 */
export async function insufficientScope (
  app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, message: JsonRpcRequest
): Promise<boolean> {
  if (request.scopes === null || message.method !== 'tools/call' || app.config.oauth === undefined) return false
  const name = message.params?.name
  const required = typeof name === 'string' ? app[kEngine].server.registry.tools.get(name)?.def.requiredScopes ?? [] : []
  const refusal = scopeRefusal(required, request.scopes, metadataUrl(app.config.oauth))
  if (refusal === undefined) return false
  await refuseRpc(reply, 403, errorResponse(message.id, ErrorCode.InvalidRequest, refusal.message), { headers: { 'www-authenticate': refusal.challenge } })
  return true
}

/** 503 + Retry-After while the server drains for shutdown. */
export async function draining (reply: FastifyReply, id: RequestId | null): Promise<FastifyReply> {
  return await refuseRpc(reply, 503, errorResponse(id, ErrorCode.ServerBusy, SHUTTING_DOWN))
}

/** Parses and classifies the body; answers 400 itself and returns undefined when it is not JSON-RPC. */
export async function readMessage (request: FastifyRequest, reply: FastifyReply): Promise<Exclude<Classified, { kind: 'invalid' }> | undefined> {
  const read = readBody(request.body, request.server.config.json)
  // The parsed message replaces the text, so the request log can name the JSON-RPC method.
  request.body = read.value
  if (!read.ok) {
    await refuseRpc(reply, 400, read.error)
    return undefined
  }
  return read.classified
}

/**
 * Finds the session a request names. A session belongs to the identity that created it and to the
 * transport that created it: anyone else, or the other transport, gets the same 404 as for a
 * session that does not exist.
 */
export async function findSession (app: FastifyInstance, request: FastifyRequest, id: unknown, transport: SessionRecord['transport']): Promise<SessionRecord | undefined> {
  if (!isSessionId(id)) return undefined
  const session = await app[kEngine].sessions.get(id)
  if (session === undefined || session.identity !== request.identity || session.transport !== transport) return undefined
  return session
}

/** 429 + Retry-After with a JSON-RPC error naming the budget (a client over one of its budgets). */
export async function overBudget (reply: FastifyReply, id: RequestId | null, message: string): Promise<FastifyReply> {
  return await refuseRpc(reply, 429, errorResponse(id, ErrorCode.ServerBusy, message))
}

/** 503 + Retry-After with a JSON-RPC error: the shared state store (Redis) did not answer in time. */
export async function storeUnavailable (reply: FastifyReply, id: RequestId | null, err: StoreUnavailableError): Promise<FastifyReply> {
  return await refuseRpc(reply, 503, errorResponse(id, ErrorCode.ServerBusy, err.message), { retryAfter: err.retryAfterSeconds })
}

/**
 * Keeps a session alive while one of its streams is open on this process: idle eviction counts
 * from the last touch, so the stream touches it every third of the idle timeout. Returns the stop
 * function (idempotent; call it when the stream closes).
 */
export function keepSessionAlive (app: FastifyInstance, sessionId: string): () => void {
  const every = Math.max(50, Math.min(60_000, Math.floor(app.config.sessionIdleTimeoutMs / 3)))
  const timer = setInterval(() => { app[kEngine].sessions.touch(sessionId).catch(logFailure(app.log, 'session touch failed')) }, every)
  timer.unref()
  return () => { clearInterval(timer) }
}

/** What a request's stream needs when it opens: the hub options, a priming event, and the run lease (Redis). */
export interface LazyStreamOpen {
  opts: AttachOptions
  priming?: boolean
  /** Takes the run lease before the stream is visible; resolves with what to call once the response is in the log. */
  hold?: () => Promise<() => Promise<void>>
}

/**
 * The reply to one request, which becomes an SSE stream of its own (on the hub, under the key
 * `open` names) the first time the handler sends something: progress, a log, a server→client
 * request. Until then it can still be answered as plain JSON.
 *
 * The stream's unit of MAX_STREAMS_PER_CLIENT is taken before the stream opens. When the client is
 * over that budget the reply stays JSON (the handler is already running: a 429 now would make a
 * retrying client run it twice): notifications are dropped, a server→client request fails in the
 * handler, and the response is sent as JSON.
 */
export function lazyRequestStream (app: FastifyInstance, reply: FastifyReply, open: () => LazyStreamOpen) {
  let key: string | undefined
  /** Set when the stream could not open (over the client's stream budget): the reply stays JSON. */
  let refused: string | undefined
  let finished: (() => Promise<void>) | undefined
  let chain: Promise<void> = Promise.resolve()
  const upgrade = async (): Promise<string | undefined> => {
    if (key !== undefined || refused !== undefined) return key
    const budget = app.hub.streamBudget
    let unit: Release | undefined
    try {
      unit = await budget.take(clientOf(reply.request))
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err
      refused = err.message
      return undefined
    }
    if (unit === undefined) {
      refused = `this client holds MAX_STREAMS_PER_CLIENT (${budget.limit}) streams, so this response cannot become a stream`
      return undefined
    }
    const { opts, priming, hold } = open()
    key = opts.key
    if (hold !== undefined) {
      // Without the lease the stream still works; only a resume elsewhere cannot tell if this replica died.
      finished = await hold().catch((err: unknown) => { reply.request.log.warn({ err }, 'taking the run lease failed'); return undefined })
    }
    await app.hub.open(reply, opts, unit)
    // Priming event (2025-11-25): an id and empty data, so the client can resume from the start.
    if (priming === true) await app.hub.publish(key, { data: '' })
    return key
  }
  const enqueue = (work: (key: string | undefined) => Promise<void> | void): Promise<void> => {
    const run = chain.then(async () => { await work(await upgrade()) })
    // One failed message does not stop the ones after it (nor the response).
    chain = run.catch(logFailure(app.log, 'sending on a request stream failed'))
    return run
  }
  return {
    /** True once the reply became an SSE stream. */
    get streaming (): boolean { return key !== undefined },
    send: async (msg: JsonRpcMessage): Promise<void> => {
      await enqueue(async (k) => {
        if (k !== undefined) {
          await app.hub.publish(k, { event: 'message', data: JSON.stringify(msg) })
          return
        }
        // No stream: a server→client request cannot reach the client (the handler gets the error);
        // notifications (progress, logs) are dropped.
        if ('method' in msg && 'id' in msg) throw new RpcError(ErrorCode.ServerBusy, `Cannot send ${cap(msg.method, 60)} to the client: ${refused ?? 'no stream'}`)
      })
    },
    /** SEP-1699: closes the stream now (the client resumes with Last-Event-ID). */
    closeStream: (): void => { enqueue((k) => { if (k !== undefined) app.hub.closeConnections(k) }).catch(logFailure(app.log, 'closing a request stream failed')) },
    /**
     * After the handler: waits for what it queued; if the reply became a stream, writes the
     * response (none when cancelled) and ends the stream. Returns the stream's key, or undefined
     * when the reply is still JSON for the caller to send.
     */
    async finish (response: JsonRpcResponse | null): Promise<string | undefined> {
      await chain
      if (key === undefined) return undefined
      if (response !== null) await app.hub.publish(key, { event: 'message', data: JSON.stringify(response) })
      await app.hub.end(key)
      await finished?.().catch(logFailure(app.log, 'marking a run done failed'))
      return key
    }
  }
}
