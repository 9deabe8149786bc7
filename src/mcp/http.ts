import {
  ErrorCode, RpcError, classify, errorResponse, type Classified, type JsonRpcError, type JsonRpcMessage, type JsonRpcRequest
} from './jsonrpc.js'
import { readJson } from '../json.js'
import type { JsonLimits } from '../config.js'
import { META, checkVersion, looksStateless, type RequestMeta } from './stateless.js'
import { newSessionId, type SessionRecord } from './sessions/store.js'
import { isRequestPart } from './keys.js'
import type { StreamKind } from '../hub/types.js'
import { SESSION_PROTOCOL_VERSIONS, STATELESS_PROTOCOL_VERSIONS, isSessionVersion } from '../meta.js'
import { cap } from '../budget.js'

/**
 * The HTTP transport's rules as plain functions (no Fastify): which era a POST belongs to, what
 * `Accept` must admit, how mirrored headers are decoded and checked against the body, and the HTTP
 * status of each error. The routes read the request, ask here, and write the answer.
 */

/** Request headers as Node gives them (lowercase names). */
export type Headers = Record<string, string | string[] | undefined>

/** The session header of Streamable HTTP. */
export const SESSION_HEADER = 'mcp-session-id'

/** One header's value; repeated headers are joined with `, ` (as Node joins unknown ones). */
export function header (headers: Headers, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/** The two eras on one endpoint: sessions (2024-11-05 … 2025-11-25) and stateless (2026-07-28). */
export type Era = 'session' | 'stateless'

/**
 * The era of a POST /mcp message. Without a session header, a request or notification whose
 * `_meta` or MCP-Protocol-Version is 2026-07-28 (or an unknown version) is stateless; initialize
 * and session traffic (and every response) belong to the session era.
 */
export function eraOf (message: JsonRpcMessage, headers: Headers): Era {
  if (!('method' in message) || header(headers, SESSION_HEADER) !== undefined) return 'session'
  return looksStateless(message, header(headers, 'mcp-protocol-version')) ? 'stateless' : 'session'
}

/**
 * The 400 message for a session request whose MCP-Protocol-Version names a version that has no
 * sessions; undefined when the header is absent or a session version.
 */
export function sessionVersionError (version: string | undefined): string | undefined {
  if (version === undefined || isSessionVersion(version)) return undefined
  return `Unsupported MCP-Protocol-Version for a session: ${version.slice(0, 40)}; sessions speak ${SESSION_PROTOCOL_VERSIONS.join(', ')} ` +
    `(${STATELESS_PROTOCOL_VERSIONS.join(', ')} is stateless: send it without Mcp-Session-Id)`
}

const acceptCache = new Map<string, boolean>()

/** True when an Accept header admits `type` (or any type). Answers for recent headers are cached. */
export function accepts (header: string | undefined, type: string): boolean {
  if (header === undefined) return false
  const key = `${type}\n${header}`
  const cached = acceptCache.get(key)
  if (cached !== undefined) return cached
  const major = type.split('/', 1)[0] ?? type
  const ok = header.split(',').some((part) => {
    const media = (part.split(';', 1)[0] ?? '').trim().toLowerCase()
    return media === type || media === '*/*' || media === `${major}/*`
  })
  // Clients send a handful of distinct Accept headers; the cap keeps hostile variety from growing it.
  if (acceptCache.size >= 256) acceptCache.clear()
  acceptCache.set(key, ok)
  return ok
}

/** A POST to /mcp must accept both JSON and an SSE stream (Streamable HTTP). */
export const acceptsPost = (accept: string | undefined): boolean => accepts(accept, 'application/json') && accepts(accept, 'text/event-stream')

/** HTTP status of a stateless JSON-RPC error answer (2026-07-28 Streamable HTTP). */
export function statelessStatus (code: number): number {
  if (code === ErrorCode.MethodNotFound) return 404
  if (code === ErrorCode.HeaderMismatch || code === ErrorCode.MissingRequiredClientCapability) return 400
  if (code === ErrorCode.UnsupportedProtocolVersion) return 400
  return 200
}

/** HTTP status of a stateless request refused before it runs: as statelessStatus, but 400 where that is 200 (bad params). */
export function refusalStatus (code: number): number {
  const status = statelessStatus(code)
  return status === 200 ? 400 : status
}

const SENTINEL = /^=\?base64\?(.*)\?=$/s
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** A mirrored header's value: decoded from the `=?base64?…?=` sentinel; undefined when malformed. */
export function decodeHeaderValue (value: string): string | undefined {
  if (!/^[\x20-\x7E\t]*$/.test(value)) return undefined
  const m = SENTINEL.exec(value)
  if (m === null) return value
  const encoded = m[1] ?? ''
  if (!BASE64.test(encoded)) return undefined
  const bytes = Buffer.from(encoded, 'base64')
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined
}

export interface HeaderParam { header: string, path: string[] }
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

/** The body value the Mcp-Name header mirrors: the URI of resources/read, the name of tools/call and prompts/get. */
export function mirroredName (message: JsonRpcRequest): string | undefined {
  const params = message.params
  const source = message.method === 'resources/read'
    ? params?.uri
    : message.method === 'tools/call' || message.method === 'prompts/get' ? params?.name : undefined
  return typeof source === 'string' ? source : undefined
}

/**
 * The first way a stateless request's mirrored headers disagree with its body, or undefined:
 * Mcp-Method, Mcp-Name, and the Mcp-Param-* headers of `inputSchema` (the called tool's).
 */
export function headerMismatch (headers: Headers, message: JsonRpcRequest, inputSchema?: unknown): string | undefined {
  const method = header(headers, 'mcp-method')
  if (method === undefined) return 'the Mcp-Method header is required'
  if (method !== message.method) return `Mcp-Method header value '${method.slice(0, 80)}' does not match body method '${cap(message.method, 80)}'`
  const source = mirroredName(message)
  if (source !== undefined) {
    const raw = header(headers, 'mcp-name')
    if (raw === undefined) return `the Mcp-Name header is required for ${message.method}`
    const name = decodeHeaderValue(raw)
    if (name === undefined) return 'the Mcp-Name header value is malformed (invalid characters or Base64)'
    if (name !== source) return `Mcp-Name header value '${name.slice(0, 80)}' does not match body value '${source.slice(0, 80)}'`
  }
  for (const p of headerParams(inputSchema)) {
    const body = at(message.params?.arguments, p.path)
    if (body === undefined || body === null) continue
    const name = `Mcp-Param-${p.header}`
    const raw = header(headers, name.toLowerCase())
    if (raw === undefined) return `the ${name} header is required (the tool mirrors argument ${p.path.join('.')} into it)`
    const value = decodeHeaderValue(raw)
    if (value === undefined) return `the ${name} header value is malformed (invalid characters or Base64)`
    if (!sameValue(value, body)) return `${name} header value does not match argument ${p.path.join('.')}`
  }
  return undefined
}

/**
 * Checks a stateless request's headers against its `_meta`: the MCP-Protocol-Version header is
 * required and equals `_meta`'s version (-32020), the version is stateless (-32022), and the
 * mirrored headers match the body (-32020). Throws the RpcError to answer.
 */
export function checkStatelessHeaders (headers: Headers, message: JsonRpcRequest, meta: Pick<RequestMeta, 'protocolVersion'>, inputSchema?: unknown): void {
  const version = header(headers, 'mcp-protocol-version')
  if (version === undefined) throw new RpcError(ErrorCode.HeaderMismatch, 'Header mismatch: the MCP-Protocol-Version header is required')
  if (version !== meta.protocolVersion) {
    throw new RpcError(ErrorCode.HeaderMismatch,
      `Header mismatch: MCP-Protocol-Version header '${version.slice(0, 64)}' does not match _meta["${META.protocolVersion}"] '${meta.protocolVersion}'`)
  }
  checkVersion(meta.protocolVersion)
  const mismatch = headerMismatch(headers, message, inputSchema)
  if (mismatch !== undefined) throw new RpcError(ErrorCode.HeaderMismatch, `Header mismatch: ${mismatch}`)
}

/** The record of a new HTTP+SSE (2024-11-05) session, made when its GET /sse stream opens (initialize fills it in). */
export function newHttpSseSession (identity: string | null, now = Date.now()): SessionRecord {
  return {
    id: newSessionId(),
    transport: 'http+sse',
    protocolVersion: '2024-11-05',
    clientInfo: null,
    clientCapabilities: {},
    logLevel: null,
    subscriptions: [],
    identity,
    initialized: false,
    createdAt: now,
    lastSeenAt: now
  }
}

/** The `endpoint` event's data on an HTTP+SSE stream: where the client POSTs its messages (`prefix`: the routes' mount point). */
export const httpSseEndpoint = (sessionId: string, prefix = ''): string => `${prefix}/messages?sessionId=${encodeURIComponent(sessionId)}`

/** SSE `retry:` hint for a session request's response stream: how soon a client should resume after a cut. */
export const REQUEST_STREAM_RETRY_MS = 1000

/** A parsed Last-Event-ID (src/hub/types.ts parseEventId). */
export interface LastEventId { streamPart: string, epoch?: string, seq: number }

/** Where a stream resumes: events after `afterSeq` of epoch `afterEpoch` (none: from what the log holds). */
export interface Resume { afterSeq: number | undefined, afterEpoch: string | undefined }

/** Resuming the public stream (part `p`): only an id of that stream counts. */
export function publicResume (last: LastEventId | undefined): Resume {
  return { afterSeq: last?.streamPart === 'p' ? last.seq : undefined, afterEpoch: last?.epoch }
}

/**
 * Which stream of a session a GET opens: Last-Event-ID names it — `r<hex>-…` a request's response
 * stream (resumed, with the retry hint), anything else the standalone stream `g`.
 */
export function sessionGetTarget (last: LastEventId | undefined): Resume & { part: string, kind: StreamKind, retryMs: number | undefined } {
  const part = last !== undefined && isRequestPart(last.streamPart) ? last.streamPart : 'g'
  return {
    part,
    kind: part === 'g' ? 'session' : 'request',
    retryMs: part === 'g' ? undefined : REQUEST_STREAM_RETRY_MS,
    afterSeq: last !== undefined && last.streamPart === part ? last.seq : undefined,
    afterEpoch: last?.epoch
  }
}

/** A POST body read as one JSON-RPC message, or the 400 to answer (-32700 not JSON, -32600 over a limit or not JSON-RPC). */
export type ReadMessage =
  | { ok: true, value: unknown, classified: Exclude<Classified, { kind: 'invalid' }> }
  | { ok: false, value: unknown, error: JsonRpcError }

/** Reads a POST body (text, or undefined when it was not JSON) through the one JSON reader with limits. */
export function readMessage (body: unknown, limits: JsonLimits): ReadMessage {
  // A depth bomb or key flood is a 400, never a RangeError.
  const read = typeof body === 'string' ? readJson(body, limits) : undefined
  if (read === undefined || !read.ok) {
    const error = read === undefined || read.reason === 'syntax'
      ? errorResponse(null, ErrorCode.ParseError, 'Parse error: the body is not valid JSON')
      : errorResponse(null, ErrorCode.InvalidRequest, `Invalid request: ${read.message}`)
    return { ok: false, value: body, error }
  }
  const classified = classify(read.value)
  if (classified.kind === 'invalid') {
    return { ok: false, value: read.value, error: errorResponse(classified.id, ErrorCode.InvalidRequest, `Invalid request: ${classified.reason}`) }
  }
  return { ok: true, value: read.value, classified }
}
