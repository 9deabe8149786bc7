import { randomBytes } from 'node:crypto'

export type LoggingLevel = 'debug' | 'info' | 'notice' | 'warning' | 'error' | 'critical' | 'alert' | 'emergency'
export const LOGGING_LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

/** What a session is: everything a replica needs to serve a request of it. Plain JSON (it may live in Redis). */
export interface SessionRecord {
  id: string
  /** `streamable` (/mcp) or `legacy` (/sse + /messages). */
  transport: 'streamable' | 'legacy'
  protocolVersion: string
  clientInfo: { name: string, version: string } | null
  clientCapabilities: Record<string, unknown>
  /** Set by logging/setLevel; null means the client did not ask (everything is sent). */
  logLevel: LoggingLevel | null
  /**
   * Resource URIs the client subscribed to, as of when the record was read. Stores keep them apart
   * from the record (SessionStore.subscribe/unsubscribe/subscribers) so concurrent changes are atomic.
   */
  subscriptions: string[]
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

/** Sessions in a Map, swept for idleness once a minute (or at a tenth of the timeout). */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, SessionRecord>()
  /** uri → subscribed session ids. */
  readonly #subscribers = new Map<string, Set<string>>()
  readonly #idleMs: number
  readonly #timer: NodeJS.Timeout
  readonly #listeners: Array<(id: string) => void> = []

  constructor (idleTimeoutMs: number, now: () => number = Date.now) {
    this.#idleMs = idleTimeoutMs
    this.#timer = setInterval(() => {
      const cutoff = now() - this.#idleMs
      for (const [id, s] of this.#sessions) {
        if (s.lastSeenAt < cutoff) {
          this.#drop(id)
          for (const l of this.#listeners) l(id)
        }
      }
    }, Math.max(100, Math.min(60_000, Math.floor(idleTimeoutMs / 10))))
    this.#timer.unref()
  }

  async create (record: SessionRecord): Promise<void> {
    this.#sessions.set(record.id, record)
    for (const uri of record.subscriptions) this.#index(uri).add(record.id)
  }

  async get (id: string): Promise<SessionRecord | undefined> { return this.#sessions.get(id) }
  async update (id: string, patch: Partial<Omit<SessionRecord, 'id'>>): Promise<void> {
    const s = this.#sessions.get(id)
    if (s === undefined) return
    if (patch.subscriptions !== undefined) {
      this.#unindex(s)
      for (const uri of patch.subscriptions) this.#index(uri).add(id)
    }
    Object.assign(s, patch)
  }

  async subscribe (id: string, uri: string, max: number): Promise<'ok' | 'full' | 'gone'> {
    const s = this.#sessions.get(id)
    if (s === undefined) return 'gone'
    const index = this.#index(uri)
    if (index.has(id)) return 'ok'
    if (s.subscriptions.length >= max) {
      if (index.size === 0) this.#subscribers.delete(uri)
      return 'full'
    }
    index.add(id)
    s.subscriptions.push(uri)
    return 'ok'
  }

  async unsubscribe (id: string, uri: string): Promise<void> {
    const s = this.#sessions.get(id)
    const index = this.#subscribers.get(uri)
    if (s === undefined || index?.delete(id) !== true) return
    if (index.size === 0) this.#subscribers.delete(uri)
    s.subscriptions = s.subscriptions.filter((u) => u !== uri)
  }

  async subscribers (uri: string): Promise<string[]> { return [...this.#subscribers.get(uri) ?? []] }

  #index (uri: string): Set<string> {
    let set = this.#subscribers.get(uri)
    if (set === undefined) this.#subscribers.set(uri, set = new Set())
    return set
  }

  #unindex (s: SessionRecord): void {
    for (const uri of s.subscriptions) {
      const index = this.#subscribers.get(uri)
      index?.delete(s.id)
      if (index?.size === 0) this.#subscribers.delete(uri)
    }
  }

  #drop (id: string): boolean {
    const s = this.#sessions.get(id)
    if (s === undefined) return false
    this.#unindex(s)
    return this.#sessions.delete(id)
  }

  async touch (id: string): Promise<void> {
    const s = this.#sessions.get(id)
    if (s !== undefined) s.lastSeenAt = Date.now()
  }

  async delete (id: string): Promise<boolean> { return this.#drop(id) }
  async ids (): Promise<string[]> { return [...this.#sessions.keys()] }
  async count (): Promise<number> { return this.#sessions.size }
  onEvict (listener: (id: string) => void): void { this.#listeners.push(listener) }
  /** Synchronous count for /health. */
  get size (): number { return this.#sessions.size }
  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#sessions.clear()
    this.#subscribers.clear()
  }
}
