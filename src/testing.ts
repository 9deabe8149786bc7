/**
 * `sse-mcp-server/testing`: an MCP client over `app.inject` (no port, no socket) for integration
 * tests of tools, resources and prompts. It opens a Streamable HTTP session, answers what the
 * server asks (elicitation, sampling, roots) through `onRequest`, and keeps every notification it
 * received (progress, logs) in `notifications`.
 */
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { RpcError, ErrorCode } from './mcp/jsonrpc.js'
import { LATEST_PROTOCOL_VERSION } from './meta.js'
import type { CatalogTool } from './mcp/registry.js'
import type { CallToolResult, GetPromptResult, ReadResourceResult } from './mcp/registry.js'

/** What `connectInject` needs of the app: its `inject` (any Fastify instance). */
export interface Injectable {
  inject: (opts: InjectOptions) => Promise<LightMyRequestResponse>
}

export interface InjectClientOptions {
  /** Where the MCP endpoint is (the plugin's prefix + /mcp); default `/mcp`. */
  path?: string
  /** Sent with every request, e.g. `{ authorization: 'Bearer …' }`. */
  headers?: Record<string, string>
  /** A session-era version (default the latest). */
  protocolVersion?: string
  clientInfo?: { name: string, version: string }
  /** Declared at initialize; defaults to `{ elicitation: {}, sampling: {}, roots: {} }` when `onRequest` is given. */
  capabilities?: Record<string, unknown>
  /** Answers the server's requests to the client (elicitation/create, sampling/createMessage, roots/list). */
  onRequest?: (method: string, params: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>
}

export interface Notification { method: string, params?: Record<string, unknown> }
/** The SDK's `callTool` argument. */
export interface CallToolParams { name: string, arguments?: Record<string, unknown>, _meta?: Record<string, unknown> }
/** A tool as tools/list shows it (the catalog's shape, plus whatever else a server adds). */
export interface ToolListing extends CatalogTool { [key: string]: unknown }

export interface InjectClient {
  readonly sessionId: string
  /** The initialize result (`serverInfo`, `capabilities`, `protocolVersion`, `instructions`). */
  readonly initialized: Record<string, unknown>
  /** Every notification the server sent on this client's requests, oldest first. */
  readonly notifications: Notification[]
  listTools (): Promise<{ tools: ToolListing[], nextCursor?: string }>
  /**
   * A tool's result; a tool error is `{ isError: true }`, a protocol error rejects with an RpcError.
   * `callTool(name, args)`, or the SDK's shape `callTool({ name, arguments, _meta })`; `_meta` is
   * sent as given (e.g. `{ progressToken: 'mine' }`; without one, a token `p<id>` is sent).
   */
  callTool (name: string, args?: Record<string, unknown>, options?: { _meta?: Record<string, unknown> }): Promise<CallToolResult>
  callTool (params: CallToolParams): Promise<CallToolResult>
  listResources (): Promise<{ resources: Array<Record<string, unknown>>, nextCursor?: string }>
  readResource (uri: string): Promise<ReadResourceResult>
  listPrompts (): Promise<{ prompts: Array<Record<string, unknown>>, nextCursor?: string }>
  getPrompt (name: string, args?: Record<string, string>): Promise<GetPromptResult>
  /** Any method; resolves to its result, rejects with an RpcError for a JSON-RPC error. */
  request (method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>
  notify (method: string, params?: Record<string, unknown>): Promise<void>
  /** Ends the session (DELETE). */
  close (): Promise<void>
}

interface Message { jsonrpc: '2.0', id?: string | number | null, method?: string, params?: Record<string, unknown>, result?: Record<string, unknown>, error?: { code: number, message: string, data?: unknown } }

/** Splits an SSE text into its events' data (JSON-RPC messages); comments and empty data are skipped. */
function * sseMessages (text: string): Generator<Message> {
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5)).join('\n')
    if (data !== '') yield JSON.parse(data) as Message
  }
}

const header = (res: LightMyRequestResponse, name: string): string => {
  const v = res.headers[name]
  return Array.isArray(v) ? (v[0] ?? '') : String(v ?? '')
}

