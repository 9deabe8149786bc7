import { EventEmitter } from 'node:events'
import { newEpoch, type Bus, type EventLog, type HubEvent, type LogHead, type LogRead, type StoredEvent } from './types.js'

interface Ring {
  key: string
  /** A fresh epoch per ring: a ring forgotten and made again restarts its seqs under another. */
  epoch: string
  /** seq of the newest event (0 = none yet). */
  last: number
  /** Oldest first from `head` (a deque: entries before `head` are already dropped). */
  events: StoredEvent[]
  head: number
  /** Bytes of the kept events (data + event name). */
  bytes: number
  ended: boolean
  /** The client whose stream this ring serves (`own`); its rings together stay within clientBytes. */
  owner?: string
}

export interface MemoryLogOptions {
  /** Events kept per key (REPLAY_BUFFER_SIZE). */
  capacity: number
  /** Bytes kept per key (REPLAY_BUFFER_BYTES); one larger event is kept alone. */
  ringBytes?: number
  /** Bytes kept across every key (REPLAY_TOTAL_BYTES). */
  totalBytes?: number
  /** Bytes kept across the keys one owner holds (REPLAY_CLIENT_BYTES); see `own`. */
  clientBytes?: number
  /** How long an ended key (a finished request's stream) stays resumable. */
  endedRetentionMs?: number
  now?: () => number
}

const costOf = (ev: StoredEvent): number => ev.data.length + (ev.event?.length ?? 0) + 64

/**
 * Bounded in-memory replay log: one ring per key of at most `capacity` events and `ringBytes`
 * bytes, and at most `totalBytes` across every ring (when over, ended rings go first, oldest
 * first, then the oldest events of the largest rings). Bytes are tracked as events come and go;
 * ended rings are swept by an unref'ed timer. `append` is synchronous in effect.
 */
export class MemoryEventLog implements EventLog {
  readonly #rings = new Map<string, Ring>()
  readonly #capacity: number
  readonly #ringBytes: number
  readonly #totalBytes: number
  readonly #endedRetentionMs: number
  readonly #now: () => number
  /** Ended keys in the order they ended, with when they may be dropped. */
  readonly #expiries: Array<{ key: string, at: number }> = []
  readonly #sweeper: NodeJS.Timeout
  #bytes = 0
  readonly #clientBytes: number
  /** Per owner: its rings and the bytes they hold together. */
  readonly #owners = new Map<string, { rings: Set<Ring>, bytes: number }>()

  constructor (opts: MemoryLogOptions | number, endedRetentionMs = 5 * 60_000, now: () => number = Date.now) {
    const o: MemoryLogOptions = typeof opts === 'number' ? { capacity: opts, endedRetentionMs, now } : opts
    this.#capacity = Math.max(1, o.capacity)
    this.#ringBytes = o.ringBytes ?? Number.MAX_SAFE_INTEGER
    this.#totalBytes = o.totalBytes ?? Number.MAX_SAFE_INTEGER
    this.#clientBytes = o.clientBytes ?? Number.MAX_SAFE_INTEGER
    this.#endedRetentionMs = o.endedRetentionMs ?? 5 * 60_000
    this.#now = o.now ?? Date.now
    this.#sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(this.#endedRetentionMs, 30_000)))
    this.#sweeper.unref()
  }

