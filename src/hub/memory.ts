import { EventEmitter } from 'node:events'
import type { Bus, EventLog, HubEvent, StoredEvent } from './types.js'

interface Ring {
  /** seq of the newest event (0 = none yet). */
  last: number
  /** Oldest first; at most `capacity` entries. */
  events: StoredEvent[]
  /** Index of the oldest entry once the ring is full. */
  head: number
  ended: boolean
}

/**
 * Bounded in-memory replay log: one ring of `capacity` events per key. `append` is synchronous in
 * effect (a resolved promise), so the delivery path stays cheap.
 */
export class MemoryEventLog implements EventLog {
  readonly #rings = new Map<string, Ring>()
  readonly #capacity: number
  readonly #endedRetentionMs: number
  readonly #now: () => number
  /** Ended keys in the order they ended, with when they may be dropped (no timer per key). */
  readonly #expiries: Array<{ key: string, at: number }> = []

  /**
   * @param capacity events kept per key (REPLAY_BUFFER_SIZE)
   * @param endedRetentionMs how long an ended key (a finished request's stream) stays resumable
   */
  constructor (capacity: number, endedRetentionMs = 5 * 60_000, now: () => number = Date.now) {
    this.#capacity = Math.max(1, capacity)
    this.#endedRetentionMs = endedRetentionMs
    this.#now = now
  }

  #ring (key: string): Ring {
    let ring = this.#rings.get(key)
    if (ring === undefined) {
      ring = { last: 0, events: [], head: 0, ended: false }
      this.#rings.set(key, ring)
    }
    return ring
  }

  appendSync (key: string, event: HubEvent): number {
    const ring = this.#ring(key)
    const stored: StoredEvent = { seq: ++ring.last, data: event.data }
    if (event.event !== undefined) stored.event = event.event
    if (ring.events.length < this.#capacity) {
      ring.events.push(stored)
    } else {
      ring.events[ring.head] = stored
      ring.head = (ring.head + 1) % this.#capacity
    }
    return stored.seq
  }

  async append (key: string, event: HubEvent): Promise<number> {
    return this.appendSync(key, event)
  }

  readAfterSync (key: string, afterSeq: number): { events: StoredEvent[], evicted: boolean } {
    const ring = this.#rings.get(key)
    if (ring === undefined) return { events: [], evicted: false }
    const n = ring.events.length
    const ordered = ring.head === 0 ? ring.events : [...ring.events.slice(ring.head), ...ring.events.slice(0, ring.head)]
    const oldest = n > 0 ? ordered[0].seq : ring.last + 1
    const evicted = afterSeq + 1 < oldest && afterSeq < ring.last
    const start = Math.max(0, afterSeq + 1 - oldest)
    return { events: ordered.slice(start), evicted }
  }

  async readAfter (key: string, afterSeq: number): Promise<{ events: StoredEvent[], evicted: boolean }> {
    return this.readAfterSync(key, afterSeq)
  }

  lastSeq (key: string): number {
    return this.#rings.get(key)?.last ?? 0
  }

  async end (key: string): Promise<void> {
    this.#ring(key).ended = true
    const now = this.#now()
    this.#expiries.push({ key, at: now + this.#endedRetentionMs })
    // Finished streams are dropped once their retention has passed, swept as new ones end.
    while (this.#expiries.length > 0 && this.#expiries[0].at <= now) {
      const { key: old } = this.#expiries.shift() as { key: string }
      if (this.#rings.get(old)?.ended === true) this.#rings.delete(old)
    }
  }

  async isEnded (key: string): Promise<boolean> {
    return this.#rings.get(key)?.ended ?? false
  }

  async delete (key: string): Promise<void> {
    this.#rings.delete(key)
  }

  get size (): number {
    return this.#rings.size
  }

  async close (): Promise<void> {
    this.#rings.clear()
    this.#expiries.length = 0
  }
}

/** In-process pub/sub: the single-replica Bus. Handlers run synchronously on publish. */
export class MemoryBus implements Bus {
  readonly #emitter = new EventEmitter()

  constructor () {
    this.#emitter.setMaxListeners(0)
  }

  async publish (channel: string, payload: string): Promise<void> {
    this.#emitter.emit(channel, payload)
  }

  async subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    this.#emitter.on(channel, handler)
    return async () => { this.#emitter.off(channel, handler) }
  }

  async close (): Promise<void> {
    this.#emitter.removeAllListeners()
  }
}
