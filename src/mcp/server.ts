import { LATEST_PROTOCOL_VERSION, isSessionVersion } from '../meta.js'
import type { AskOptions, AuthInfo, CallContext, ElicitResult } from './context.js'
import type { JsonSchemaObject } from './registry.js'
import { KindGuard, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { UserError } from './errors.js'
import type { McpObserver } from './api.js'
import {
  ErrorCode, RpcError, errorResponse, resultResponse,
  type JsonRpcMessage, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse, type RequestId
} from './jsonrpc.js'
import {
  type AnySchema, type CallToolResult, type ListKind, type PromptDefinition, type ResourceDefinition,
  type ResourceTemplateDefinition, type ToolDefinition
} from './registry.js'
import { LockableRegistry } from './registry-lock.js'
import { LOGGING_LEVELS, newSessionId, type LoggingLevel, type SessionRecord, type SessionStore, type Transport } from './sessions/store.js'
import { InputRequiredSignal, type InputCollector } from './mrtr.js'
import { describeProblems, type Validator } from './validate.js'
import { cap, utf8Bytes } from '../budget.js'
import { randomBytes, randomUUID } from 'node:crypto'
import { ignore } from '../ignore.js'
import { obj, str } from '../values.js'

/** A stateless (2026-07-28) request: what its `_meta` declared, and where its client input comes from. */
export interface StatelessCall {
  /** Unique per request: keys its in-flight entry (there is no session). */
  sid: string
  clientCapabilities: Record<string, unknown>
  /** `_meta["io.modelcontextprotocol/logLevel"]`: without it the request gets no log notifications. */
  logLevel: LoggingLevel | undefined
  input: InputCollector
  /** The request is an MRTR retry whose requestState verified. */
  resumed: boolean
  /** Seals the answers used so far into the next requestState. */
  seal (used: Record<string, Record<string, unknown>>): string
}

/** How the transport lets the core reach the client while it handles one message. */
export interface TransportContext {
  transport: Transport
  identity: string | null
  /** Who called (the HTTP request's authentication), for `ctx.auth`. */
  auth?: AuthInfo | null
  /** The HTTP request's logger (its lines carry the request id); the server's `log` otherwise. */
  log?: ErrorLog
  /** Messages tied to the current request (progress, logs, server→client requests). */
  send (message: JsonRpcMessage): Promise<void>
  /** SEP-1699: close the current request's stream now; the client resumes with Last-Event-ID. */
  closeStream?: () => void
  /** Set for stateless (2026-07-28) requests: client input comes by MRTR, not server→client requests. */
  stateless?: StatelessCall
}

export type { McpObserver }

/** A pino-like logger's error method (Fastify's request.log, app.log). */
export interface ErrorLog {
  error (fields: Record<string, unknown>, message: string): void
}

export interface McpServerOptions {
  name: string
  version: string
  title?: string
  instructions?: string
  sessions: SessionStore
  /** Delivers a session-wide notification (list_changed, resources/updated) to the session's stream. */
  notify: (session: SessionRecord, message: JsonRpcNotification) => Promise<void>
  /** How long a server→client request waits for the client's answer. */
  clientRequestTimeoutMs?: number
  /** Items per page in list results. */
  pageSize?: number
  /** Concurrent requests one session may have running (default 32). */
  maxInflightPerSession?: number
  /** A tool call running longer is aborted and answered with a tool error (default 60 s). */
  toolTimeoutMs?: number
  /** Bytes of clientInfo + capabilities (JSON text) a session may keep; a larger initialize is refused (default 16 KiB). */
  clientInfoBytes?: number
  /** Where a handler's unexpected throw is logged when the transport gave no request logger. */
  log?: ErrorLog
  /** Problems for a tool's author (a result that breaks its outputSchema): a warn-level log line. */
  warn?: (fields: Record<string, unknown>, message: string) => void
  /** Resource URIs one session may subscribe to (MAX_SUBSCRIPTIONS_PER_SESSION, default 64). */
  maxSubscriptionsPerSession?: number
  /** Longest subscribed URI in UTF-8 bytes (MAX_URI_BYTES, default 2048). */
  maxUriBytes?: number
  /** Scale-out: records where work is awaited or running, so answers and cancels reach only that replica. */
  tracker?: ScaleOutTracker
  /** Counts a refusal by a budget this server enforces (BudgetRefusals). */
  countRefusal?: (budget: 'client_info_bytes' | 'uri_bytes' | 'subscriptions_per_session') => void
}

/**
 * Where a session's server→client requests are awaited and its requests run, for replicas to
 * route a client's answer or cancel to the one process that can use it (src/mcp/scale-out.ts: Redis).
 */
export interface ScaleOutTracker {
  /** Server→client request `id` of session `sid` awaits its answer here for up to `ttlMs`; resolves once recorded. */
  awaiting (sid: string, id: string, ttlMs: number): Promise<void>
  /** It was answered, timed out or cancelled. */
  settled (sid: string, id: string): void
  /** A request of session `sid` runs here; the returned function is called when it ends. */
  running (sid: string, id: RequestId): () => void
}

/** Longest clientInfo name/version kept (characters). */
const CLIENT_INFO_FIELD_MAX = 256

/** The outcome of one inbound message: a response to send, or nothing (notifications, responses, cancelled requests). */
export interface Handled {
  response: JsonRpcResponse | null
  /** Set when this message created the session (initialize). */
  created?: SessionRecord
}

interface Pending {
  resolve: (result: Record<string, unknown>) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

const CAPABILITY_FOR: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots'
}

const levelRank = (level: LoggingLevel): number => LOGGING_LEVELS.indexOf(level)

/** Abort reason of a tool call that ran past TOOL_TIMEOUT_MS (answered, unlike a cancellation). */
const TOOL_TIMEOUT = Symbol('tool timeout')

/**
 * A request in flight. Its AbortController is made only when a handler reads the signal: most
 * calls never do, and the hot path stays allocation-light.
 */
class Inflight {
  #controller: AbortController | undefined
  #reason: unknown
  aborted = false

  get signal (): AbortSignal {
    this.#controller ??= new AbortController()
    if (this.aborted && !this.#controller.signal.aborted) this.#controller.abort(this.#reason)
    return this.#controller.signal
  }

  abort (reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.#reason = reason
    this.#controller?.abort(reason)
  }

  /** Aborted by the client (or shutdown), not by the tool timeout: nothing is sent back. */
  get cancelled (): boolean { return this.aborted && this.#reason !== TOOL_TIMEOUT }
}

function encodeCursor (offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString('base64url')
}

function decodeCursor (cursor: unknown): number {
  if (cursor === undefined) return 0
  if (typeof cursor !== 'string' || cursor.length > 100) throw new RpcError(ErrorCode.InvalidParams, 'Invalid cursor')
  let o: unknown
  try {
    o = (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { o?: unknown }).o
  } catch {
    throw new RpcError(ErrorCode.InvalidParams, 'Invalid cursor')
  }
  if (typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) return o
  throw new RpcError(ErrorCode.InvalidParams, 'Invalid cursor')
}

/** A result with structuredContent but no text block gets one mirroring it (the spec's SHOULD, for older clients). */
function mirrorStructured (result: CallToolResult): CallToolResult {
  const content = Array.isArray(result.content) ? result.content : []
  if (content.some((c) => c.type === 'text')) return result
  return { ...result, content: [...content, { type: 'text', text: JSON.stringify(result.structuredContent) }] }
}

/**
 * The MCP protocol engine: lifecycle, dispatcher, registry, sessions, server→client requests.
 * Transport-agnostic: routes/mcp.ts and routes/sse.ts feed it messages and carry what it sends.
 */
export class McpServer {
  readonly registry = new LockableRegistry()
  readonly sessions: SessionStore
  readonly #opts: McpServerOptions
  readonly #observers: McpObserver[] = []
  /** In-flight requests by `${sessionId}:${id}`, for notifications/cancelled. */
  readonly #inflight = new Map<string, Inflight>()
  /** In-flight request count per session, for MAX_INFLIGHT_PER_SESSION. */
  readonly #perSession = new Map<string, number>()
  /** Server→client requests awaiting the client's response, by `${sessionId}:${id}`. */
  readonly #pending = new Map<string, Pending>()
  readonly #handlers: Record<string, (
    req: JsonRpcRequest, session: SessionRecord | undefined, ctx: TransportContext, signal: Inflight
  ) => Promise<Record<string, unknown>>>

  constructor (opts: McpServerOptions) {
    this.#opts = opts
    this.sessions = opts.sessions
    this.registry.onChange((kind) => { this.#listChanged(kind).catch(ignore('list_changed is advisory: clients re-list on their next request')) })
    this.#handlers = {
      ping: async () => ({}),
      'tools/list': async (req) => this.#page(req, 'tools', [...this.registry.tools.values()].map((t) => t.listing)),
      'tools/call': async (req, session, ctx, signal) => await this.#callTool(req, session, ctx, signal),
      'resources/list': async (req) => this.#page(req, 'resources', [...this.registry.resources.values()].map((r) => this.registry.resourceListing(r))),
      'resources/templates/list': async (req) => this.#page(req, 'resourceTemplates', this.registry.templateListings()),
      'resources/read': async (req, session, ctx, signal) => await this.#readResource(req, session, ctx, signal),
      'resources/subscribe': async (req, session) => await this.#subscribe(req, session, true),
      'resources/unsubscribe': async (req, session) => await this.#subscribe(req, session, false),
      'prompts/list': async (req) => this.#page(req, 'prompts', [...this.registry.prompts.values()].map((p) => this.registry.promptListing(p))),
      'prompts/get': async (req, session, ctx, signal) => await this.#getPrompt(req, session, ctx, signal),
      'completion/complete': async (req) => await this.#complete(req),
      'logging/setLevel': async (req, session) => await this.#setLevel(req, session)
    }
  }

  observe (observer: McpObserver): void { this.#observers.push(observer) }

  // Registration API (also exposed as app.mcp.*).
  tool<S extends AnySchema> (def: ToolDefinition<S>): void { this.registry.addTool(def) }
  resource (def: ResourceDefinition): void { this.registry.addResource(def) }
  resourceTemplate (def: ResourceTemplateDefinition): void { this.registry.addResourceTemplate(def) }
  prompt (def: PromptDefinition): void { this.registry.addPrompt(def) }

  capabilities (): Record<string, unknown> {
    return {
      tools: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true },
      logging: {},
      completions: {}
    }
  }

  /** Version negotiation: echo a supported requested version, else our latest. */
  negotiate (requested: unknown): string {
    return typeof requested === 'string' && isSessionVersion(requested) ? requested : LATEST_PROTOCOL_VERSION
  }

  /** initialize: creates the session record and answers with the negotiated version. */
  async initialize (req: JsonRpcRequest, ctx: TransportContext, existing?: SessionRecord): Promise<Handled> {
    const started = performance.now()
    const params = req.params ?? {}
    const info = obj(params.clientInfo)
    const field = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '').slice(0, CLIENT_INFO_FIELD_MAX)
    const clientInfo = info ? { name: field(info.name), version: field(info.version) } : null
    const clientCapabilities = obj(params.capabilities) ?? {}
    // What the session keeps for its whole life is bounded: a larger initialize creates nothing.
    const budget = this.#opts.clientInfoBytes ?? 16_384
    const bytes = utf8Bytes(JSON.stringify(clientCapabilities)) + utf8Bytes(JSON.stringify(clientInfo))
    if (bytes > budget) {
      this.#opts.countRefusal?.('client_info_bytes')
      this.#observeRpc('initialize', 'error', ErrorCode.InvalidParams, started)
      return { response: errorResponse(req.id, ErrorCode.InvalidParams, `Invalid params: capabilities and clientInfo take ${bytes} bytes; a session keeps at most ${budget} (MAX_CLIENT_INFO_BYTES)`) }
    }
    const protocolVersion = this.negotiate(params.protocolVersion)
    const now = Date.now()
    const record: SessionRecord = {
      id: existing?.id ?? newSessionId(),
      transport: ctx.transport,
      protocolVersion,
      clientInfo,
      clientCapabilities,
      logLevel: null,
      subscriptions: [],
      identity: ctx.identity,
      initialized: false,
      createdAt: existing?.createdAt ?? now,
      lastSeenAt: now
    }
    if (existing) await this.sessions.update(record.id, record)
    else await this.sessions.create(record)
    const serverInfo: Record<string, unknown> = { name: this.#opts.name, version: this.#opts.version }
    if (this.#opts.title) serverInfo.title = this.#opts.title
    const result: Record<string, unknown> = { protocolVersion, capabilities: this.capabilities(), serverInfo }
    if (this.#opts.instructions) result.instructions = this.#opts.instructions
    this.#observeRpc('initialize', 'ok', undefined, started)
    return { response: resultResponse(req.id, result), created: record }
  }

  /** A client request (not initialize): dispatch, with cancellation and observers. */
  async request (req: JsonRpcRequest, session: SessionRecord | undefined, ctx: TransportContext): Promise<Handled> {
    const started = performance.now()
    const handler = this.#handlers[req.method]
    if (handler === undefined) {
      this.#observeRpc(req.method, 'error', ErrorCode.MethodNotFound, started)
      return { response: errorResponse(req.id, ErrorCode.MethodNotFound, `Method not found: ${cap(req.method)}`) }
    }
    const sid = session?.id ?? ctx.stateless?.sid ?? ''
    const running = this.#perSession.get(sid) ?? 0
    if (running >= (this.#opts.maxInflightPerSession ?? 32)) {
      this.#observeRpc(req.method, 'error', ErrorCode.ServerBusy, started)
      return { response: errorResponse(req.id, ErrorCode.ServerBusy, `Too many concurrent requests in this session (limit ${this.#opts.maxInflightPerSession ?? 32}); retry when one finishes`) }
    }
    const key = `${sid}:${String(req.id)}`
    if (this.#inflight.has(key)) {
      this.#observeRpc(req.method, 'error', ErrorCode.InvalidRequest, started)
      return { response: errorResponse(req.id, ErrorCode.InvalidRequest, `Request id ${cap(String(req.id))} is already in use by a request still running in this session`) }
    }
    const inflight = new Inflight()
    this.#inflight.set(key, inflight)
    this.#perSession.set(sid, running + 1)
    const untrack = session === undefined ? undefined : this.#opts.tracker?.running(sid, req.id)
    try {
      const result = await handler(req, session, ctx, inflight)
      if (inflight.cancelled) return { response: null }
      this.#observeRpc(req.method, 'ok', undefined, started)
      return { response: resultResponse(req.id, result) }
    } catch (err) {
      if (inflight.cancelled) return { response: null }
      if (err instanceof InputRequiredSignal && ctx.stateless !== undefined) {
        // MRTR: ask the client for what the handler is missing; it retries with the answers.
        this.#observeRpc(req.method, 'ok', undefined, started)
        return {
          response: resultResponse(req.id, {
            resultType: 'input_required',
            inputRequests: Object.fromEntries(err.asks),
            requestState: ctx.stateless.seal(ctx.stateless.input.used)
          })
        }
      }
      const code = err instanceof RpcError ? err.code : ErrorCode.InternalError
      this.#observeRpc(req.method, 'error', code, started)
      if (err instanceof RpcError) return { response: errorResponse(req.id, err.code, err.message, err.data) }
      if (err instanceof UserError) return { response: errorResponse(req.id, ErrorCode.InternalError, err.message) }
      return { response: errorResponse(req.id, ErrorCode.InternalError, this.#unexpected(err, req, ctx)) }
    } finally {
      untrack?.()
      this.#inflight.delete(key)
      const left = (this.#perSession.get(sid) ?? 1) - 1
      if (left <= 0) this.#perSession.delete(sid)
      else this.#perSession.set(sid, left)
    }
  }

  /** A client notification. */
  async notification (msg: JsonRpcNotification, session: SessionRecord | undefined): Promise<void> {
    const params = msg.params ?? {}
    switch (msg.method) {
      case 'notifications/initialized':
        if (session && !session.initialized) await this.sessions.update(session.id, { initialized: true })
        break
      case 'notifications/cancelled': {
        const id = params.requestId
        if (typeof id === 'string' || typeof id === 'number') this.cancel(session?.id ?? '', id, str(params.reason))
        break
      }
      default:
        // notifications/roots/list_changed, notifications/progress and unknown ones need no action.
        break
    }
  }

  /** Aborts a request in flight on this process; false when it is not running here. */
  cancel (sessionId: string, requestId: RequestId, reason?: string): boolean {
    const inflight = this.#inflight.get(`${sessionId}:${String(requestId)}`)
    inflight?.abort(reason ?? 'cancelled')
    return inflight !== undefined
  }

  /** Aborts every request of a session running on this process (its client went away, or the session ended). */
  cancelSession (sessionId: string, reason: string): number {
    const prefix = `${sessionId}:`
    let n = 0
    for (const [key, inflight] of this.#inflight) {
      if (key.startsWith(prefix)) {
        inflight.abort(reason)
        n++
      }
    }
    return n
  }

  /**
   * A client's response to one of our server→client requests; false when nobody here awaits it.
   * Only the call of that session waiting for that id completes (ids are random, never reused).
   */
  response (msg: JsonRpcResponse, sessionId: string): boolean {
    const key = `${sessionId}:${String(msg.id)}`
    const pending = this.#pending.get(key)
    if (pending === undefined) return false
    this.#pending.delete(key)
    clearTimeout(pending.timer)
    if ('error' in msg) pending.reject(new RpcError(msg.error.code, msg.error.message, msg.error.data))
    else pending.resolve(msg.result)
    return true
  }

  /** Whether a server→client request with this id is awaited here (scale-out routing). */
  awaits (sessionId: string, id: RequestId): boolean {
    return this.#pending.has(`${sessionId}:${String(id)}`)
  }

  /** Notifies every session subscribed to `uri` that it changed: work in proportion to its subscribers. */
  async resourceUpdated (uri: string): Promise<void> {
    const message: JsonRpcNotification = { jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } }
    for (const id of await this.sessions.subscribers(uri)) {
      const s = await this.sessions.get(id)
      if (s !== undefined) await this.#opts.notify(s, message)
    }
  }

  /** Aborts every in-flight handler and rejects every pending client request (shutdown). */
  close (): void {
    for (const c of this.#inflight.values()) c.abort('server shutting down')
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(new RpcError(ErrorCode.InternalError, 'Server shutting down'))
    }
    this.#pending.clear()
  }

  get inflight (): number { return this.#inflight.size }

  #observeRpc (method: string, outcome: 'ok' | 'error', code: number | undefined, started: number): void {
    if (this.#observers.length === 0) return
    const e = { method, outcome, code, ms: performance.now() - started }
    for (const o of this.#observers) o.rpc?.(e)
  }

  async #listChanged (kind: ListKind): Promise<void> {
    const message: JsonRpcNotification = { jsonrpc: '2.0', method: `notifications/${kind}/list_changed` }
    for (const id of await this.sessions.ids()) {
      const s = await this.sessions.get(id)
      if (s?.initialized) await this.#opts.notify(s, message).catch(ignore('a session whose stream is gone misses a notification it cannot receive'))
    }
  }

  #page (req: JsonRpcRequest, field: string, items: Record<string, unknown>[]): Record<string, unknown> {
    const size = this.#opts.pageSize ?? 100
    const offset = decodeCursor(req.params?.cursor)
    const page = items.slice(offset, offset + size)
    const result: Record<string, unknown> = { [field]: page }
    if (offset + size < items.length) result.nextCursor = encodeCursor(offset + size)
    return result
  }

  #context (req: JsonRpcRequest, session: SessionRecord | undefined, ctx: TransportContext, signal: Inflight): CallContext {
    const meta = obj(req.params?._meta)
    const progressToken = meta?.progressToken
    const hasToken = typeof progressToken === 'string' || typeof progressToken === 'number'
    const stateless = ctx.stateless
    type Ask = (method: string, params: Record<string, unknown>, options?: AskOptions) => Promise<Record<string, unknown>>
    const ask: Ask = async (method, params, options) => stateless === undefined
      ? await this.#clientRequest(method, params, session, ctx, signal, options?.timeoutMs)
      : await this.#inputRequest(method, params, stateless, options?.key)
    // The typed overloads of CallContext.request over the one untyped ask (results are the client's JSON).
    const request = ask as CallContext['request']
    return {
      session,
      era: stateless === undefined ? 'session' : 'stateless',
      clientCapabilities: stateless?.clientCapabilities ?? session?.clientCapabilities ?? {},
      resumed: stateless?.resumed ?? false,
      requestId: req.id,
      get signal () { return signal.signal },
      identity: ctx.identity,
      auth: ctx.auth ?? null,
      progress: async (progress, total, message) => {
        if (!hasToken || signal.aborted) return
        const params: Record<string, unknown> = { progressToken, progress }
        if (total !== undefined) params.total = total
        if (message !== undefined) params.message = message
        await ctx.send({ jsonrpc: '2.0', method: 'notifications/progress', params })
      },
      log: async (level, data, logger) => {
        // Stateless requests opt in to logs per request; without a level they get none.
        if (stateless !== undefined && stateless.logLevel === undefined) return
        const threshold = stateless?.logLevel ?? session?.logLevel ?? 'info'
        if (signal.aborted || levelRank(level) < levelRank(threshold)) return
        const params: Record<string, unknown> = { level, data }
        if (logger !== undefined) params.logger = logger
        await ctx.send({ jsonrpc: '2.0', method: 'notifications/message', params })
      },
      request,
      closeStream: () => { ctx.closeStream?.() },
      elicit: async (message, requestedSchema, options) => await elicit(request, message, requestedSchema, options),
      sample: async (params, options) => await request('sampling/createMessage', params, options)
    }
  }

  /** Stateless era: the answer comes from the retry (MRTR); missing → InputRequiredResult. */
  async #inputRequest (
    method: string, params: Record<string, unknown>, call: StatelessCall, key: string | undefined
  ): Promise<Record<string, unknown>> {
    const capability = CAPABILITY_FOR[method]
    if (capability === undefined) throw new RpcError(ErrorCode.InternalError, `${method} cannot be asked of a client`)
    if (call.clientCapabilities[capability] === undefined) {
      throw new RpcError(ErrorCode.MissingRequiredClientCapability, `This request needs the client's ${capability} capability (declare it in _meta["io.modelcontextprotocol/clientCapabilities"])`, { requiredCapabilities: { [capability]: {} } })
    }
    return await call.input.ask(method, params, key)
  }

  async #clientRequest (
    method: string,
    params: Record<string, unknown>,
    session: SessionRecord | undefined,
    ctx: TransportContext,
    signal: Inflight,
    timeoutMs?: number
  ): Promise<Record<string, unknown>> {
    const capability = CAPABILITY_FOR[method]
    if (capability !== undefined && session?.clientCapabilities[capability] === undefined) {
      throw new RpcError(ErrorCode.InvalidRequest, `The client does not support ${capability} (no "${capability}" capability)`)
    }
    // Random (96 bits), so ids never collide across replicas or restarts of one session's server.
    const id = `srv-${randomBytes(12).toString('base64url')}`
    const sid = session?.id ?? ''
    const key = `${sid}:${id}`
    const wait = timeoutMs ?? this.#opts.clientRequestTimeoutMs ?? 60_000
    const tracker = session === undefined ? undefined : this.#opts.tracker
    // Recorded before the client can see the request, so its answer is routed here wherever it lands.
    await tracker?.awaiting(sid, id, wait + 5000)
    if (signal.aborted) {
      tracker?.settled(sid, id)
      throw new RpcError(ErrorCode.InternalError, 'Request cancelled')
    }
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key)
        reject(new RpcError(ErrorCode.InternalError, `The client did not answer ${method} within ${wait} ms`))
      }, wait)
      timer.unref()
      this.#pending.set(key, { resolve, reject, timer })
      signal.signal.addEventListener('abort', () => {
        const p = this.#pending.get(key)
        if (p === undefined) return
        this.#pending.delete(key)
        clearTimeout(p.timer)
        reject(new RpcError(ErrorCode.InternalError, 'Request cancelled'))
      }, { once: true })
    })
    try {
      await ctx.send({ jsonrpc: '2.0', id, method, params })
      return await answer
    } finally {
      tracker?.settled(sid, id)
      const p = this.#pending.get(key)
      if (p !== undefined) {
        // The send failed: nobody will answer.
        this.#pending.delete(key)
        clearTimeout(p.timer)
      }
    }
  }

  async #callTool (
    req: JsonRpcRequest, session: SessionRecord | undefined, ctx: TransportContext, signal: Inflight
  ): Promise<Record<string, unknown>> {
    const name = str(req.params?.name)
    if (name === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.name must be a string')
    const tool = this.registry.tools.get(name)
    if (tool === undefined) throw new RpcError(ErrorCode.InvalidParams, `Unknown tool: ${cap(name)}`)
    const rawArgs = req.params?.arguments ?? {}
    const started = performance.now()
    let result: CallToolResult
    // Per 2025-11-25, input validation errors are tool results the model can read and correct.
    const checked = obj(rawArgs) === undefined
      ? { ok: false as const, problems: ['/: arguments must be an object'] }
      : await tool.input.validate(rawArgs)
    if (!checked.ok) {
      result = { content: [{ type: 'text', text: describeProblems(`Invalid arguments for tool ${cap(name)}`, checked.problems) }], isError: true }
    } else {
      // The tool timeout aborts the request's own controller with TOOL_TIMEOUT as the reason: the
      // handler sees one signal, and the caller still answers (cancellation alone sends nothing).
      const timeoutMs = this.#opts.toolTimeoutMs ?? 60_000
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<CallToolResult>((resolve) => {
        timer = setTimeout(() => {
          this.#inflight.get(`${session?.id ?? ctx.stateless?.sid ?? ''}:${String(req.id)}`)?.abort(TOOL_TIMEOUT)
          resolve({ content: [{ type: 'text', text: `Tool ${cap(name)} timed out after ${timeoutMs} ms` }], isError: true })
        }, timeoutMs)
      })
      try {
        const returned: CallToolResult | string = await Promise.race([
          Promise.resolve(tool.def.handler(checked.value as never, this.#context(req, session, ctx, signal))), timedOut
        ])
        // A plain string is the tool's text, as the SDK and fastmcp take it.
        result = typeof returned === 'string' ? { content: [{ type: 'text', text: returned }] } : returned
      } catch (err) {
        if (err instanceof InputRequiredSignal) throw err
        if (err instanceof RpcError && err.code !== ErrorCode.InternalError && err.code !== ErrorCode.InvalidRequest) throw err
        // A UserError (and the server's own RpcErrors: cancelled, client timeouts) is for the model;
        // anything else is a bug the operator reads in the log, not the client.
        const text = err instanceof UserError || err instanceof RpcError ? err.message : this.#unexpected(err, req, ctx, `tool ${cap(name)}`)
        result = { content: [{ type: 'text', text }], isError: true }
      } finally {
        clearTimeout(timer)
      }
      if (tool.output !== undefined && result.isError !== true) result = await this.#checkOutput(name, tool.output, result)
      else if (result.structuredContent !== undefined) result = mirrorStructured(result)
    }
    if (this.#observers.length > 0) {
      const e = { name, ms: performance.now() - started, isError: result.isError === true }
      for (const o of this.#observers) o.tool?.(e)
    }
    return result as unknown as Record<string, unknown>
  }

  /**
   * A handler threw something that is not for the client: one error-level line with the stack, the
   * JSON-RPC id and a fresh error id (on the HTTP request's logger, so with its request id too);
   * the client is told only that id.
   */
  #unexpected (err: unknown, req: JsonRpcRequest, ctx: TransportContext, what = req.method): string {
    const errorId = randomUUID()
    const log = ctx.log ?? this.#opts.log
    log?.error({ err, errorId, rpcMethod: req.method, rpcId: req.id }, `${what} failed`)
    return `Internal error in ${what} (error id ${errorId}; the server log has the details)`
  }

  /**
   * 2025-06-18+: a tool with an outputSchema must return structuredContent that validates. A result
   * that does not is the tool author's bug: the caller gets a tool error, the author a log line.
   */
  async #checkOutput (name: string, output: Validator, result: CallToolResult): Promise<CallToolResult> {
    const sc = result.structuredContent
    const checked = sc === undefined || obj(sc) === undefined
      ? { ok: false as const, problems: [`/: structuredContent ${sc === undefined ? 'is missing' : 'must be an object'}`] }
      : await output.validate(sc)
    if (checked.ok) return mirrorStructured(result)
    const text = describeProblems(`Tool ${name} returned a result that does not match its outputSchema`, checked.problems)
    this.#opts.warn?.({ tool: name, problems: checked.problems.slice(0, 5) }, text)
    return { content: [{ type: 'text', text }], isError: true }
  }

  async #readResource (
    req: JsonRpcRequest, session: SessionRecord | undefined, ctx: TransportContext, signal: Inflight
  ): Promise<Record<string, unknown>> {
    const uri = str(req.params?.uri)
    if (uri === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.uri must be a string')
    const direct = this.registry.resources.get(uri)
    const context = this.#context(req, session, ctx, signal)
    if (direct) return await direct.read(uri, context) as unknown as Record<string, unknown>
    const match = this.registry.matchTemplate(uri)
    if (match) {
      let variables = match.variables
      if (match.check !== undefined) {
        const checked = await match.check.validate(variables)
        if (!checked.ok) throw new RpcError(ErrorCode.InvalidParams, describeProblems(`Invalid variables for resource template ${match.def.uriTemplate}`, checked.problems))
        variables = checked.value as Record<string, string>
      }
      return await match.def.read(uri, variables, context) as unknown as Record<string, unknown>
    }
    throw new RpcError(ErrorCode.ResourceNotFound, 'Resource not found', { uri: cap(uri, 2048) })
  }

  /** resources/subscribe and unsubscribe: one atomic add/remove in the store, within the session's budgets. */
  async #subscribe (req: JsonRpcRequest, session: SessionRecord | undefined, on: boolean): Promise<Record<string, unknown>> {
    const uri = str(req.params?.uri)
    if (uri === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.uri must be a string')
    if (session === undefined) throw new RpcError(ErrorCode.InvalidRequest, 'Subscriptions need a session')
    if (!on) {
      await this.sessions.unsubscribe(session.id, uri)
      return {}
    }
    const maxBytes = this.#opts.maxUriBytes ?? 2048
    if (utf8Bytes(uri) > maxBytes) {
      this.#opts.countRefusal?.('uri_bytes')
      throw new RpcError(ErrorCode.InvalidParams, `Resource URI longer than the MAX_URI_BYTES budget (${maxBytes} bytes): ${cap(uri)}`)
    }
    const max = this.#opts.maxSubscriptionsPerSession ?? 64
    const outcome = await this.sessions.subscribe(session.id, uri, max)
    if (outcome === 'full') {
      this.#opts.countRefusal?.('subscriptions_per_session')
      throw new RpcError(ErrorCode.InvalidParams, `Over the MAX_SUBSCRIPTIONS_PER_SESSION budget (${max} resources); unsubscribe from some first: ${cap(uri)}`)
    }
    if (outcome === 'gone') throw new RpcError(ErrorCode.InvalidRequest, 'Session not found')
    return {}
  }

  async #getPrompt (
    req: JsonRpcRequest, session: SessionRecord | undefined, ctx: TransportContext, signal: Inflight
  ): Promise<Record<string, unknown>> {
    const name = str(req.params?.name)
    if (name === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.name must be a string')
    const prompt = this.registry.prompts.get(name)
    if (prompt === undefined) throw new RpcError(ErrorCode.InvalidParams, `Unknown prompt: ${cap(name)}`)
    const given = req.params?.arguments
    if (given !== undefined && obj(given) === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.arguments must be an object of strings')
    let args: Record<string, string> = {}
    for (const [k, v] of Object.entries(obj(given) ?? {})) {
      if (typeof v !== 'string') throw new RpcError(ErrorCode.InvalidParams, `Prompt argument ${cap(k, 60)} must be a string`)
      args[k] = v
    }
    const missing = (prompt.arguments ?? []).filter((a) => a.required === true && args[a.name] === undefined).map((a) => a.name)
    if (missing.length > 0) throw new RpcError(ErrorCode.InvalidParams, cap(`Missing required prompt arguments: ${missing.join(', ')}`, 1000))
    const schema = this.registry.promptArgs(name)
    if (schema !== undefined) {
      const checked = await schema.validate(args)
      if (!checked.ok) throw new RpcError(ErrorCode.InvalidParams, describeProblems(`Invalid arguments for prompt ${name}`, checked.problems))
      args = checked.value as Record<string, string>
    }
    return await prompt.get(args, this.#context(req, session, ctx, signal)) as unknown as Record<string, unknown>
  }

  async #complete (req: JsonRpcRequest): Promise<Record<string, unknown>> {
    const ref = obj(req.params?.ref)
    const argument = obj(req.params?.argument)
    const argName = str(argument?.name)
    const value = str(argument?.value)
    if (ref === undefined || argName === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.ref and params.argument.name are required')
    if (value === undefined) throw new RpcError(ErrorCode.InvalidParams, 'params.argument.value must be a string')
    const context = req.params?.context
    const contextArgs = obj(context)?.arguments
    if ((context !== undefined && obj(context) === undefined) ||
      (contextArgs !== undefined && Object.values(obj(contextArgs) ?? { bad: null }).some((v) => typeof v !== 'string'))) {
      throw new RpcError(ErrorCode.InvalidParams, 'params.context.arguments must be an object of strings')
    }
    let completer: ((value: string) => string[] | Promise<string[]>) | undefined
    if (ref.type === 'ref/prompt') {
      const refName = str(ref.name)
      if (refName === undefined) throw new RpcError(ErrorCode.InvalidParams, 'ref.name must be a string')
      const prompt = this.registry.prompts.get(refName)
      if (prompt === undefined) throw new RpcError(ErrorCode.InvalidParams, `Unknown prompt: ${cap(refName)}`)
      completer = Object.hasOwn(prompt.complete ?? {}, argName) ? prompt.complete?.[argName] : undefined
    } else if (ref.type === 'ref/resource') {
      const refUri = str(ref.uri)
      if (refUri === undefined) throw new RpcError(ErrorCode.InvalidParams, 'ref.uri must be a string')
      const template = this.registry.templates.get(refUri)
      if (template === undefined) throw new RpcError(ErrorCode.InvalidParams, `Unknown resource template: ${cap(refUri)}`)
      completer = Object.hasOwn(template.def.complete ?? {}, argName) ? template.def.complete?.[argName] : undefined
    } else {
      throw new RpcError(ErrorCode.InvalidParams, 'ref.type must be ref/prompt or ref/resource')
    }
    const all = completer ? await completer(value) : []
    const values = all.slice(0, 100)
    return { completion: { values, total: all.length, hasMore: all.length > values.length } }
  }

  async #setLevel (req: JsonRpcRequest, session: SessionRecord | undefined): Promise<Record<string, unknown>> {
    const level = str(req.params?.level)
    if (level === undefined || !(LOGGING_LEVELS as readonly string[]).includes(level)) {
      throw new RpcError(ErrorCode.InvalidParams, `level must be one of ${LOGGING_LEVELS.join(', ')}`)
    }
    if (session) {
      session.logLevel = level as LoggingLevel
      await this.sessions.update(session.id, { logLevel: session.logLevel })
    }
    return {}
  }
}

/** ctx.elicit: elicitation/create in form mode; accepted content checked against a TypeBox schema. */
async function elicit (
  request: CallContext['request'], message: string, requestedSchema: TSchema | JsonSchemaObject, options: AskOptions | undefined
): Promise<ElicitResult<never>> {
  const result = await request('elicitation/create', { message, requestedSchema: { ...requestedSchema } }, options)
  if (result.action === 'accept' && KindGuard.IsSchema(requestedSchema) && !Value.Check(requestedSchema, result.content ?? {})) {
    const first = Value.Errors(requestedSchema, result.content ?? {}).First()
    throw new RpcError(ErrorCode.InvalidParams, `The client's elicitation answer does not match requestedSchema${first === undefined ? '' : `: ${first.path || '/'} ${first.message}`}`)
  }
  return result as ElicitResult<never>
}
