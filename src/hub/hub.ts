import type { ServerResponse } from 'node:http'
import {
  OverCapacityError, formatEventId, streamPartOf,
  type AttachOptions, type Bus, type CloseReason, type Connection, type EventLog, type Hub,
  type HubEvent, type HubStats, type StoredEvent, type StreamKind
} from './types.js'
import { frame, comment } from './sse.js'

export interface HubOptions {
  log: EventLog
  /** Cross-replica bus; omit for a single process (events are delivered locally only). */
  bus?: Bus
  /** Distinguishes this replica's own bus messages. */
  replicaId?: string
  maxConnections: number
  heartbeatIntervalMs: number
  /** Bytes a slow consumer may have queued beyond the socket buffer before it is dropped. */
  maxQueueBytes?: number
  /** Where broadcast targets are kept (a shared store when scaled out); in-memory by default. */
  targets?: BroadcastTargets
  /** `retry:` hint written when a stream opens. */
  retryMs?: number
}

/** The set of keys that receive operator broadcasts as MCP notifications. */
export interface BroadcastTargets {
  add (key: string): Promise<void>
  remove (key: string): Promise<void>
  list (): Promise<Iterable<string>>
}

class MemoryTargets implements BroadcastTargets {
  readonly #keys = new Set<string>()
  async add (key: string) { this.#keys.add(key) }
  async remove (key: string) { this.#keys.delete(key) }
  async list () { return this.#keys }
}

/** Bus message: an event, or the end/forget of a key. `r` is the publishing replica. */
type Wire =
  | { r: string, k: string, s: number, e?: string, d: string }
  | { r: string, k: string, end: true }
  | { r: string, k: string, forget: true }

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no'
}

class SseConnection implements Connection {
  readonly id: number
  readonly key: string
  readonly kind: StreamKind
  readonly streamPart: string
  readonly raw: ServerResponse
  /** Highest seq written (live events at or below it are duplicates). */
  lastSeq = 0
  /** While replaying history, live events wait here. */
  pending: StoredEvent[] | null = null
  /** Frames waiting for 'drain'; null while the socket accepts writes. */
  queue: string[] | null = null
  queuedBytes = 0
  closed = false
  endAfterFlush = false
  readonly #hub: HubImpl
  readonly #onClose: ((reason: CloseReason) => void) | undefined
  #reason: CloseReason = 'client'

  constructor (hub: HubImpl, id: number, raw: ServerResponse, opts: AttachOptions) {
    this.#hub = hub
    this.id = id
    this.raw = raw
    this.key = opts.key
    this.kind = opts.kind
    this.streamPart = opts.streamPart || streamPartOf(opts.key)
    this.#onClose = opts.onClose
  }

  write (data: string): void {
    if (this.closed) return
    if (this.queue !== null) {
      this.queue.push(data)
      this.queuedBytes += data.length
      if (this.queuedBytes > this.#hub.maxQueueBytes) this.#hub.dropSlow(this)
      return
    }
    if (!this.raw.write(data)) {
      this.queue = []
      this.raw.once('drain', () => this.#flush())
    }
  }

  #flush (): void {
    const queued = this.queue
    this.queue = null
    this.queuedBytes = 0
    if (queued === null || this.closed) return
    if (queued.length > 0) this.write(queued.join(''))
    if (this.endAfterFlush && this.queue === null) this.close('ended')
  }

  /** Writes one stored event of this connection's key, skipping duplicates. */
  deliver (ev: StoredEvent, wire: string): void {
    if (ev.seq <= this.lastSeq) return
    this.lastSeq = ev.seq
    this.write(wire)
    this.#hub.eventsSent++
  }

  /** Ends the stream once everything queued has been written. */
  finish (): void {
    if (this.queue === null) this.close('ended')
    else this.endAfterFlush = true
  }

  close (reason: CloseReason = 'ended'): void {
    if (this.closed) return
    this.#reason = reason
    this.closed = true
    this.queue = null
    if (!this.raw.writableEnded) this.raw.end()
    // 'close' on the response runs detached(); when the socket is already gone do it now.
    if (this.raw.destroyed) this.detached()
  }

  /** Called once when the HTTP response is gone. */
  detached (): void {
    if (!this.#hub.remove(this)) return
    this.closed = true
    this.#onClose?.(this.#reason)
  }
}

export class HubImpl implements Hub {
  readonly maxQueueBytes: number
  eventsSent = 0
  eventsReplayed = 0
  droppedSlowConsumers = 0
  rejectedOverCapacity = 0
  readonly #log: EventLog
  readonly #bus: Bus | undefined
  readonly #replica: string
  readonly #max: number
  readonly #retryMs: number | undefined
  readonly #targets: BroadcastTargets
  readonly #byKey = new Map<string, Set<SseConnection>>()
  readonly #all = new Set<SseConnection>()
  readonly #unsubscribe = new Map<string, Promise<() => Promise<void>>>()
  readonly #heartbeat: NodeJS.Timeout
  #nextId = 1
  #closing = false

  constructor (opts: HubOptions) {
    this.#log = opts.log
    this.#bus = opts.bus
    this.#replica = opts.replicaId ?? Math.random().toString(36).slice(2)
    this.#max = opts.maxConnections
    this.#retryMs = opts.retryMs
    this.#targets = opts.targets ?? new MemoryTargets()
    this.maxQueueBytes = opts.maxQueueBytes ?? 1024 * 1024
    // One timer walks every connection: cheaper than a timer per stream.
    this.#heartbeat = setInterval(() => this.#ping(), opts.heartbeatIntervalMs)
    this.#heartbeat.unref()
  }

  /** False when a new stream would exceed MAX_CONNECTIONS or the hub is shutting down. */
  hasCapacity (): boolean {
    return !this.#closing && this.#all.size < this.#max
  }

  async attach (raw: ServerResponse, opts: AttachOptions): Promise<Connection> {
    if (!this.hasCapacity()) {
      this.rejectedOverCapacity++
      throw new OverCapacityError()
    }
    const conn = new SseConnection(this, this.#nextId++, raw, opts)
    const headers: Record<string, string | number | string[]> = {}
    for (const [name, value] of Object.entries(opts.headers ?? {})) {
      const lower = name.toLowerCase()
      if (value !== undefined && lower !== 'content-length' && lower !== 'content-type') headers[lower] = value
    }
    raw.writeHead(200, { ...headers, ...SSE_HEADERS })
    raw.on('close', () => conn.detached())
    // Disable Nagle so small events leave at once.
    raw.socket?.setNoDelay(true)

    // Where this connection starts: after Last-Event-ID, or after what the log holds now (read
    // before subscribing). Then go live (buffering), then read the log from there: an event
    // published at any moment in between comes either from the log or live, once (deduped by seq).
    conn.pending = []
    this.#add(conn)
    const start = opts.afterSeq ?? await this.#lastSeq(opts.key)
    await this.#subscribe(opts.key)

    // Only now the head (retry hint, prelude such as `welcome` or an acknowledgment): a client that
    // has it is subscribed on every replica, so an event published right after it cannot be missed.
    let head = ''
    const retry = opts.retryMs ?? this.#retryMs
    if (retry !== undefined) head += `retry: ${retry}\n\n`
    for (const ev of opts.prelude ?? []) head += frame(undefined, ev.event, ev.data)
    conn.write(head.length > 0 ? head : comment('open'))

    const { events, evicted } = await this.#log.readAfter(opts.key, start)
    if (evicted && opts.afterSeq !== undefined) {
      const oldest = events.length > 0 ? events[0].seq : undefined
      conn.write(frame(undefined, 'evicted', JSON.stringify({
        message: 'Some events after Last-Event-ID are no longer kept; they were not replayed.',
        lastEventId: formatEventId(conn.streamPart, opts.afterSeq),
        firstAvailable: oldest === undefined ? null : formatEventId(conn.streamPart, oldest)
      })))
    }
    conn.lastSeq = start
    for (const ev of events) {
      conn.deliver(ev, frame(formatEventId(conn.streamPart, ev.seq), ev.event, ev.data))
      if (opts.afterSeq !== undefined) this.eventsReplayed++
    }
    const pending = conn.pending
    conn.pending = null
    for (const ev of pending) conn.deliver(ev, frame(formatEventId(conn.streamPart, ev.seq), ev.event, ev.data))
    if (await this.#log.isEnded(opts.key)) conn.finish()
    return conn
  }

  async #lastSeq (key: string): Promise<number> {
    const log = this.#log as EventLog & { lastSeq?: (key: string) => number | Promise<number> }
    if (typeof log.lastSeq === 'function') return await log.lastSeq(key)
    const { events } = await this.#log.readAfter(key, 0)
    return events.length > 0 ? events[events.length - 1].seq : 0
  }

  /**
   * Across replicas, bus messages for one key can arrive out of order (two replicas published).
   * On a gap, the connection reads the missing events from the shared log before going on, so
   * every event is written once and in order.
   */
  #catchUp (conn: SseConnection, ev: StoredEvent): void {
    conn.pending = [ev]
    const resume = (events: StoredEvent[]): void => {
      const pending = conn.pending ?? []
      conn.pending = null
      for (const e of [...events, ...pending].sort((a, b) => a.seq - b.seq)) {
        conn.deliver(e, frame(formatEventId(conn.streamPart, e.seq), e.event, e.data))
      }
    }
    this.#log.readAfter(conn.key, conn.lastSeq).then(({ events }) => resume(events), () => resume([]))
  }

  async publish (key: string, event: HubEvent): Promise<string> {
    const seq = await this.#log.append(key, event)
    const stored: StoredEvent = event.event === undefined ? { seq, data: event.data } : { seq, event: event.event, data: event.data }
    this.#deliverLocal(key, stored)
    if (this.#bus !== undefined) {
      const wire: Wire = { r: this.#replica, k: key, s: seq, d: event.data }
      if (event.event !== undefined) wire.e = event.event
      await this.#bus.publish(channel(key), JSON.stringify(wire))
    }
    return formatEventId(streamPartOf(key), seq)
  }

  async end (key: string): Promise<void> {
    await this.#log.end(key)
    this.#endLocal(key)
    if (this.#bus !== undefined) await this.#bus.publish(channel(key), JSON.stringify({ r: this.#replica, k: key, end: true }))
  }

  async forget (key: string): Promise<void> {
    await this.#log.delete(key)
    await this.#targets.remove(key)
    this.#forgetLocal(key)
    if (this.#bus !== undefined) await this.#bus.publish(channel(key), JSON.stringify({ r: this.#replica, k: key, forget: true }))
  }

  async broadcast (event: string, data: unknown): Promise<void> {
    const json = JSON.stringify(data ?? null)
    const notification = JSON.stringify({
      jsonrpc: '2.0',
      method: 'notifications/message',
      params: { level: 'info', logger: 'broadcast', data: { event, data: data ?? null } }
    })
    const work: Promise<string>[] = [this.publish('public', { event, data: json })]
    for (const key of await this.#targets.list()) work.push(this.publish(key, { event: 'message', data: notification }))
    await Promise.all(work)
  }

  /**
   * Closes this process's connections on `key` without ending it (SEP-1699 polling: the client
   * reconnects with Last-Event-ID and gets what is published meanwhile).
   */
  closeConnections (key: string): void {
    for (const conn of [...(this.#byKey.get(key) ?? [])]) conn.close('ended')
  }

  async addBroadcastTarget (key: string): Promise<void> { await this.#targets.add(key) }
  async removeBroadcastTarget (key: string): Promise<void> { await this.#targets.remove(key) }

  stats (): HubStats {
    const byKind: Record<StreamKind, number> = { public: 0, session: 0, request: 0, legacy: 0, listen: 0 }
    for (const c of this.#all) byKind[c.kind]++
    return {
      streams: this.#all.size,
      byKind,
      eventsSent: this.eventsSent,
      eventsReplayed: this.eventsReplayed,
      droppedSlowConsumers: this.droppedSlowConsumers,
      rejectedOverCapacity: this.rejectedOverCapacity
    }
  }

  async close (): Promise<void> {
    this.#closing = true
    clearInterval(this.#heartbeat)
    const bye = frame(undefined, 'shutdown', JSON.stringify({ message: 'Server is shutting down; reconnect with Last-Event-ID to resume.' }))
    for (const conn of [...this.#all]) {
      conn.write(bye)
      conn.close('shutdown')
      conn.detached()
    }
    await Promise.all([...this.#unsubscribe.values()].map(async (p) => await (await p)()))
    this.#unsubscribe.clear()
    await this.#bus?.close()
    await this.#log.close()
  }

  /** Drops a consumer whose queue overflowed. */
  dropSlow (conn: SseConnection): void {
    this.droppedSlowConsumers++
    conn.close('slow-consumer')
    // A consumer that never reads keeps its socket buffer full: destroy it to free the memory.
    conn.raw.destroy()
    conn.detached()
  }

  /** Removes a connection; false when it was already gone. */
  remove (conn: SseConnection): boolean {
    if (!this.#all.delete(conn)) return false
    const set = this.#byKey.get(conn.key)
    set?.delete(conn)
    if (set !== undefined && set.size === 0) {
      this.#byKey.delete(conn.key)
      this.#unsubscribeKey(conn.key)
    }
    return true
  }

  #add (conn: SseConnection): void {
    this.#all.add(conn)
    let set = this.#byKey.get(conn.key)
    if (set === undefined) {
      set = new Set()
      this.#byKey.set(conn.key, set)
    }
    set.add(conn)
  }

  #deliverLocal (key: string, ev: StoredEvent): void {
    const set = this.#byKey.get(key)
    if (set === undefined) return
    let wire: string | undefined
    let streamPart: string | undefined
    for (const conn of set) {
      if (conn.pending !== null) {
        conn.pending.push(ev)
        continue
      }
      if (this.#bus !== undefined && ev.seq > conn.lastSeq + 1) {
        this.#catchUp(conn, ev)
        continue
      }
      // Every connection of a key shares one id space: serialize the frame once.
      if (wire === undefined || streamPart !== conn.streamPart) {
        streamPart = conn.streamPart
        wire = frame(formatEventId(streamPart, ev.seq), ev.event, ev.data)
      }
      conn.deliver(ev, wire)
    }
  }

  #endLocal (key: string): void {
    for (const conn of [...(this.#byKey.get(key) ?? [])]) {
      if (conn.pending === null) conn.finish()
    }
  }

  #forgetLocal (key: string): void {
    this.closeConnections(key)
  }

  async #subscribe (key: string): Promise<void> {
    if (this.#bus === undefined) return
    // A second stream on the key waits for the same subscription to be active.
    const existing = this.#unsubscribe.get(key)
    if (existing !== undefined) {
      await existing
      return
    }
    const sub = this.#bus.subscribe(channel(key), (payload) => this.#onWire(payload))
    this.#unsubscribe.set(key, sub)
    await sub
  }

  #unsubscribeKey (key: string): void {
    const sub = this.#unsubscribe.get(key)
    if (sub === undefined) return
    this.#unsubscribe.delete(key)
    sub.then(async (off) => await off()).catch(() => {})
  }

  #onWire (payload: string): void {
    let msg: Wire
    try { msg = JSON.parse(payload) as Wire } catch { return }
    if (msg.r === this.#replica) return
    if ('end' in msg) this.#endLocal(msg.k)
    else if ('forget' in msg) this.#forgetLocal(msg.k)
    else this.#deliverLocal(msg.k, msg.e === undefined ? { seq: msg.s, data: msg.d } : { seq: msg.s, event: msg.e, data: msg.d })
  }

  #ping (): void {
    const ping = comment('ping')
    for (const conn of this.#all) {
      if (conn.queue === null && conn.pending === null) conn.write(ping)
    }
  }
}

const channel = (key: string): string => `hub:${key}`

export function createHub (opts: HubOptions): HubImpl {
  return new HubImpl(opts)
}