  /** Bytes held across every ring. */
  get bytes (): number { return this.#bytes }

  /** Bytes held by the rings `owner` owns. */
  bytesOf (owner: string): number { return this.#owners.get(owner)?.bytes ?? 0 }

  /**
   * Counts `key`'s ring against `owner`'s share (the first owner stays; a shared key, such as the
   * public stream's, is never owned). Past the share, the owner's own oldest events go first.
   */
  own (key: string, owner: string): void {
    const ring = this.#ring(key)
    if (ring.owner !== undefined) return
    ring.owner = owner
    let o = this.#owners.get(owner)
    if (o === undefined) {
      o = { rings: new Set(), bytes: 0 }
      this.#owners.set(owner, o)
    }
    o.rings.add(ring)
    o.bytes += ring.bytes
    if (o.bytes > this.#clientBytes) this.#shrinkOwner(ring)
  }

  #account (ring: Ring, delta: number): void {
    ring.bytes += delta
    this.#bytes += delta
    if (ring.owner !== undefined) {
      const o = this.#owners.get(ring.owner)
      if (o !== undefined) o.bytes += delta
    }
  }

  /** The owner of `keep` is over its share: its other rings give back first, oldest events first, then `keep` down to one event. */
  #shrinkOwner (keep: Ring): void {
    const o = keep.owner === undefined ? undefined : this.#owners.get(keep.owner)
    if (o === undefined) return
    for (const ring of o.rings) {
      if (ring === keep) continue
      while (o.bytes > this.#clientBytes && this.#count(ring) > 0) this.#dropOldest(ring)
      if (o.bytes <= this.#clientBytes) return
    }
    while (o.bytes > this.#clientBytes && this.#count(keep) > 1) this.#dropOldest(keep)
  }

  #ring (key: string): Ring {
    let ring = this.#rings.get(key)
    if (ring === undefined) {
      ring = { key, epoch: newEpoch(), last: 0, events: [], head: 0, bytes: 0, ended: false }
      this.#rings.set(key, ring)
    }
    return ring
  }

  #dropOldest (ring: Ring): void {
    const ev = ring.events[ring.head]
    if (ev === undefined) return
    ring.events[ring.head++] = undefined as unknown as StoredEvent
    this.#account(ring, -costOf(ev))
    // Compact now and then: amortized O(1) per event.
    if (ring.head > 64 && ring.head * 2 > ring.events.length) {
      ring.events = ring.events.slice(ring.head)
      ring.head = 0
    }
  }

  #count (ring: Ring): number { return ring.events.length - ring.head }

  #drop (key: string): void {
    const ring = this.#rings.get(key)
    if (ring === undefined) return
    this.#account(ring, -ring.bytes)
    this.#rings.delete(key)
    if (ring.owner !== undefined) {
      const o = this.#owners.get(ring.owner)
      o?.rings.delete(ring)
      if (o?.rings.size === 0) this.#owners.delete(ring.owner)
    }
  }

  appendSync (key: string, event: HubEvent): { epoch: string, seq: number } {
    const ring = this.#ring(key)
    const stored: StoredEvent = { seq: ++ring.last, data: event.data }
    if (event.event !== undefined) stored.event = event.event
    ring.events.push(stored)
    this.#account(ring, costOf(stored))
    while (this.#count(ring) > 1 && (this.#count(ring) > this.#capacity || ring.bytes > this.#ringBytes)) this.#dropOldest(ring)
    if (ring.owner !== undefined && this.bytesOf(ring.owner) > this.#clientBytes) this.#shrinkOwner(ring)
    if (this.#bytes > this.#totalBytes) this.#shrink(ring)
    return { epoch: ring.epoch, seq: stored.seq }
  }

  /**
   * Over the total: ended rings go first (oldest first), then the oldest events of the largest
   * rings, down to 90% of the total so the scan for the largest is paid rarely.
   */
  #shrink (keep: Ring): void {
    const target = Math.floor(this.#totalBytes * 0.9)
    while (this.#bytes > target && this.#expiries.length > 0) {
      const { key } = this.#expiries.shift() as { key: string }
      const ring = this.#rings.get(key)
      if (ring?.ended === true && ring !== keep) this.#drop(key)
    }
    while (this.#bytes > target) {
      let largest: Ring | undefined
      let second = 0
      for (const ring of this.#rings.values()) {
        if (this.#count(ring) === 0) continue
        if (largest === undefined || ring.bytes > largest.bytes) {
          if (largest !== undefined) second = largest.bytes
          largest = ring
        } else if (ring.bytes > second) second = ring.bytes
      }
      if (largest === undefined) break
      // The largest ring gives back down to the next one's size (at least one event).
      do this.#dropOldest(largest)
      while (this.#bytes > target && this.#count(largest) > 0 && largest.bytes > second)
    }
  }

  async append (key: string, event: HubEvent): Promise<{ epoch: string, seq: number }> {
    return this.appendSync(key, event)
  }

  readAfterSync (key: string, afterSeq: number): LogRead {
    const ring = this.#rings.get(key)
    if (ring === undefined) return { epoch: undefined, last: 0, events: [], evicted: false }
    const n = this.#count(ring)
    const oldest = n > 0 ? ring.events[ring.head]?.seq ?? ring.last + 1 : ring.last + 1
    const evicted = afterSeq + 1 < oldest && afterSeq < ring.last
    const start = ring.head + Math.max(0, afterSeq + 1 - oldest)
    return { epoch: ring.epoch, last: ring.last, events: ring.events.slice(start), evicted }
  }

  async readAfter (key: string, afterSeq: number): Promise<LogRead> {
    return this.readAfterSync(key, afterSeq)
  }

  async head (key: string): Promise<LogHead> {
    const ring = this.#rings.get(key)
    return { epoch: ring?.epoch, last: ring?.last ?? 0 }
  }

  lastSeq (key: string): number {
    return this.#rings.get(key)?.last ?? 0
  }

  async end (key: string): Promise<void> {
    this.#ring(key).ended = true
    this.#expiries.push({ key, at: this.#now() + this.#endedRetentionMs })
    this.sweep()
  }

  /** Drops ended keys whose retention has passed (also run by the timer). */
  sweep (): void {
    const now = this.#now()
    while ((this.#expiries[0]?.at ?? Infinity) <= now) {
      const { key: old } = this.#expiries.shift() as { key: string }
      if (this.#rings.get(old)?.ended === true) this.#drop(old)
    }
  }

  async isEnded (key: string): Promise<boolean> {
    return this.#rings.get(key)?.ended ?? false
  }

  async delete (key: string): Promise<void> {
    this.#drop(key)
  }

  get size (): number {
    return this.#rings.size
  }

  async close (): Promise<void> {
    clearInterval(this.#sweeper)
    this.#rings.clear()
    this.#owners.clear()
    this.#bytes = 0
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