/** Opens a session on `app` (built, not necessarily listening) and returns a client for it. */
export async function connectInject (app: Injectable, options: InjectClientOptions = {}): Promise<InjectClient> {
  const path = options.path ?? '/mcp'
  const protocolVersion = options.protocolVersion ?? LATEST_PROTOCOL_VERSION
  const notifications: Notification[] = []
  let nextId = 0
  let sessionId = ''

  const headers = (): Record<string, string> => ({
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': protocolVersion,
    ...(sessionId === '' ? {} : { 'mcp-session-id': sessionId }),
    ...options.headers
  })

  async function post (message: Message, stream: boolean): Promise<LightMyRequestResponse> {
    return await app.inject({ method: 'POST', url: path, headers: headers(), payload: JSON.stringify(message), payloadAsStream: stream })
  }

  /** A server→client request met on a stream: answered at once through the same endpoint. */
  async function answer (msg: Message): Promise<void> {
    let reply: Message
    try {
      if (options.onRequest === undefined) throw new RpcError(ErrorCode.MethodNotFound, `The test client does not handle ${String(msg.method)}`)
      reply = { jsonrpc: '2.0', id: msg.id, result: await options.onRequest(msg.method ?? '', msg.params ?? {}) }
    } catch (err) {
      const code = err instanceof RpcError ? err.code : ErrorCode.InternalError
      reply = { jsonrpc: '2.0', id: msg.id, error: { code, message: err instanceof Error ? err.message : String(err) } }
    }
    await post(reply, false)
  }

  async function request (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++nextId
    // A progress token on every request, so the server's progress reaches `notifications`.
    const meta = { progressToken: `p${id}`, ...(params._meta as Record<string, unknown> | undefined) }
    const res = await post({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }, true)
    let response: Message | undefined
    if (header(res, 'content-type').startsWith('text/event-stream')) {
      let buffer = ''
      for await (const chunk of res.stream()) {
        buffer += String(chunk)
        const end = buffer.lastIndexOf('\n\n')
        if (end < 0) continue
        const complete = buffer.slice(0, end + 2)
        buffer = buffer.slice(end + 2)
        for (const msg of sseMessages(complete)) {
          if (msg.method !== undefined && msg.id !== undefined) await answer(msg)
          else if (msg.method !== undefined) notifications.push({ method: msg.method, params: msg.params })
          else if (msg.id === id) response = msg
        }
      }
    } else {
      const chunks: Buffer[] = []
      for await (const chunk of res.stream()) chunks.push(Buffer.from(chunk as Buffer))
      const text = Buffer.concat(chunks).toString('utf8')
      if (method === 'initialize') sessionId = header(res, 'mcp-session-id')
      try { response = JSON.parse(text) as Message } catch {
        throw new Error(`${method}: HTTP ${res.statusCode} ${text.slice(0, 200)}`)
      }
      if (res.statusCode >= 400 && response.error === undefined) throw new Error(`${method}: HTTP ${res.statusCode} ${text.slice(0, 200)}`)
    }
    if (response === undefined) throw new Error(`${method}: HTTP ${res.statusCode} without a response`)
    if (response.error !== undefined) throw new RpcError(response.error.code, response.error.message, response.error.data)
    return response.result ?? {}
  }

  async function notify (method: string, params?: Record<string, unknown>): Promise<void> {
    const res = await post({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) }, false)
    if (res.statusCode !== 202) throw new Error(`${method}: HTTP ${res.statusCode} ${res.body.slice(0, 200)}`)
  }

  const capabilities = options.capabilities ?? (options.onRequest === undefined ? {} : { elicitation: {}, sampling: {}, roots: {} })
  const initialized = await request('initialize', {
    protocolVersion,
    capabilities,
    clientInfo: options.clientInfo ?? { name: 'sse-mcp-server-testing', version: '1.0.0' }
  })
  if (sessionId === '') throw new Error('initialize did not open a session (no Mcp-Session-Id)')
  await notify('notifications/initialized')

  return {
    get sessionId () { return sessionId },
    initialized,
    notifications,
    listTools: async () => await request('tools/list') as unknown as { tools: ToolListing[], nextCursor?: string },
    callTool: async (
      nameOrParams: string | CallToolParams, args: Record<string, unknown> = {}, options: { _meta?: Record<string, unknown> } = {}
    ) => {
      const { name, arguments: given = {}, _meta } = typeof nameOrParams === 'string' ? { name: nameOrParams, arguments: args, _meta: options._meta } : nameOrParams
      return await request('tools/call', { name, arguments: given, ...(_meta === undefined ? {} : { _meta }) }) as unknown as CallToolResult
    },
    listResources: async () => await request('resources/list') as { resources: Array<Record<string, unknown>>, nextCursor?: string },
    readResource: async (uri) => await request('resources/read', { uri }) as unknown as ReadResourceResult,
    listPrompts: async () => await request('prompts/list') as { prompts: Array<Record<string, unknown>>, nextCursor?: string },
    getPrompt: async (name, args = {}) => await request('prompts/get', { name, arguments: args }) as unknown as GetPromptResult,
    request,
    notify,
    async close () {
      // An app already closed took its sessions with it.
      await app.inject({ method: 'DELETE', url: path, headers: headers() }).catch((err: unknown) => {
        if ((err as { code?: unknown }).code !== 'FST_ERR_REOPENED_CLOSE_SERVER') throw err
      })
    }
  }
}
