import { createHash } from 'node:crypto'
import type { SessionRecord, SessionStore } from './store.js'

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
