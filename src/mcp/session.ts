import { createHash, randomBytes } from 'node:crypto'
import type { Quota } from '../budget.js'

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

/**
 * The key a URI is indexed by in memory. V8 hashes a string longer than 16,383 characters by its
 * length alone, so long URIs of equal length would all collide in a Map (each insert comparing
 * against every other: quadratic). Long ones are keyed by their SHA-256 instead.
 */
function uriKey (uri: string): string {
  return uri.length <= 1024 ? `u:${uri}` : `h:${createHash('sha256').update(uri).digest('base64url')}`
}

/** Sessions in a Map, swept for idleness once a minute (or at a tenth of the timeout). */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, SessionRecord>()
  /** session id → subscribed URIs, by uriKey. */
  readonly #subscriptions = new Map<string, Map<string, string>>()
  /** uriKey → subscribed session ids. */
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
    const { subscriptions, ...rest } = record
    this.#sessions.set(record.id, rest)
    for (const uri of subscriptions ?? []) await this.subscribe(record.id, uri, Number.MAX_SAFE_INTEGER)
  }

  async get (id: string): Promise<SessionRecord | undefined> { return this.#sessions.get(id) }
  async update (id: string, patch: Partial<Omit<SessionRecord, 'id'>>): Promise<void> {
    const s = this.#sessions.get(id)
    if (s === undefined) return
    const { subscriptions, ...rest } = patch
    Object.assign(s, rest)
    if (subscriptions === undefined) return
    this.#unsubscribeAll(id)
    for (const uri of subscriptions) await this.subscribe(id, uri, Number.MAX_SAFE_INTEGER)
  }

  async subscribe (id: string, uri: string, max: number): Promise<'ok' | 'full' | 'gone'> {
    if (!this.#sessions.has(id)) return 'gone'
    const key = uriKey(uri)
    let mine = this.#subscriptions.get(id)
    if (mine?.has(key) === true) return 'ok'
    if ((mine?.size ?? 0) >= max) return 'full'
    if (mine === undefined) this.#subscriptions.set(id, mine = new Map())
    mine.set(key, uri)
    let theirs = this.#subscribers.get(key)
    if (theirs === undefined) this.#subscribers.set(key, theirs = new Set())
    theirs.add(id)
    return 'ok'
  }

  async unsubscribe (id: string, uri: string): Promise<void> {
    const key = uriKey(uri)
    const mine = this.#subscriptions.get(id)
    if (mine?.delete(key) !== true) return
    if (mine.size === 0) this.#subscriptions.delete(id)
    const theirs = this.#subscribers.get(key)
    theirs?.delete(id)
    if (theirs?.size === 0) this.#subscribers.delete(key)
  }

  async subscribers (uri: string): Promise<string[]> { return [...this.#subscribers.get(uriKey(uri)) ?? []] }
  async subscriptionsOf (id: string): Promise<string[]> { return [...this.#subscriptions.get(id)?.values() ?? []] }

  #unsubscribeAll (id: string): void {
    for (const key of this.#subscriptions.get(id)?.keys() ?? []) {
      const theirs = this.#subscribers.get(key)
      theirs?.delete(id)
      if (theirs?.size === 0) this.#subscribers.delete(key)
    }
    this.#subscriptions.delete(id)
  }

  #drop (id: string): boolean {
    this.#unsubscribeAll(id)
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
    this.#subscriptions.clear()
    this.#subscribers.clear()
  }
}

/** Request streams (`s:<id>:r…`) remembered per session for cleanup; past this the oldest is dropped at once. */
export const MAX_REQUEST_STREAMS_PER_SESSION = 256

/**
 * MAX_SESSIONS_PER_CLIENT counted where every replica sees it (src/mcp/redis-sessions.ts): a unit
 * is taken as a pending reservation, bound to the session id once initialize made it, and counts
 * until the session's record is gone (deleted or expired), whichever replica ends it.
 */
export interface SharedSessionUnits {
  /** A pending unit's handle, or undefined at the limit. Rejects when the store is unavailable. */
  take (client: string, limit: number): Promise<string | undefined>
  /** The pending unit now stands for session `id` (best effort: it lapses like a pending unit otherwise). */
  bind (client: string, pending: string, id: string): void
  /** No session was made: the pending unit goes back. */
  release (client: string, pending: string): void
}

interface Owned {
  client: string
  release: () => void
  /** Hub keys of the session's request streams, oldest first. */
  streams: Set<string>
}

/**
 * What each session on this process holds besides its record: a unit of its client's
 * MAX_SESSIONS_PER_CLIENT quota and the hub keys of its request streams. Framework-free; the MCP
 * plugin ends a session through `end(id)` on every path (DELETE, idle eviction, HTTP+SSE stream
 * close, shutdown) and drops the keys it returns. Without Redis counting is per process; with
 * Redis (SharedSessionUnits) the count is shared by every replica and a unit counts until its
 * session's record is gone, whichever replica ended it, so a count can never stay stuck.
 */
export class SessionLedger {
  readonly #owned = new Map<string, Owned>()
  readonly #exists: (id: string) => Promise<boolean>
  /** MAX_SESSIONS_PER_CLIENT. */
  readonly quota: Quota

  readonly #shared: SharedSessionUnits | undefined

  /** `shared`: with REDIS_URL, the client's session units live there (counted across replicas). */
  constructor (quota: Quota, exists: (id: string) => Promise<boolean>, shared?: SharedSessionUnits) {
    this.quota = quota
    this.#exists = exists
    this.#shared = shared
  }

  /**
   * Takes one session unit for `client`; undefined when the client is at its limit (after
   * forgetting sessions that no longer exist). Call `bind` with the new session's id, or the
   * returned release when no session was created.
   */
  async admit (client: string): Promise<{ bind: (id: string) => void, release: () => void } | undefined> {
    if (this.#shared !== undefined) return await this.#admitShared(client)
    if (this.quota.used(client) >= this.quota.limit) await this.#prune(client)
    const release = this.quota.tryAcquire(client)
    if (release === undefined) return undefined
    const unit = release
    return {
      bind: (id) => { this.#owned.set(id, { client, release: unit, streams: new Set() }) },
      release: unit
    }
  }

  /** With a shared store (Redis): the unit is counted there, across replicas (SharedSessionUnits). */
  async #admitShared (client: string): Promise<{ bind: (id: string) => void, release: () => void } | undefined> {
    const shared = this.#shared
    if (shared === undefined) return undefined
    const pending = await shared.take(client, this.quota.limit)
    if (pending === undefined) {
      this.quota.refused++
      return undefined
    }
    return {
      bind: (id) => {
        this.#owned.set(id, { client, release: () => {}, streams: new Set() })
        shared.bind(client, pending, id)
      },
      release: () => { shared.release(client, pending) }
    }
  }

  /**
   * Remembers a request stream key of a session; returns a key to drop now when over the bound.
   * Sessions not admitted here are not tracked.
   */
  addStream (id: string, key: string): string | undefined {
    const owned = this.#owned.get(id)
    // A session made on another replica (Redis): its request streams are not tracked here; their
    // logs expire with the Redis TTL.
    if (owned === undefined) return undefined
    owned.streams.add(key)
    if (owned.streams.size <= MAX_REQUEST_STREAMS_PER_SESSION) return undefined
    const [oldest] = owned.streams
    if (oldest === undefined) return undefined
    owned.streams.delete(oldest)
    return oldest
  }

  /** Releases the session's quota unit and returns the request stream keys it held (empty when unknown). */
  end (id: string): string[] {
    const owned = this.#owned.get(id)
    if (owned === undefined) return []
    this.#owned.delete(id)
    owned.release()
    return [...owned.streams]
  }

  /** Sessions this process accounts for. */
  get size (): number { return this.#owned.size }

  /** Ends everything (shutdown). */
  clear (): void {
    for (const id of [...this.#owned.keys()]) this.end(id)
  }

  async #prune (client: string): Promise<void> {
    const mine = [...this.#owned].filter(([, o]) => o.client === client).map(([id]) => id)
    const alive = await Promise.all(mine.map(async (id) => await this.#exists(id).catch(() => true)))
    mine.forEach((id, i) => { if (!alive[i]) this.end(id) })
  }
}
