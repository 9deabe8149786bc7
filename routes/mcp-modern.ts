import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { newListenStream, newStatelessStream } from '../src/mcp/keys.js'
import { ErrorCode, RpcError, errorResponse, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse } from '../src/mcp/jsonrpc.js'
import {
  MODERN_METHODS, META, checkVersion, newCallId, readListenFilter, readRequestMeta, type RequestMeta
} from '../src/mcp/modern.js'
import { clientOf, insufficientScope, lazyRequestStream, overBudget, rpcFail } from './mcp-common.js'
import { cap } from '../src/budget.js'

/**
 * The stateless era (MCP 2026-07-28) on POST /mcp: a request without Mcp-Session-Id whose `_meta`
 * or MCP-Protocol-Version header is modern. Validates `_meta` (-32602), the protocol version
 * header against the body (-32020) and the version (-32022), the Mcp-Method / Mcp-Name /
 * Mcp-Param-* headers (-32020), then answers with JSON or a request-scoped SSE stream, or opens a
 * subscriptions/listen stream on the hub. Closing a response stream cancels the request.
 */

const header = (request: FastifyRequest, name: string): string | undefined => {
  const v = request.headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/** HTTP status of a stateless JSON-RPC error (2026-07-28 Streamable HTTP). */
function statusOf (code: number): number {
  if (code === ErrorCode.MethodNotFound) return 404
  if (code === ErrorCode.HeaderMismatch || code === ErrorCode.MissingRequiredClientCapability || code === ErrorCode.UnsupportedProtocolVersion) return 400
  return 200
}

const SENTINEL = /^=\?base64\?(.*)\?=$/s
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** A mirrored header's value: decoded from the `=?base64?…?=` sentinel; undefined when malformed. */
export function decodeHeaderValue (value: string): string | undefined {
  if (!/^[\x20-\x7E\t]*$/.test(value)) return undefined
  const m = SENTINEL.exec(value)
  if (m === null) return value
  if (!BASE64.test(m[1])) return undefined
  const bytes = Buffer.from(m[1], 'base64')
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined
}

interface HeaderParam { header: string, path: string[] }
const paramCache = new WeakMap<object, HeaderParam[]>()

/** The `x-mcp-header` annotated properties of a tool's inputSchema, with their property paths. */
export function headerParams (schema: unknown): HeaderParam[] {
  if (typeof schema !== 'object' || schema === null) return []
  const cached = paramCache.get(schema)
  if (cached !== undefined) return cached
  const found: HeaderParam[] = []
  const walk = (node: unknown, path: string[]): void => {
    const props = (node as { properties?: unknown } | null)?.properties
    if (typeof props !== 'object' || props === null) return
    for (const [name, def] of Object.entries(props as Record<string, unknown>)) {
      const h = (def as Record<string, unknown> | null)?.['x-mcp-header']
      if (typeof h === 'string' && h.length > 0) found.push({ header: h, path: [...path, name] })
      walk(def, [...path, name])
    }
  }
  walk(schema, [])
  paramCache.set(schema, found)
  return found
}

function at (value: unknown, path: string[]): unknown {
  let v = value
  for (const p of path) {
    if (typeof v !== 'object' || v === null || !Object.prototype.hasOwnProperty.call(v, p)) return undefined
    v = (v as Record<string, unknown>)[p]
  }
  return v
}

/** Whether a decoded header value stands for the body value (numbers compare numerically). */
function sameValue (decoded: string, body: unknown): boolean {
  if (typeof body === 'string') return decoded === body
  if (typeof body === 'number') return decoded.trim() !== '' && Number(decoded) === body
  if (typeof body === 'boolean') return decoded === String(body)
  return true
}

/** The first way the request's mirrored headers disagree with its body, or undefined. */
function headerMismatch (app: FastifyInstance, request: FastifyRequest, message: JsonRpcRequest): string | undefined {
  const method = header(request, 'mcp-method')
  if (method === undefined) return 'the Mcp-Method header is required'
  if (method !== message.method) return `Mcp-Method header value '${method.slice(0, 80)}' does not match body method '${cap(message.method, 80)}'`
  const params = message.params
  const source = message.method === 'resources/read' ? params?.uri : message.method === 'tools/call' || message.method === 'prompts/get' ? params?.name : undefined
  if (typeof source === 'string') {
    const raw = header(request, 'mcp-name')
    if (raw === undefined) return `the Mcp-Name header is required for ${message.method}`
    const name = decodeHeaderValue(raw)
    if (name === undefined) return 'the Mcp-Name header value is malformed (invalid characters or Base64)'
    if (name !== source) return `Mcp-Name header value '${name.slice(0, 80)}' does not match body value '${source.slice(0, 80)}'`
  }
  const tool = message.method === 'tools/call' && typeof source === 'string' ? app.mcp.server.registry.tools.get(source) : undefined
  for (const p of tool === undefined ? [] : headerParams(tool.listing.inputSchema)) {
    const body = at(params?.arguments, p.path)
    if (body === undefined || body === null) continue
    const name = `Mcp-Param-${p.header}`
    const raw = header(request, name.toLowerCase())
    if (raw === undefined) return `the ${name} header is required (the tool mirrors argument ${p.path.join('.')} into it)`
    const value = decodeHeaderValue(raw)
    if (value === undefined) return `the ${name} header value is malformed (invalid characters or Base64)`
    if (!sameValue(value, body)) return `${name} header value does not match argument ${p.path.join('.')}`
  }
  return undefined
}

/** A request refused before it runs: its error's status, and 400 where that would be 200 (bad params). */
async function fail (reply: FastifyReply, id: JsonRpcRequest['id'], err: RpcError): Promise<FastifyReply> {
  const status = statusOf(err.code)
  return await rpcFail(reply, status === 200 ? 400 : status, errorResponse(id, err.code, err.message, err.data))
}

/** Serves one stateless message. */
export async function serveModern (app: FastifyInstance, message: JsonRpcMessage, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  // Responses have nothing to answer in this era; notifications are accepted and need no action.
  if (!('method' in message) || !('id' in message)) return await reply.code(202).send()
  let meta: RequestMeta
  try {
    meta = readRequestMeta(message.params)
    const version = header(request, 'mcp-protocol-version')
    if (version === undefined) throw new RpcError(ErrorCode.HeaderMismatch, 'Header mismatch: the MCP-Protocol-Version header is required')
    if (version !== meta.protocolVersion) throw new RpcError(ErrorCode.HeaderMismatch, `Header mismatch: MCP-Protocol-Version header '${version.slice(0, 64)}' does not match _meta["${META.protocolVersion}"] '${meta.protocolVersion}'`)
    checkVersion(meta.protocolVersion)
    const mismatch = headerMismatch(app, request, message)
    if (mismatch !== undefined) throw new RpcError(ErrorCode.HeaderMismatch, `Header mismatch: ${mismatch}`)
  } catch (err) {
    if (err instanceof RpcError) return await fail(reply, message.id, err)
    throw err
  }
  if (!MODERN_METHODS.has(message.method)) {
    return await rpcFail(reply, 404, errorResponse(message.id, ErrorCode.MethodNotFound, `Method not found: ${cap(message.method)}`))
  }
  if (await insufficientScope(app, request, reply, message)) return reply
  if (message.method === 'subscriptions/listen') return await listen(app, message, reply)
  // MAX_INFLIGHT_PER_CLIENT: the stateless counterpart of MAX_INFLIGHT_PER_SESSION, per identity (else IP).
  const quota = app.mcp.statelessInflight
  const release = quota.tryAcquire(clientOf(request))
  if (release === undefined) {
    return await overBudget(reply, message.id, `Too many concurrent requests from this client (MAX_INFLIGHT_PER_CLIENT ${quota.limit}); retry when one finishes`)
  }
  try {
    return await answer(app, message, meta, request, reply)
  } finally {
    release()
  }
}

/**
 * Runs one stateless request: JSON unless the handler sends something first (progress, a log),
 * then an SSE stream of its own carrying those and the response. Not resumable (2026-07-28).
 */
async function answer (app: FastifyInstance, message: JsonRpcRequest, meta: RequestMeta, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const sid = newCallId()
  // The client closing its response (stream) cancels the request.
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) app.mcp.server.cancel(sid, message.id, 'client closed the stream') })
  const stream = lazyRequestStream(app, reply, () => {
    const key = newStatelessStream()
    // Not resumable in this era: the key's log goes once the stream is closed (after its last byte).
    return { opts: { key, kind: 'request', streamPart: 'm', onClose: () => { app.hub.forget(key).catch(() => {}) } } }
  })
  let response: JsonRpcResponse | null
  try {
    response = await app.mcp.modern.handle(message, meta, request.identity, { transport: 'streamable', identity: request.identity, send: stream.send }, sid)
  } catch (err) {
    if (!(err instanceof RpcError)) throw err
    response = errorResponse(message.id, err.code, err.message, err.data)
  }
  if (await stream.finish(response) !== undefined) return reply
  if (response === null) return await reply.code(202).send()
  const status = 'error' in response ? statusOf(response.error.code) : 200
  return await reply.code(status).type('application/json; charset=utf-8').send(response)
}

