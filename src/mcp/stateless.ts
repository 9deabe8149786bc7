import { PROTOCOL_VERSIONS, isStatelessVersion, isSessionVersion } from '../meta.js'
import { ErrorCode, RpcError, errorResponse, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse, type RequestId } from './jsonrpc.js'
import { InputCollector, type RequestStateCodec, askedAnswers, requestBinding } from './mrtr.js'
import type { McpServer, TransportContext } from './server.js'
import { LOGGING_LEVELS, type LoggingLevel } from './sessions/store.js'
import { cap, utf8Bytes, type CountRefusal } from '../budget.js'
import { ignore } from '../ignore.js'
import { obj } from '../values.js'

/**
 * The stateless era of MCP (2026-07-28): no initialize, no session. Every request carries its
 * protocol version, client capabilities and (optionally) client info and log level in `_meta`;
 * results carry `resultType`, list/read/discover results caching hints; client input comes by
 * MRTR (src/mcp/mrtr.ts); change notifications come on `subscriptions/listen` streams.
 * Transport-agnostic: routes/mcp.ts does the HTTP part (headers, status codes, streams).
 */

export const META = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  logLevel: 'io.modelcontextprotocol/logLevel',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId'
} as const

/** Methods a stateless client may call. Everything else (initialize, ping, logging/setLevel, resources/subscribe…) is -32601. */
export const STATELESS_METHODS: ReadonlySet<string> = new Set([
  'server/discover', 'subscriptions/listen',
  'tools/list', 'tools/call',
  'resources/list', 'resources/templates/list', 'resources/read',
  'prompts/list', 'prompts/get',
  'completion/complete'
])

let calls = 0
/** A stateless request's in-flight key on this process (McpServer.cancel(id, requestId) aborts it). */
export const newCallId = (): string => `~${(++calls).toString(36)}`

/** Results that carry ttlMs/cacheScope. */
const CACHEABLE: ReadonlySet<string> = new Set(['server/discover', 'tools/list', 'prompts/list', 'resources/list', 'resources/templates/list', 'resources/read'])

/** What a stateless request's `_meta` declares. */
export interface RequestMeta {
  protocolVersion: string
  clientCapabilities: Record<string, unknown>
  clientInfo: Record<string, unknown> | undefined
  logLevel: LoggingLevel | undefined
}

/** True when a request without a session speaks the stateless era (its `_meta` or its version header says so). */
export function looksStateless (message: { method: string, params?: Record<string, unknown> }, versionHeader: string | undefined): boolean {
  if (versionHeader !== undefined && !isSessionVersion(versionHeader)) return true
  if (message.method === 'server/discover' || message.method === 'subscriptions/listen') return true
  const meta = obj(message.params?._meta)
  return meta !== undefined && (META.protocolVersion in meta || META.clientCapabilities in meta)
}

/** Checks the required `_meta` fields: -32602 (HTTP 400) when missing or malformed. */
export function readRequestMeta (params: Record<string, unknown> | undefined): RequestMeta {
  const meta = obj(params?._meta)
  const bad = (why: string): RpcError => new RpcError(ErrorCode.InvalidParams, `Invalid params: ${why} (2026-07-28 requests carry _meta with "${META.protocolVersion}" and "${META.clientCapabilities}")`)
  if (meta === undefined) throw bad('_meta is missing')
  const protocolVersion = meta[META.protocolVersion]
  if (typeof protocolVersion !== 'string' || protocolVersion.length === 0 || protocolVersion.length > 64) throw bad(`_meta["${META.protocolVersion}"] must be a version string`)
  const clientCapabilities = obj(meta[META.clientCapabilities])
  if (clientCapabilities === undefined) throw bad(`_meta["${META.clientCapabilities}"] must be an object`)
  const clientInfo = meta[META.clientInfo]
  if (clientInfo !== undefined && obj(clientInfo) === undefined) throw bad(`_meta["${META.clientInfo}"] must be an object`)
  const logLevel = meta[META.logLevel]
  if (logLevel !== undefined && !(LOGGING_LEVELS as readonly unknown[]).includes(logLevel)) throw bad(`_meta["${META.logLevel}"] must be one of ${LOGGING_LEVELS.join(', ')}`)
  return { protocolVersion, clientCapabilities, clientInfo: obj(clientInfo), logLevel: logLevel as LoggingLevel | undefined }
}

/** -32022 with the versions we support (and the one asked for), unless the version is a stateless one we speak. */
export function checkVersion (requested: string): void {
  if (isStatelessVersion(requested)) return
  const message = isSessionVersion(requested)
    ? `Protocol version ${requested} is session-based: send initialize first, or use a stateless version (${PROTOCOL_VERSIONS.filter(isStatelessVersion).join(', ')})`
    : `Unsupported protocol version: ${requested.slice(0, 64)}`
  throw new RpcError(ErrorCode.UnsupportedProtocolVersion, message, { supported: [...PROTOCOL_VERSIONS], requested })
}

