import type { RequestId } from './jsonrpc.js'
import type { LoggingLevel, SessionRecord } from './session.js'

/** What a tool/resource/prompt handler gets besides its arguments. */
export interface CallContext {
  /** The session (undefined in stateless mode). */
  session: SessionRecord | undefined
  requestId: RequestId
  /** Aborted when the client cancels (notifications/cancelled) or the server shuts down. */
  signal: AbortSignal
  /** The caller's auth identity (token fingerprint or JWT subject), null when auth is off. */
  identity: string | null
  /** Reports progress when the client sent `_meta.progressToken`; otherwise a no-op. */
  progress (progress: number, total?: number, message?: string): Promise<void>
  /** Sends `notifications/message` tied to this request, filtered by the session's log level. */
  log (level: LoggingLevel, data: unknown, logger?: string): Promise<void>
  /**
   * Sends a server→client request (sampling/createMessage, elicitation/create, roots/list) and
   * awaits the client's response. Rejects with an RpcError when the client answers with an error,
   * when the client lacks the capability, or after `timeoutMs`.
   */
  request (method: string, params: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<Record<string, unknown>>
  /**
   * SEP-1699 polling: closes this request's SSE stream now (the client reconnects with
   * Last-Event-ID and gets the rest). A no-op when the transport cannot stream.
   */
  closeStream (): void
}