/**
 * subscriptions/listen: an SSE stream on the hub that starts with the acknowledgment and then
 * carries the change notifications the filter asked for, from every replica, until either side
 * closes it (on shutdown the server ends it with the request's result).
 */
async function listen (app: FastifyInstance, message: JsonRpcRequest, reply: FastifyReply): Promise<FastifyReply> {
  let filter
  try {
    filter = readListenFilter(message.params, app.config.budgets.listenFilterBytes)
  } catch (err) {
    if (err instanceof RpcError) return await fail(reply, message.id, err)
    throw err
  }
  const key = newListenStream()
  const _meta = { [META.subscriptionId]: message.id }
  const ack = { jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { _meta, notifications: filter } }
  // Registered before the stream opens, replayed from the start: nothing between ack and live is lost.
  app.mcp.listeners.add(key, {
    id: message.id,
    filter,
    send: async (n) => { await app.hub.publish(key, { event: 'message', data: JSON.stringify(n) }) },
    end: async () => {
      await app.hub.publish(key, { event: 'message', data: JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { resultType: 'complete', _meta } }) })
      await app.hub.end(key)
    }
  })
  const conn = await app.hub.open(reply, {
    key,
    kind: 'listen',
    streamPart: 'n',
    afterSeq: 0,
    prelude: [{ event: 'message', data: JSON.stringify(ack) }],
    onClose: () => {
      app.mcp.listeners.remove(key)
      app.hub.forget(key).catch(() => {})
    }
  })
  if (conn === undefined) {
    app.mcp.listeners.remove(key)
    await app.hub.forget(key)
  }
  return reply
}