/** Filter key (an extension of SubscriptionFilter) for operator broadcasts on a listen stream. */
export const BROADCAST_FILTER_KEY = 'dev.sse-mcp-server/broadcasts'

/** The notification types a listen stream asked for (and we honour: all four). */
export interface ListenFilter {
  toolsListChanged?: boolean
  promptsListChanged?: boolean
  resourcesListChanged?: boolean
  resourceSubscriptions?: string[]
  /** Extension: operator broadcasts (POST /broadcast) as notifications/message on this stream. */
  [BROADCAST_FILTER_KEY]?: boolean
}

/** Reads a subscriptions/listen filter; one larger than `maxBytes` (JSON text) is refused before anything is kept. */
export function readListenFilter (
  params: Record<string, unknown> | undefined, maxBytes = 16_384, countRefusal?: CountRefusal
): ListenFilter {
  const raw = obj(params?.notifications)
  if (raw === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.notifications must be an object (the notification filter)')
  const bytes = utf8Bytes(JSON.stringify(raw))
  if (bytes > maxBytes) countRefusal?.()
  if (bytes > maxBytes) throw new RpcError(ErrorCode.InvalidParams, `params.notifications is ${bytes} bytes; a listen filter may be at most ${maxBytes} (MAX_LISTEN_FILTER_BYTES)`)
  const filter: ListenFilter = {}
  for (const k of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged', BROADCAST_FILTER_KEY] as const) {
    const v = raw[k]
    if (v === undefined) continue
    if (typeof v !== 'boolean') throw new RpcError(ErrorCode.InvalidParams, `params.notifications.${k} must be a boolean`)
    if (v) filter[k] = true
  }
  const uris = raw.resourceSubscriptions
  if (uris !== undefined) {
    if (!Array.isArray(uris) || uris.length > 1000 || !uris.every((u) => typeof u === 'string' && u.length <= 2048)) {
      throw new RpcError(ErrorCode.InvalidParams, 'params.notifications.resourceSubscriptions must be an array of resource URIs')
    }
    filter.resourceSubscriptions = [...new Set(uris as string[])]
  }
  return filter
}

/** What changed, as the listen streams filter it. */
export type Change = { kind: 'tools' | 'prompts' | 'resources' } | { kind: 'resource', uri: string } | { kind: 'broadcast', event: string, data: unknown }

/** The first message of a subscriptions/listen stream: which notifications it will carry. */
export function listenAcknowledged (subscriptionId: RequestId, filter: ListenFilter): JsonRpcNotification {
  const _meta = { [META.subscriptionId]: subscriptionId }
  return { jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { _meta, notifications: filter } }
}

/** The last message of a subscriptions/listen stream the server ends (shutdown): the request's result. */
export function listenComplete (subscriptionId: RequestId): JsonRpcResponse {
  return { jsonrpc: '2.0', id: subscriptionId, result: { resultType: 'complete', _meta: { [META.subscriptionId]: subscriptionId } } }
}

/** The notification a listen stream with `filter` gets for `change`, or undefined when it did not ask for it. */
export function listenNotification (change: Change, filter: ListenFilter, subscriptionId: RequestId): JsonRpcNotification | undefined {
  const _meta = { [META.subscriptionId]: subscriptionId }
  switch (change.kind) {
    case 'tools': return filter.toolsListChanged === true ? { jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: { _meta } } : undefined
    case 'prompts': return filter.promptsListChanged === true ? { jsonrpc: '2.0', method: 'notifications/prompts/list_changed', params: { _meta } } : undefined
    case 'resources': return filter.resourcesListChanged === true ? { jsonrpc: '2.0', method: 'notifications/resources/list_changed', params: { _meta } } : undefined
    case 'resource': return filter.resourceSubscriptions?.includes(change.uri) === true ? { jsonrpc: '2.0', method: 'notifications/resources/updated', params: { _meta, uri: change.uri } } : undefined
    case 'broadcast': return filter[BROADCAST_FILTER_KEY] === true
      ? { jsonrpc: '2.0', method: 'notifications/message', params: { _meta, level: 'info', logger: 'broadcast', data: { event: change.event, data: change.data ?? null } } }
      : undefined
  }
}

export interface StatelessOptions {
  serverInfo: { name: string, version: string, title?: string }
  instructions?: string
  codec: RequestStateCodec
  /** ttlMs on discover and list results. */
  listTtlMs: number
  /** ttlMs on resources/read results. */
  readTtlMs: number
  /** resources/read results are per caller when auth is on. */
  privateReads: boolean
}

/** Dispatches stateless requests to the shared McpServer and shapes their results for 2026-07-28. */
export class StatelessEngine {
  readonly #server: McpServer
  readonly #opts: StatelessOptions
  constructor (server: McpServer, opts: StatelessOptions) {
    this.#server = server
    this.#opts = opts
  }

  discover (): Record<string, unknown> {
    const result: Record<string, unknown> = {
      supportedVersions: [...PROTOCOL_VERSIONS],
      capabilities: this.#server.capabilities()
    }
    if (this.#opts.instructions !== undefined) result.instructions = this.#opts.instructions
    return result
  }

  /**
   * One stateless request (already checked: headers, `_meta`, version). Returns the response, or
   * null when the client went away (cancelled). subscriptions/listen is the route's business.
   */
  async handle (req: JsonRpcRequest, meta: RequestMeta, identity: string | null, ctx: Omit<TransportContext, 'stateless'>, sid = newCallId(), client?: string): Promise<JsonRpcResponse | null> {
    if (!STATELESS_METHODS.has(req.method) || req.method === 'subscriptions/listen') {
      return errorResponse(req.id, ErrorCode.MethodNotFound, `Method not found: ${cap(req.method)}`)
    }
    if (req.method === 'server/discover') return { jsonrpc: '2.0', id: req.id, result: this.#shape(req, this.discover(), false) }
    const params = req.params
    const retry = params?.requestState !== undefined || params?.inputResponses !== undefined
    // The binding (a digest of method, target and arguments) is computed only when MRTR needs it.
    let binding: string | undefined
    const bind = (): string => (binding ??= requestBinding(req.method, params))
    const codec = this.#opts.codec
    // Only answers the (verified, single-use) state asked for are used; others are ignored (src/mcp/mrtr.ts).
    const state = params?.requestState === undefined ? undefined : await codec.redeem(params.requestState, bind(), identity, client)
    const input = new InputCollector(state?.r ?? {}, askedAnswers(params?.inputResponses, state))
    const { response } = await this.#server.request(req, undefined, {
      ...ctx,
      stateless: {
        sid,
        clientCapabilities: meta.clientCapabilities,
        logLevel: meta.logLevel,
        input,
        resumed: params?.requestState !== undefined,
        seal: (used) => codec.seal({ b: bind(), p: identity, e: codec.now() + codec.ttlMs, r: used, k: [...input.asks.keys()] })
      }
    })
    if (response === null) return null
    if ('error' in response) {
      // 2026-07-28 (SEP-2164): an unknown resource is invalid params, with the URI in data.
      if (response.error.code === ErrorCode.ResourceNotFound) {
        return {
          ...response,
          error: { ...response.error, code: ErrorCode.InvalidParams }
        }
      }
      return response
    }
    return { jsonrpc: '2.0', id: response.id, result: this.#shape(req, response.result, retry) }
  }

  /** resultType, caching hints, server identity. */
  #shape (req: JsonRpcRequest, result: Record<string, unknown>, retry: boolean): Record<string, unknown> {
    if (result.resultType === 'input_required') return result
    const shaped: Record<string, unknown> = { ...result, resultType: 'complete' }
    if (CACHEABLE.has(req.method)) {
      const read = req.method === 'resources/read'
      // Results of MRTR retries depend on inputs outside the cache key: never fresh.
      shaped.ttlMs = retry ? 0 : read ? this.#opts.readTtlMs : this.#opts.listTtlMs
      shaped.cacheScope = read && this.#opts.privateReads ? 'private' : 'public'
    }
    shaped._meta = { ...obj(result._meta), [META.serverInfo]: this.#opts.serverInfo }
    return shaped
  }
}

interface ListenStream {
  id: RequestId
  filter: ListenFilter
  send: (message: JsonRpcNotification) => Promise<void>
  /** Graceful end: the listen request's result, then the stream closes. */
  end: () => Promise<void>
  /** Ends the stream with a JSON-RPC error for the listen request (else, when that cannot be written, just closes it). */
  fail: (message: string) => Promise<void>
}

/** The subscriptions/listen streams open on this process, by hub key. */
export class ListenStreams {
  readonly #streams = new Map<string, ListenStream>()
  add (key: string, stream: ListenStream): void { this.#streams.set(key, stream) }
  remove (key: string): void { this.#streams.delete(key) }
  /** Ends every local stream gracefully (shutdown). */
  async endAll (): Promise<void> {
    const all = [...this.#streams.values()]
    this.#streams.clear()
    await Promise.all(all.map(async (s) => { await s.end().catch(ignore('closing: the stream is cut with the server')) }))
  }

  /** Ends every local stream with a JSON-RPC error (changes may have been lost for them). */
  async failAll (message: string): Promise<void> {
    const all = [...this.#streams.values()]
    this.#streams.clear()
    await Promise.all(all.map(async (s) => { await s.fail(message) }))
  }

  /**
   * Sends `change` to every local stream whose filter asked for it. A stream that cannot take it
   * (its log unavailable) ends, so its client knows to list again: never a silent gap.
   */
  async deliver (change: Change): Promise<void> {
    const work: Array<Promise<void>> = []
    for (const [key, s] of this.#streams) {
      const n = listenNotification(change, s.filter, s.id)
      if (n !== undefined) {
        work.push(s.send(n).catch(async () => {
          this.#streams.delete(key)
          await s.fail('A change notification could not be delivered; list again and listen again')
        }))
      }
    }
    await Promise.all(work)
  }
}
