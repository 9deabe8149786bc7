import type { RequestId } from './jsonrpc.js'
import type { LoggingLevel, SessionRecord } from './sessions/store.js'
import type { ContentBlock, Declared, JsonSchemaObject } from './registry.js'
import type { TSchema } from '@sinclair/typebox'

/** elicitation/create's params (form mode: `requestedSchema`; URL mode: `mode: 'url'`, `url`, `elicitationId`). */
export interface ElicitParams { message: string, requestedSchema?: Record<string, unknown>, [key: string]: unknown }
/** What the client answered an elicitation with; `content` only when accepted. */
export interface ElicitResult<Content = Record<string, unknown>> { action: 'accept' | 'decline' | 'cancel', content?: Content, [key: string]: unknown }
export interface SamplingMessage { role: 'user' | 'assistant', content: ContentBlock | ContentBlock[] }
/** sampling/createMessage's params. */
export interface CreateMessageParams { messages: SamplingMessage[], maxTokens: number, systemPrompt?: string, [key: string]: unknown }
/** What the client's model answered. */
export interface CreateMessageResult { role: 'user' | 'assistant', content: ContentBlock | ContentBlock[], model: string, stopReason?: string, [key: string]: unknown }
export interface ListRootsResult { roots: Array<{ uri: string, name?: string }>, [key: string]: unknown }
/** The requests a server may send a client, with their params and results. */
export interface ClientRequests {
  'elicitation/create': { params: ElicitParams, result: ElicitResult }
  'sampling/createMessage': { params: CreateMessageParams, result: CreateMessageResult }
  'roots/list': { params: Record<string, unknown>, result: ListRootsResult }
}
export interface AskOptions { timeoutMs?: number, key?: string }

/**
 * Who called (`ctx.auth`), as the route's authentication found them: a static token (its name), an
 * OAuth access token (its subject, scopes and claims) or the app's own `authenticate` hook.
 */
export interface AuthInfo {
  /** How the caller authenticated. */
  kind: 'token' | 'oauth' | 'custom'
  /** OAuth: the JWT `sub`; custom: the hook's subject; static tokens: the token's name. */
  subject: string
  /** Static tokens: the name from `AUTH_TOKENS=name:token` (unnamed: `client-1`, `client-2`, …; `operator-1`, … for OPERATOR_TOKENS). */
  tokenName?: string
  /** OAuth: the token's scopes; custom: what the hook gave; static tokens: none. */
  scopes: string[]
  /** OAuth: every claim of the verified JWT; custom: what the hook gave; static tokens: none. */
  claims: Record<string, unknown>
  role: 'client' | 'operator'
}

/** What a handler gets besides its arguments. */
export interface CallContext {
  /** The session (undefined for stateless 2026-07-28 requests). */
  session: SessionRecord | undefined
  /** `session`: a session-era request (2024-11-05 … 2025-11-25, after initialize); `stateless`: a 2026-07-28 request. */
  era: 'session' | 'stateless'
  /** What the client declared: at initialize (session era) or in this request's `_meta` (stateless era). */
  clientCapabilities: Record<string, unknown>
  /** Stateless era: this request is an MRTR retry carrying requestState the server issued and verified. */
  resumed: boolean
  requestId: RequestId
  /** Aborted when the client cancels (notifications/cancelled) or the server shuts down. */
  signal: AbortSignal
  /** The caller's auth identity (token fingerprint or JWT subject), null when auth is off. */
  identity: string | null
  /** Who called (subject, scopes, claims or token name); null when auth is off. */
  auth: AuthInfo | null
  /** Reports progress when the client sent `_meta.progressToken`; otherwise a no-op. */
  progress (progress: number, total?: number, message?: string): Promise<void>
  /** Sends `notifications/message` tied to this request, filtered by the session's log level. */
  log (level: LoggingLevel, data: unknown, logger?: string): Promise<void>
  /**
   * Asks the client (sampling/createMessage, elicitation/create, roots/list) and resolves with its
   * result. Session era: a server→client request on the request's stream; rejects with an RpcError
   * when the client answers with an error, lacks the capability, or after `timeoutMs`.
   * Stateless era (MRTR): answered from the client's retry; until then the handler is stopped and
   * the client gets an InputRequiredResult with this ask under `key` (default `input-<n>`), so the
   * handler must not swallow what this throws, and runs again from the top on the retry.
   * A missing capability is -32021 there.
   */
  request<M extends keyof ClientRequests> (method: M, params: ClientRequests[M]['params'], options?: AskOptions): Promise<ClientRequests[M]['result']>
  request (method: string, params: Record<string, unknown>, options?: AskOptions): Promise<Record<string, unknown>>
  /**
   * Asks the user through the client (elicitation/create, form mode), as `request` does. With a
   * TypeBox schema, accepted content is checked against it (a mismatch rejects with an RpcError)
   * and typed by it; a plain JSON Schema object gives `Record<string, unknown>`.
   */
  elicit<S extends TSchema | JsonSchemaObject> (
    message: string, requestedSchema: S, options?: AskOptions
  ): Promise<ElicitResult<Declared<S, Record<string, unknown>>>>
  /** Asks the client's model (sampling/createMessage), as `request` does. */
  sample (params: CreateMessageParams, options?: AskOptions): Promise<CreateMessageResult>
  /**
   * SEP-1699 polling: closes this request's SSE stream now (the client reconnects with
   * Last-Event-ID and gets the rest). A no-op when the transport cannot stream.
   */
  closeStream (): void
}
