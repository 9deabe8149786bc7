import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/** JSON-RPC 2.0 error codes used by MCP. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Streamable HTTP: the session does not exist (with HTTP 404). */
  SessionNotFound: -32001,
  ResourceNotFound: -32002,
  /** Too many concurrent requests in a session, or the server is draining. */
  ServerBusy: -32000,
  /** 2026-07-28: HTTP headers do not match the body, or a required header is missing/malformed (HTTP 400). */
  HeaderMismatch: -32020,
  /** 2026-07-28: the request needs a client capability the request did not declare (HTTP 400). */
  MissingRequiredClientCapability: -32021,
  /** 2026-07-28: the request's protocol version is not supported; data.supported lists ours (HTTP 400). */
  UnsupportedProtocolVersion: -32022
} as const

const Id = Type.Union([Type.String({ maxLength: 256 }), Type.Integer()])
const Params = Type.Record(Type.String(), Type.Unknown())

export const JsonRpcRequestSchema = Type.Object({
  jsonrpc: Type.Literal('2.0'),
  id: Id,
  method: Type.String({ minLength: 1, maxLength: 256 }),
  params: Type.Optional(Params)
})
export const JsonRpcNotificationSchema = Type.Object({
  jsonrpc: Type.Literal('2.0'),
  method: Type.String({ minLength: 1, maxLength: 256 }),
  params: Type.Optional(Params)
})
export const JsonRpcResultSchema = Type.Object({
  jsonrpc: Type.Literal('2.0'),
  id: Id,
  result: Type.Record(Type.String(), Type.Unknown())
})
export const JsonRpcErrorSchema = Type.Object({
  jsonrpc: Type.Literal('2.0'),
  id: Type.Union([Id, Type.Null()]),
  error: Type.Object({
    code: Type.Integer(),
    message: Type.String(),
    data: Type.Optional(Type.Unknown())
  })
})

export type RequestId = Static<typeof Id>
export type JsonRpcRequest = Static<typeof JsonRpcRequestSchema>
export type JsonRpcNotification = Static<typeof JsonRpcNotificationSchema>
export type JsonRpcResult = Static<typeof JsonRpcResultSchema>
export type JsonRpcError = Static<typeof JsonRpcErrorSchema>
export type JsonRpcResponse = JsonRpcResult | JsonRpcError
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse

// Compiled once: validation on the hot path is a plain function call.
const isRequest = TypeCompiler.Compile(JsonRpcRequestSchema)
const isNotification = TypeCompiler.Compile(JsonRpcNotificationSchema)
const isResult = TypeCompiler.Compile(JsonRpcResultSchema)
const isError = TypeCompiler.Compile(JsonRpcErrorSchema)

export type Classified =
  | { kind: 'request', message: JsonRpcRequest }
  | { kind: 'notification', message: JsonRpcNotification }
  | { kind: 'response', message: JsonRpcResponse }
  | { kind: 'invalid', id: RequestId | null, reason: string }

/** Sorts a parsed body into request / notification / response, or says why it is not valid JSON-RPC. */
export function classify (body: unknown): Classified {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { kind: 'invalid', id: null, reason: Array.isArray(body) ? 'Batch requests are not supported' : 'A JSON-RPC message must be an object' }
  }
  const m = body as Record<string, unknown>
  const kinds = Number('method' in m) + Number('result' in m) + Number('error' in m)
  if (kinds > 1) return { kind: 'invalid', id: null, reason: 'A message has exactly one of method, result or error' }
  if ('method' in m) {
    if ('id' in m) {
      if (isRequest.Check(m)) return { kind: 'request', message: m }
    } else if (isNotification.Check(m)) {
      return { kind: 'notification', message: m }
    }
  } else if ('result' in m) {
    if (isResult.Check(m)) return { kind: 'response', message: m }
  } else if ('error' in m) {
    if (isError.Check(m)) return { kind: 'response', message: m }
  }
  const id = typeof m.id === 'string' || (typeof m.id === 'number' && Number.isInteger(m.id)) ? m.id : null
  return { kind: 'invalid', id: typeof id === 'string' && id.length > 256 ? null : id, reason: describe(m) }
}

function describe (m: Record<string, unknown>): string {
  if (m.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"'
  if ('method' in m && typeof m.method !== 'string') return 'method must be a string'
  if ('id' in m && !(typeof m.id === 'string' || (typeof m.id === 'number' && Number.isInteger(m.id)))) return 'id must be a string or an integer'
  if ('params' in m && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params))) return 'params must be an object'
  return 'Not a valid JSON-RPC 2.0 message'
}

/** An error a handler throws to answer with a JSON-RPC error. */
export class RpcError extends Error {
  readonly code: number
  readonly data: unknown
  constructor (code: number, message: string, data?: unknown) {
    super(message)
    this.name = 'RpcError'
    this.code = code
    this.data = data
  }
}

export function errorResponse (id: RequestId | null, code: number, message: string, data?: unknown): JsonRpcError {
  const error: JsonRpcError['error'] = { code, message }
  if (data !== undefined) error.data = data
  return { jsonrpc: '2.0', id, error }
}

export function resultResponse (id: RequestId, result: Record<string, unknown>): JsonRpcResult {
  return { jsonrpc: '2.0', id, result }
}
