import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, errorResponse, type Classified, type JsonRpcError, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse, type RequestId } from '../src/mcp/jsonrpc.js'
import type { AttachOptions } from '../src/hub/types.js'
import { insufficientScope as scopeRefusal } from '../src/oauth.js'
import { metadataUrl } from '../plugins/auth.js'
import { isSessionId, type SessionRecord } from '../src/mcp/session.js'
import { readMessage as readBody } from '../src/mcp/http.js'
import { SHUTTING_DOWN } from '../src/http-error.js'
import { logFailure } from '../src/ignore.js'

/** Sends a JSON-RPC error with an HTTP status (transport-level failures). */
export async function rpcFail (reply: FastifyReply, status: number, error: JsonRpcError): Promise<FastifyReply> {
  return await reply.code(status).type('application/json; charset=utf-8').send(error)
}

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
  const required = typeof name === 'string' ? app.mcp.server.registry.tools.get(name)?.def.requiredScopes ?? [] : []
  const refusal = scopeRefusal(required, request.scopes, metadataUrl(app.config.oauth))
  if (refusal === undefined) return false
  reply.header('www-authenticate', refusal.challenge)
  await rpcFail(reply, 403, errorResponse(message.id, ErrorCode.InvalidRequest, refusal.message))
  return true
}

/** 503 + Retry-After while the server drains for shutdown. */
export async function draining (reply: FastifyReply, id: RequestId | null): Promise<FastifyReply> {
  reply.header('retry-after', '5')
  return await rpcFail(reply, 503, errorResponse(id, ErrorCode.ServerBusy, SHUTTING_DOWN))
}

/** Parses and classifies the body; answers 400 itself and returns undefined when it is not JSON-RPC. */
export async function readMessage (request: FastifyRequest, reply: FastifyReply): Promise<Exclude<Classified, { kind: 'invalid' }> | undefined> {
  const read = readBody(request.body, request.server.config.json)
  // The parsed message replaces the text, so the request log can name the JSON-RPC method.
  request.body = read.value
  if (!read.ok) {
    await rpcFail(reply, 400, read.error)
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
  const session = await app.mcp.sessions.get(id)
  if (session === undefined || session.identity !== request.identity || session.transport !== transport) return undefined
  return session
}

/** 429 + Retry-After with a JSON-RPC error naming the budget (a client over one of its budgets). */
export async function overBudget (reply: FastifyReply, id: RequestId | null, message: string): Promise<FastifyReply> {
  reply.header('retry-after', '5')
  return await rpcFail(reply, 429, errorResponse(id, ErrorCode.ServerBusy, message))
}

/**
 * Keeps a session alive while one of its streams is open on this process: idle eviction counts
 * from the last touch, so the stream touches it every third of the idle timeout. Returns the stop
 * function (idempotent; call it when the stream closes).
 */
export function keepSessionAlive (app: FastifyInstance, sessionId: string): () => void {
  const every = Math.max(50, Math.min(60_000, Math.floor(app.config.sessionIdleTimeoutMs / 3)))
  const timer = setInterval(() => { app.mcp.sessions.touch(sessionId).catch(logFailure(app.log, 'session touch failed')) }, every)
  timer.unref()
  return () => { clearInterval(timer) }
}

/**
 * The reply to one request, which becomes an SSE stream of its own (on the hub, under the key
 * `open` names) the first time the handler sends something: progress, a log, a server→client
 * request. Until then it can still be answered as plain JSON.
 */
export function lazyRequestStream (app: FastifyInstance, reply: FastifyReply, open: () => { opts: AttachOptions, priming?: boolean }) {
  let key: string | undefined
  let chain: Promise<void> = Promise.resolve()
  const upgrade = async (): Promise<string> => {
    if (key !== undefined) return key
    const { opts, priming } = open()
    key = opts.key
    await app.hub.open(reply, opts)
    // Priming event (2025-11-25): an id and empty data, so the client can resume from the start.
    if (priming === true) await app.hub.publish(key, { data: '' })
    return key
  }
  const enqueue = (work: (key: string) => Promise<void> | void): Promise<void> => {
    chain = chain.then(async () => { await work(await upgrade()) })
    return chain
  }
  return {
    /** True once the reply became an SSE stream. */
    get streaming (): boolean { return key !== undefined },
    send: async (msg: JsonRpcMessage): Promise<void> => { await enqueue(async (k) => { await app.hub.publish(k, { event: 'message', data: JSON.stringify(msg) }) }) },
    /** SEP-1699: closes the stream now (the client resumes with Last-Event-ID). */
    closeStream: (): void => { enqueue((k) => { app.hub.closeConnections(k) }).catch(logFailure(app.log, 'closing a request stream failed')) },
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
      return key
    }
  }
}
