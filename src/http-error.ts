import { STATUS_CODES, type ServerResponse } from 'node:http'
import createError from '@fastify/error'
import type { FastifyReply } from 'fastify'
import type { JsonRpcError } from './mcp/jsonrpc.js'

/**
 * The one way to refuse. Every HTTP refusal the server writes is `{ statusCode, error, message }`
 * (Fastify's own shape) through `refuse()` (or `refuseRaw()` on a response already taken from
 * Fastify); an MCP transport's refusal is a JSON-RPC error (src/mcp/jsonrpc.ts `errorResponse`)
 * through `refuseRpc()`. `Retry-After` is written here and nowhere else. An error thrown before a
 * handler runs (a body parser) is one of the `@fastify/error` codes below; the error handler
 * (src/plugin.ts) answers it through `refuse()`.
 */

/** A JSON body that does not parse (Fastify's own code for it). */
export const InvalidJsonError = createError<[string]>('FST_ERR_CTP_INVALID_JSON', 'Bad Request: %s', 400)
/** A JSON body over JSON_MAX_DEPTH / JSON_MAX_KEYS / JSON_MAX_STRING_BYTES (src/json.ts). */
export const JsonLimitError = createError<[string]>('ERR_JSON_LIMIT', 'Bad Request: %s', 400)

/** The body of every HTTP error the server writes (not JSON-RPC): Fastify's own shape. */
export interface HttpErrorBody {
  statusCode: number
  error: string
  message: string
}

export interface RefuseOptions {
  /** Seconds the client should wait before retrying: sets `Retry-After` (429 and 503 always carry one). */
  retryAfter?: number
  /** Other headers of the refusal (`WWW-Authenticate`, `Allow`). */
  headers?: Record<string, string>
  /** Fields beside statusCode/error/message (the readiness report of a 503 from /ready). */
  body?: Record<string, unknown>
}

/** The Retry-After of a 429/503 refusal that did not name one. */
export const DEFAULT_RETRY_AFTER = 5

/** The one way to build an HTTP error body: `{ statusCode, error: <reason phrase>, message }`. */
export function httpError (statusCode: number, message: string): HttpErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

/** The headers of a refusal: the caller's, and Retry-After (whole seconds, at least 1) on 429/503 or when asked. */
function refusalHeaders (status: number, opts: RefuseOptions): Record<string, string> {
  const headers = { ...opts.headers }
  const wait = opts.retryAfter ?? (status === 429 || status === 503 ? DEFAULT_RETRY_AFTER : undefined)
  if (wait !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(wait)))
  return headers
}

/** Refuses a request: `status`, the HttpErrorBody with `message`, Retry-After on 429/503. */
export async function refuse (reply: FastifyReply, status: number, message: string, opts: RefuseOptions = {}): Promise<FastifyReply> {
  return await reply.code(status).headers(refusalHeaders(status, opts)).send({ ...opts.body, ...httpError(status, message) })
}

/** Refuses on an MCP transport: `status` with a JSON-RPC error body (errorResponse), Retry-After on 429/503. */
export async function refuseRpc (
  reply: FastifyReply, status: number, error: JsonRpcError, opts: RefuseOptions = {}
): Promise<FastifyReply> {
  return await reply.code(status).headers(refusalHeaders(status, opts)).type('application/json; charset=utf-8').send(error)
}

/** Headers already set on a reply (CORS), carried onto its raw refusal. */
type RawHeaders = Record<string, string | number | string[] | undefined>

/** As refuse(), on a raw response Fastify no longer owns (a hijacked reply, before any byte of a stream). */
export function refuseRaw (
  raw: ServerResponse, status: number, message: string,
  opts: RefuseOptions & { extraHeaders?: RawHeaders } = {}
): void {
  const { 'content-length': _length, ...kept } = opts.extraHeaders ?? {}
  raw.writeHead(status, { ...kept, 'content-type': 'application/json; charset=utf-8', ...refusalHeaders(status, opts) })
  raw.end(JSON.stringify(httpError(status, message)))
}

/** What a request or stream refused while the server drains for shutdown is told (503 + Retry-After). */
export const SHUTTING_DOWN = 'Server is shutting down; retry on another instance'
