import { randomBytes } from 'node:crypto'

export type LoggingLevel = 'debug' | 'info' | 'notice' | 'warning' | 'error' | 'critical' | 'alert' | 'emergency'
export const LOGGING_LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

/** The two HTTP transports: Streamable HTTP (/mcp) and HTTP+SSE (2024-11-05: GET /sse + POST /messages). */
export type Transport = 'streamable-http' | 'http+sse'

/** What a session is: everything a replica needs to serve a request of it. Plain JSON (it may live in Redis). */
export interface SessionRecord {
  id: string
  /** The transport that created the session; the other one cannot use it. */
  transport: Transport
  protocolVersion: string
  clientInfo: { name: string, version: string } | null
  clientCapabilities: Record<string, unknown>
  /** Set by logging/setLevel; null means the client did not ask (everything is sent). */
  logLevel: LoggingLevel | null
  /**
   * Initial subscriptions when the record is created (none by default). Stores keep subscriptions
   * apart from the record, so concurrent changes are atomic and reading a session costs the same
   * however many it has: a record read back does not carry them (SessionStore.subscriptionsOf,
   * subscribe, unsubscribe, subscribers).
   */
  subscriptions?: string[]
  /** The auth identity that created the session; another identity cannot use it. */
  identity: string | null
  initialized: boolean
  createdAt: number
  lastSeenAt: number
}

/** Where sessions live. In-memory by default; Redis when scaled out. All calls are async. */
export interface SessionStore {
  create (record: SessionRecord): Promise<void>
  get (id: string): Promise<SessionRecord | undefined>
  /** Applies a partial update; no-op when the session is gone. */
  update (id: string, patch: Partial<Omit<SessionRecord, 'id'>>): Promise<void>
  /**
   * Adds `uri` to the session's subscriptions atomically, unless it already holds `max` of them:
   * 'ok' (added or already there), 'full', or 'gone' (no such session).
   */
  subscribe (id: string, uri: string, max: number): Promise<'ok' | 'full' | 'gone'>
  /** Removes `uri` from the session's subscriptions (atomic; no-op when absent). */
  unsubscribe (id: string, uri: string): Promise<void>
  /** Ids of the sessions subscribed to `uri` (an index: cost in proportion to the subscribers). */
  subscribers (uri: string): Promise<string[]>
  /** The URIs session `id` is subscribed to. */
  subscriptionsOf (id: string): Promise<string[]>
  /** Marks the session used now (idle eviction counts from here). */
  touch (id: string): Promise<void>
  delete (id: string): Promise<boolean>
  /** Ids of every live session (for list_changed fan-out). */
  ids (): Promise<string[]>
  count (): Promise<number>
  /** Sessions this process knows of, synchronously (health, metrics). */
  readonly size: number
  /** Called with the id of every session evicted for idleness. */
  onEvict (listener: (id: string) => void): void
  close (): Promise<void>
}

/** A crypto-random, URL-safe session id (visible ASCII only, as the spec requires). */
export function newSessionId (): string {
  return randomBytes(18).toString('base64url')
}

export function isSessionId (value: unknown): value is string {
  return typeof value === 'string' && /^[\x21-\x7E]{1,128}$/.test(value)
}
