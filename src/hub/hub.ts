import type { ServerResponse } from 'node:http'
import {
  OverCapacityError, formatEventId,
  type AttachOptions, type Bus, type CloseReason, type Connection, type EventLog, type Follower, type Hub,
  type HubEvent, type HubStats, type LogHead, type StoredEvent, type StreamKind
} from './types.js'
import { frame, comment } from './sse.js'
import { PUBLIC_KEY, hubKeys, lastSegment } from './keys.js'
import { refuseRaw } from '../http-error.js'
import { ignore } from '../ignore.js'

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
  /** The event-id prefix (`streamPart`) of a key's events; default its last `:` segment. */
  partOf?: (key: string) => string
  /**
   * How an operator broadcast appears on a broadcast target's stream (the public stream gets
   * `event: <event>` with the JSON data); default the same event as on the public stream.
   */
  targetEvent?: (event: string, data: unknown) => HubEvent
  /** How long a gap between live events may stay open before the log is re-read (default 100 ms). */
  gapTimeoutMs?: number
  /** A write waiting for 'drain' longer than this ends the stream (default 2 × heartbeat). */
  stallTimeoutMs?: number
  /**
   * Of the given keys (each with open streams here), the ones whose owner is gone (an MCP session
   * deleted or lost with Redis): their streams are closed. Asked once per heartbeat and after the
   * store lost data; see also Hub.setLiveness.
   */
  deadKeys?: (keys: readonly string[]) => Promise<ReadonlySet<string>>
  /** Told of failures nobody awaits (a wake-up that could not be published, a catch-up read that failed). */
  onError?: (err: unknown, what: string) => void
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

/** Bus message: an event (`p` its log epoch), or the end/forget of a key. `r` is the publishing replica. */
type Wire =
  | { r: string, k: string, p: string, s: number, e?: string, d: string }
  | { r: string, k: string, end: true }
  | { r: string, k: string, forget: true }

/** An event as it arrives live: with the epoch of the log it was appended to. */
type LiveEvent = StoredEvent & { epoch: string }

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no'
}

/** Live events a connection may hold past a gap before it is dropped (it then resumes by Last-Event-ID). */
const MAX_AHEAD_EVENTS = 1024

/** A connection the catch-up may write to: open, past its replay, not reading the log itself. */
function caughtUpable (conn: SseConnection): boolean {
  return !conn.closed && conn.headSent && !conn.replaying && !conn.resyncing && !conn.ending
}

/** The response can no longer carry anything: destroyed, ended, or its socket gone (a follower has none). */
function gone (raw: ServerResponse | undefined): boolean {
  if (raw === undefined) return false
  return raw.destroyed || raw.writableEnded || raw.socket === null || raw.socket.destroyed
}

class SseConnection implements Connection {
  readonly id: number
  readonly key: string
  readonly kind: StreamKind
  readonly streamPart: string
  /** The HTTP response; undefined for an in-process follower (Hub.follow), which gets events through `sink`. */
  readonly raw: ServerResponse | undefined
  readonly sink: Follower | undefined
  /** A follower's start (subscribe + head read) is under way. */
  starting = false
  /** The log epoch this connection's ids belong to (undefined until the key has a log). */
  epoch: string | undefined
  /** Epochs this connection has left (a late event of one of them is stale, not a new reset). */
  readonly pastEpochs = new Set<string>()
  /** Highest seq written in `epoch`: the connection has written exactly 1..lastSeq (or from its start). */
  lastSeq = 0
  /** While the head and history are written, live events wait in `ahead`. */
  replaying = true
  /** A log read to fill a gap (or follow a new epoch) is under way. */
  resyncing = false
  /** The key ended: close once everything published is written. */
  ending = false
  /** Live events that cannot be written yet (past a gap, or during replay), unordered. */
  ahead: LiveEvent[] = []
  aheadBytes = 0
  gapTimer: NodeJS.Timeout | undefined
  /** Frames waiting for 'drain'; null while the socket accepts writes. */
  queue: string[] | null = null
  queuedBytes = 0
  /** When the queue started waiting for 'drain' (stall detection). */
  stalledSince = 0
  headSent = false
  closed = false
  endAfterFlush = false
  readonly #hub: HubImpl
  readonly #onClose: ((reason: CloseReason) => void) | undefined
  #reason: CloseReason = 'client'
  #detached = false

  constructor (hub: HubImpl, id: number, raw: ServerResponse | undefined, opts: AttachOptions, sink?: Follower) {
    this.#hub = hub
    this.id = id
    this.raw = raw
    this.sink = sink
    this.key = opts.key
    this.kind = opts.kind
    this.streamPart = opts.streamPart || hub.partOf(opts.key)
    this.#onClose = opts.onClose
  }

  /** Forgets the current epoch: its late events are stale from now on. */
  leaveEpoch (): void {
    if (this.epoch === undefined) return
    this.pastEpochs.add(this.epoch)
    if (this.pastEpochs.size > 8) this.pastEpochs.delete(this.pastEpochs.values().next().value as string)
  }

  write (data: string): void {
    if (this.closed || this.raw === undefined) return
    if (this.queue !== null) {
      this.queue.push(data)
      this.queuedBytes += data.length
      if (this.queuedBytes > this.#hub.maxQueueBytes) this.#hub.dropSlow(this)
      return
    }
    const raw = this.raw
    if (!raw.write(data)) {
      this.queue = []
      this.stalledSince = Date.now()
      raw.once('drain', () => this.#flush())
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

  /** Writes the next event of this connection's epoch (the caller checked it is lastSeq + 1). */
  deliver (ev: StoredEvent, wire?: string): void {
    this.lastSeq = ev.seq
    if (this.sink !== undefined) {
      this.sink.event(ev)
      return
    }
    this.write(wire ?? frame(formatEventId(this.streamPart, this.epoch ?? '0', ev.seq), ev.event, ev.data))
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
    if (this.raw === undefined) {
      this.detached()
      return
    }
    // Nothing sent yet: there is no stream to end, only a socket to let go.
    if (!this.headSent) this.raw.destroy()
    else if (!this.raw.writableEnded) this.raw.end()
    // 'close' on the response runs detached(); when the socket is already gone do it now.
    if (gone(this.raw)) this.detached()
  }

  /** Called once when the HTTP response is gone (or can never carry the stream). */
  detached (): void {
    if (this.#detached) return
    this.#detached = true
    this.closed = true
    this.queue = null
    this.ahead = []
    if (this.gapTimer !== undefined) clearTimeout(this.gapTimer)
    this.gapTimer = undefined
    if (!this.#hub.remove(this)) return
    this.#onClose?.(this.#reason)
  }
}

export class HubImpl implements Hub {
  readonly maxQueueBytes: number
  eventsSent = 0
  eventsReplayed = 0
  droppedSlowConsumers = 0
  rejectedOverCapacity = 0
  droppedDeadSockets = 0
  evictedNotices = 0
  gapReads = 0
  caughtUp = 0
  readonly #log: EventLog
  readonly #bus: Bus | undefined
  readonly #replica: string
  readonly #max: number
  readonly #retryMs: number | undefined
  readonly #targets: BroadcastTargets
  readonly #targetEvent: ((event: string, data: unknown) => HubEvent) | undefined
  /** The event-id prefix of a key's events (HubOptions.partOf). */
  readonly partOf: (key: string) => string
  readonly #gapMs: number
  readonly #stallMs: number
  readonly #byKey = new Map<string, Set<SseConnection>>()
  readonly #all = new Set<SseConnection>()
  /** In-process followers (Hub.follow): in #byKey like streams, not in #all (no socket, not counted). */
  readonly #followers = new Set<SseConnection>()
  readonly #unsubscribe = new Map<string, Promise<() => Promise<void>>>()
  readonly #heartbeat: NodeJS.Timeout
  readonly #offReset: (() => void) | undefined
  readonly #offResubscribe: (() => void) | undefined
  readonly #onError: (err: unknown, what: string) => void
  /** A catch-up read is under way; `#catchUpAgain` asks for one more when it is done. */
  #catchingUp = false
  #catchUpAgain = false
  #deadKeys: ((keys: readonly string[]) => Promise<ReadonlySet<string>>) | undefined
  #checkingOwners = false
  #nextId = 1
  #closing = false

  constructor (opts: HubOptions) {
    this.#log = opts.log
    this.#bus = opts.bus
    this.#replica = opts.replicaId ?? Math.random().toString(36).slice(2)
    this.#max = opts.maxConnections
    this.#retryMs = opts.retryMs
    this.#targets = opts.targets ?? new MemoryTargets()
    this.partOf = opts.partOf ?? lastSegment
    this.#targetEvent = opts.targetEvent
    this.maxQueueBytes = opts.maxQueueBytes ?? 1024 * 1024
    this.#gapMs = opts.gapTimeoutMs ?? 100
    this.#stallMs = opts.stallTimeoutMs ?? 2 * opts.heartbeatIntervalMs
    // One timer walks every connection: cheaper than a timer per stream.
    this.#heartbeat = setInterval(() => this.#ping(), opts.heartbeatIntervalMs)
    this.#heartbeat.unref()
    this.#onError = opts.onError ?? (() => {})
    this.#deadKeys = opts.deadKeys
    this.#offReset = this.#log.onReset?.(() => this.#storeReset())
    this.#offResubscribe = this.#bus?.onResubscribe?.(() => this.#catchUp())
  }

  /**
   * The log is the truth, the bus only a wake-up: for every key with open streams here, reads the
   * log after what they have written and delivers what is missing (once, in order: #live drops what
   * was written). Runs once per heartbeat and after every resubscribe of the bus, so an event in the
   * log reaches every open stream of its key within one heartbeat whatever the bus did. One batched
   * read (one round trip); never two at once; a failure (Redis down) waits for the next heartbeat.
   */
  #catchUp (): void {
    if (this.#bus === undefined || this.#log.readMany === undefined || this.#closing) return
    if (this.#catchingUp) {
      this.#catchUpAgain = true
      return
    }
    this.#catchingUp = true
    const reads: Array<{ key: string, afterSeq: number }> = []
    for (const [key, set] of this.#byKey) {
      let after: number | undefined
      for (const conn of set) {
        if (caughtUpable(conn)) after = Math.min(after ?? Number.MAX_SAFE_INTEGER, conn.epoch === undefined ? 0 : conn.lastSeq)
      }
      if (after !== undefined) reads.push({ key, afterSeq: after })
    }
    this.#log.readMany(reads).then((results) => {
      for (const read of results) {
        for (const conn of [...(this.#byKey.get(read.key) ?? [])]) {
          if (!caughtUpable(conn)) continue
          if (read.epoch !== undefined) {
            if ((conn.epoch !== undefined && conn.epoch !== read.epoch) || (conn.epoch === read.epoch && read.last < conn.lastSeq)) {
              // The key's log restarted (expired, deleted) or went back: the log says what happened.
              this.#resync(conn)
              continue
            }
            const before = conn.lastSeq
            for (const ev of read.events) if (ev.seq > conn.lastSeq) this.#live(conn, { ...ev, epoch: read.epoch })
            if (conn.epoch === read.epoch && conn.lastSeq > before) this.caughtUp += conn.lastSeq - before
          }
          // Its end was missed on the bus.
          if (read.ended && !conn.closed) this.#endConn(conn)
        }
      }
    }, (err: unknown) => { this.#onError(err, 'catch-up read of the event log failed; retried at the next heartbeat') }).finally(() => {
      this.#catchingUp = false
      if (this.#catchUpAgain) {
        this.#catchUpAgain = false
        this.#catchUp()
      }
    }).catch(ignore('the handlers above do not throw'))
  }

  /** Sets (or replaces) the deadKeys predicate (HubOptions.deadKeys): a plugin that owns keys wires it once ready. */
  setLiveness (deadKeys: (keys: readonly string[]) => Promise<ReadonlySet<string>>): void {
    this.#deadKeys = deadKeys
  }

  /** Closes the streams of keys whose owner is gone (session deleted elsewhere, or lost with Redis). */
  #closeOrphans (): void {
    const deadKeys = this.#deadKeys
    if (deadKeys === undefined || this.#checkingOwners || this.#byKey.size === 0 || this.#closing) return
    this.#checkingOwners = true
    deadKeys([...this.#byKey.keys()]).then((dead) => {
      for (const key of dead) this.closeConnections(key)
    }, (err: unknown) => { this.#onError(err, 'checking stream owners failed; retried at the next heartbeat') }).finally(() => {
      this.#checkingOwners = false
    }).catch(ignore('the handlers above do not throw'))
  }

  /**
   * The store lost (or may have lost) data: every open stream that holds an id re-reads its key's log
   * from there. The key's log now belongs to the new dataset (another epoch, or none yet), so the
   * stream gets `evicted` and goes on with the new epoch; a stream that already follows the new epoch
   * (it re-read the log just before) reads nothing new and gets no second notice.
   */
  #storeReset (): void {
    for (const conn of [...this.#all]) {
      // A stream that has no id yet holds nothing the store could have lost.
      if (!conn.closed && conn.headSent && conn.epoch !== undefined) this.#resync(conn)
    }
    // A follower may have missed events of the lost data it had not read yet, whatever its position:
    // it is told now, then follows the log's new life (its read of a new epoch then says nothing more).
    for (const conn of [...this.#followers]) {
      if (conn.closed) continue
      conn.sink?.lost()
      if (conn.headSent) this.#resync(conn)
    }
    // Sessions may have gone with the data: their streams would stay open and silent.
    this.#closeOrphans()
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
    this.#add(conn)
    // Before any await: a client that goes at any moment from here on releases the connection.
    raw.on('close', () => conn.detached())
    raw.on('error', () => { this.droppedDeadSockets++; conn.close('error') })
    if (gone(raw)) {
      conn.detached()
      return conn
    }

    // Go live first (events wait in `ahead`), then read where to start: an event published at any
    // moment comes from the log or live, and is written once (by seq within the epoch).
    // A new stream starts after the log's head, read before the 200 so that a store that cannot be
    // read refuses the stream (503) instead of opening one that ends at once.
    let start: LogHead | undefined
    try {
      await this.#subscribe(opts.key)
      if (opts.afterSeq === undefined) start = await this.#log.head(opts.key)
    } catch {
      // Redis down: no stream (the client retries); the next stream subscribes afresh.
      if (!conn.closed && !gone(raw)) {
        conn.headSent = true
        refuseRaw(raw, 503, 'Event store unavailable; retry later', { retryAfter: 2, extraHeaders: opts.headers })
      }
      conn.close('error')
      conn.detached()
      return conn
    }
    if (conn.closed || gone(raw)) {
      conn.detached()
      return conn
    }

    const headers: Record<string, string | number | string[]> = {}
    for (const [name, value] of Object.entries(opts.headers ?? {})) {
      const lower = name.toLowerCase()
      if (value !== undefined && lower !== 'content-length' && lower !== 'content-type') headers[lower] = value
    }
    // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2).
    const { connection, ...h2Headers } = SSE_HEADERS
    raw.writeHead(200, { ...headers, ...(raw.req?.httpVersionMajor === 2 ? h2Headers : { ...h2Headers, connection }) })
    conn.headSent = true
    // Disable Nagle so small events leave at once.
    raw.socket?.setNoDelay?.(true)
    // The head (retry hint, prelude such as `welcome` or an acknowledgment) only once subscribed: a
    // client that has it is subscribed on every replica, so an event published after it is not missed.
    let head = ''
    const retry = opts.retryMs ?? this.#retryMs
    if (retry !== undefined) head += `retry: ${retry}\n\n`
    for (const ev of opts.prelude ?? []) head += frame(undefined, ev.event, ev.data)
    conn.write(head.length > 0 ? head : comment('open'))

    try {
      if (start !== undefined) {
        conn.epoch = start.epoch
        conn.lastSeq = start.last
      } else {
        await this.#readInto(conn, opts.afterSeq ?? 0, opts.afterEpoch, true)
      }
      if (conn.closed || gone(raw)) {
        conn.detached()
        return conn
      }
      conn.replaying = false
      this.#drainAhead(conn)
      if (await this.#log.isEnded(opts.key)) this.#endConn(conn)
    } catch {
      conn.close('error')
    }
    if (gone(raw)) conn.detached()
    return conn
  }

  /**
   * Writes the log's events after `afterSeq` of `wantEpoch` to `conn`, oldest first. When that
   * history is gone — trimmed, or the log restarted under another epoch (expired, Redis restarted,
   * an id of an older server without epoch) — an `evicted` event says so first, and the
   * connection continues with what the log holds now.
   */
  async #readInto (conn: SseConnection, afterSeq: number, wantEpoch: string | undefined, replay: boolean): Promise<void> {
    let read = await this.#log.readAfter(conn.key, afterSeq)
    let evicted = read.evicted
    let base = afterSeq
    const reset = wantEpoch !== undefined ? read.epoch !== wantEpoch : afterSeq > 0
    const wentBack = !reset && read.epoch !== undefined && afterSeq > read.last
    // A follower is told of lost events only: history trimmed past it, or a log that went back. A new
    // epoch without a store reset is a key that expired after a whole idle TTL, long after the
    // follower (caught up every heartbeat) read it; a store reset is told in #storeReset.
    const followerLost = !reset && (read.evicted || wentBack)
    if (wentBack && read.epoch !== undefined && this.#log.retire !== undefined) {
      // The log went back within its epoch (an older copy of the key was restored): ids after its
      // head were handed out already. Retire the epoch so the next append starts a new one.
      await this.#log.retire(conn.key, read.epoch)
      read = await this.#log.readAfter(conn.key, 0)
    }
    if (reset || (afterSeq > read.last && afterSeq > 0)) {
      base = 0
      if (read.epoch !== undefined && afterSeq > 0) read = await this.#log.readAfter(conn.key, 0)
      evicted = afterSeq > 0 || wantEpoch !== undefined
    }
    if (conn.closed) return
    if (conn.sink !== undefined) {
      if (followerLost) conn.sink.lost()
    } else if (evicted) {
      const oldest = read.events.length > 0 ? read.events[0] : undefined
      this.evictedNotices++
      conn.write(frame(undefined, 'evicted', JSON.stringify({
        message: 'Some events after Last-Event-ID are no longer kept; they were not replayed.',
        lastEventId: wantEpoch === undefined ? `${conn.streamPart}-${afterSeq}` : formatEventId(conn.streamPart, wantEpoch, afterSeq),
        firstAvailable: oldest === undefined || read.epoch === undefined ? null : formatEventId(conn.streamPart, read.epoch, oldest.seq)
      })))
    }
    if (conn.epoch !== read.epoch) conn.leaveEpoch()
    conn.epoch = read.epoch
    conn.lastSeq = base
    for (const ev of read.events) {
      if (ev.seq <= conn.lastSeq) continue
      conn.deliver(ev)
      if (replay) this.eventsReplayed++
    }
  }

  /** Holds a live event that cannot be written yet; false (and the connection dropped) when over its bound. */
  #hold (conn: SseConnection, ev: LiveEvent): boolean {
    conn.ahead.push(ev)
    conn.aheadBytes += ev.data.length
    if (conn.ahead.length > MAX_AHEAD_EVENTS || (conn.ahead.length > 1 && conn.aheadBytes > this.maxQueueBytes)) {
      if (conn.sink !== undefined) {
        // A follower is never dropped: what it held is in the log, the catch-up reads it from there.
        conn.ahead = []
        conn.aheadBytes = 0
        return false
      }
      this.dropSlow(conn)
      return false
    }
    return true
  }

  /** One live event for one connection: written if it is the next, held past a gap, dropped if already written. */
  #live (conn: SseConnection, ev: LiveEvent, wire?: () => string): void {
    if (conn.closed || conn.pastEpochs.has(ev.epoch)) return
    if (conn.replaying || conn.resyncing) {
      this.#hold(conn, ev)
      return
    }
    if (conn.epoch === undefined) conn.epoch = ev.epoch
    if (ev.epoch !== conn.epoch) {
      // Another life of the log: the log says what happened (`evicted` + the new epoch's events).
      if (this.#hold(conn, ev)) this.#resync(conn)
      return
    }
    if (ev.seq <= conn.lastSeq) return
    if (ev.seq === conn.lastSeq + 1) {
      conn.deliver(ev, wire?.())
      if (conn.ahead.length > 0) this.#drainAhead(conn)
      return
    }
    if (this.#hold(conn, ev) && conn.gapTimer === undefined) {
      // Usually the missing event arrives from the other replica within a moment; if not, read the log.
      conn.gapTimer = setTimeout(() => { conn.gapTimer = undefined; this.#resync(conn) }, this.#gapMs)
      conn.gapTimer.unref()
    }
  }

  /** Writes what `ahead` holds in order from lastSeq + 1; resyncs when it holds another epoch or a gap remains. */
  #drainAhead (conn: SseConnection): void {
    if (conn.closed || conn.replaying || conn.resyncing) return
    if (conn.ahead.length > 0) {
      if (conn.epoch === undefined) conn.epoch = conn.ahead[0]?.epoch
      const ahead = conn.ahead.sort((x, y) => x.seq - y.seq)
      const rest: LiveEvent[] = []
      let other = false
      for (const ev of ahead) {
        if (conn.pastEpochs.has(ev.epoch)) continue
        if (ev.epoch !== conn.epoch) { other = true; rest.push(ev); continue }
        if (ev.seq <= conn.lastSeq) continue
        if (ev.seq === conn.lastSeq + 1) conn.deliver(ev)
        else rest.push(ev)
      }
      conn.ahead = rest
      conn.aheadBytes = rest.reduce((n, ev) => n + ev.data.length, 0)
      if (other) {
        this.#resync(conn)
        return
      }
      if (rest.length > 0 && conn.gapTimer === undefined) {
        conn.gapTimer = setTimeout(() => { conn.gapTimer = undefined; this.#resync(conn) }, this.#gapMs)
        conn.gapTimer.unref()
        return
      }
    }
    if (conn.ending && conn.ahead.length === 0) conn.finish()
  }

  /** Reads the log after what the connection has written, then goes on with what waits in `ahead`. */
  #resync (conn: SseConnection): void {
    if (conn.closed || conn.resyncing || conn.replaying) return
    if (conn.gapTimer !== undefined) clearTimeout(conn.gapTimer)
    conn.gapTimer = undefined
    conn.resyncing = true
    this.gapReads++
    this.#readInto(conn, conn.lastSeq, conn.epoch, false).then(() => {
      conn.resyncing = false
      this.#drainAhead(conn)
    }, () => {
      // The log is unreachable (Redis down): try again shortly; the ahead bound still applies.
      conn.resyncing = false
      if (conn.closed) return
      conn.gapTimer = setTimeout(() => { conn.gapTimer = undefined; this.#resync(conn) }, Math.max(this.#gapMs, 500))
      conn.gapTimer.unref()
    })
  }

  /** The key ended: write what the log holds beyond this connection, then close it. */
  #endConn (conn: SseConnection): void {
    if (conn.ending) return
    conn.ending = true
    if (conn.replaying) return
    this.#resync(conn)
  }

  async publish (key: string, event: HubEvent): Promise<string> {
    const { epoch, seq } = await this.#log.append(key, event)
    const stored: LiveEvent = event.event === undefined
      ? { epoch, seq, data: event.data }
      : {
          epoch,
          seq,
          event: event.event,
          data: event.data
        }
    this.#deliverLocal(key, stored)
    if (this.#bus !== undefined) {
      const wire: Wire = { r: this.#replica, k: key, p: epoch, s: seq, d: event.data }
      if (event.event !== undefined) wire.e = event.event
      await this.#wake(key, wire)
    }
    return formatEventId(this.partOf(key), epoch, seq)
  }

  /**
   * Publishes a wake-up. Once the log has the event (or the end) the publish has succeeded for the
   * caller: a lost wake-up only delays other replicas until their next catch-up (one heartbeat).
   */
  async #wake (key: string, wire: Wire): Promise<void> {
    try {
      await this.#bus?.publish(channel(key), JSON.stringify(wire))
    } catch (err) {
      this.#onError(err, 'bus publish failed; other replicas read the log at their next heartbeat')
    }
  }

  async end (key: string): Promise<void> {
    await this.#log.end(key)
    this.#endLocal(key)
    if (this.#bus !== undefined) await this.#wake(key, { r: this.#replica, k: key, end: true })
  }

  async forget (key: string): Promise<void> {
    // Local streams close first: that needs no Redis (a session ended while Redis is down still ends here).
    this.#forgetLocal(key)
    await this.#log.delete(key)
    await this.#targets.remove(key)
    if (this.#bus !== undefined) await this.#wake(key, { r: this.#replica, k: key, forget: true })
  }

  /**
   * Reads the targets first (nothing is published when that fails), then publishes to every key at
   * once and waits for all of them: rejects (with the first failure) when any append failed, so the
   * caller refuses the broadcast (503) instead of reporting it accepted. Keys that did get it keep it:
   * a retried broadcast may reach them twice.
   */
  async broadcast (event: string, data: unknown): Promise<void> {
    const onPublic: HubEvent = { event, data: JSON.stringify(data ?? null) }
    const onTarget = this.#targetEvent?.(event, data) ?? onPublic
    const targets = [...await this.#targets.list()]
    const results = await Promise.allSettled([
      this.publish(PUBLIC_KEY, onPublic),
      ...targets.map(async (key) => await this.publish(key, onTarget))
    ])
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }

  /**
   * Closes this process's connections on `key` without ending it (SEP-1699 polling: the client
   * reconnects with Last-Event-ID and gets what is published meanwhile).
   */
  closeConnections (key: string): void {
    for (const conn of [...(this.#byKey.get(key) ?? [])]) conn.close('ended')
  }

  follow (key: string, follower: Follower): () => void {
    const conn = new SseConnection(this, this.#nextId++, undefined, { key, kind: 'listen', streamPart: this.partOf(key) }, follower)
    this.#followers.add(conn)
    this.#keyed(conn)
    this.#startFollower(conn)
    return () => { conn.close('ended') }
  }

  /**
   * Subscribes and reads the key's head: the follower starts there (live events meanwhile wait in
   * `ahead`). When the store cannot answer, the next heartbeat tries again.
   */
  #startFollower (conn: SseConnection): void {
    if (conn.closed || conn.starting || !conn.replaying || this.#closing) return
    conn.starting = true
    this.#subscribe(conn.key).then(async () => await this.#log.head(conn.key)).then((start) => {
      if (conn.closed) return
      conn.epoch = start.epoch
      conn.lastSeq = start.last
      conn.headSent = true
      conn.replaying = false
      this.#drainAhead(conn)
    }, (err: unknown) => { this.#onError(err, `following ${conn.key} failed; retried at the next heartbeat`) }).finally(() => {
      conn.starting = false
    }).catch(ignore('the handlers above do not throw'))
  }

  async addBroadcastTarget (key: string): Promise<void> { await this.#targets.add(key) }
  async removeBroadcastTarget (key: string): Promise<void> { await this.#targets.remove(key) }

  stats (): HubStats {
    const byKind: Record<StreamKind, number> = { public: 0, session: 0, request: 0, 'http+sse': 0, listen: 0 }
    for (const c of this.#all) byKind[c.kind]++
    return {
      streams: this.#all.size,
      byKind,
      eventsSent: this.eventsSent,
      eventsReplayed: this.eventsReplayed,
      droppedSlowConsumers: this.droppedSlowConsumers,
      rejectedOverCapacity: this.rejectedOverCapacity,
      droppedDeadSockets: this.droppedDeadSockets,
      evictedNotices: this.evictedNotices,
      gapReads: this.gapReads,
      caughtUp: this.caughtUp
    }
  }

  async close (): Promise<void> {
    this.#closing = true
    clearInterval(this.#heartbeat)
    this.#offReset?.()
    this.#offResubscribe?.()
    const bye = frame(undefined, 'shutdown', JSON.stringify({ message: 'Server is shutting down; reconnect with Last-Event-ID to resume.' }))
    for (const conn of [...this.#all]) {
      if (conn.headSent) conn.write(bye)
      conn.close('shutdown')
      conn.detached()
    }
    for (const conn of [...this.#followers]) conn.close('shutdown')
    await Promise.all([...this.#unsubscribe.values()].map(async (p) => { await (await p)() })).catch(ignore('closing: the bus connection closes next'))
    this.#unsubscribe.clear()
    await this.#bus?.close()
    await this.#log.close()
  }

  /** Drops a consumer whose queue overflowed or stalled. */
  dropSlow (conn: SseConnection): void {
    this.droppedSlowConsumers++
    conn.close('slow-consumer')
    // A consumer that never reads keeps its socket buffer full: destroy it to free the memory.
    conn.raw?.destroy()
    conn.detached()
  }

  /** Removes a connection; false when it was already gone. */
  remove (conn: SseConnection): boolean {
    if (!this.#all.delete(conn) && !this.#followers.delete(conn)) return false
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
    this.#keyed(conn)
  }

  #keyed (conn: SseConnection): void {
    let set = this.#byKey.get(conn.key)
    if (set === undefined) {
      set = new Set()
      this.#byKey.set(conn.key, set)
    }
    set.add(conn)
  }

  #deliverLocal (key: string, ev: LiveEvent): void {
    const set = this.#byKey.get(key)
    if (set === undefined) return
    // Every connection of a key shares one id space: serialize the frame once per stream part.
    let wire: string | undefined
    let part: string | undefined
    for (const conn of set) {
      this.#live(conn, ev, () => {
        if (wire === undefined || part !== conn.streamPart) {
          part = conn.streamPart
          wire = frame(formatEventId(part, ev.epoch, ev.seq), ev.event, ev.data)
        }
        return wire
      })
    }
  }

  #endLocal (key: string): void {
    for (const conn of [...(this.#byKey.get(key) ?? [])]) this.#endConn(conn)
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
    try {
      await sub
    } catch (err) {
      // Never keep a rejected subscription: the next stream on the key tries again.
      if (this.#unsubscribe.get(key) === sub) this.#unsubscribe.delete(key)
      throw err
    }
  }

  #unsubscribeKey (key: string): void {
    const sub = this.#unsubscribe.get(key)
    if (sub === undefined) return
    this.#unsubscribe.delete(key)
    sub.then(async (off) => { await off() }).catch(ignore('a failed unsubscribe leaves a channel nobody publishes to'))
  }

  #onWire (payload: string): void {
    let msg: Wire
    try { msg = JSON.parse(payload) as Wire } catch { return }
    if (msg.r === this.#replica) return
    if ('end' in msg) this.#endLocal(msg.k)
    else if ('forget' in msg) this.#forgetLocal(msg.k)
    else {
      this.#deliverLocal(
        msg.k, msg.e === undefined ? { epoch: msg.p, seq: msg.s, data: msg.d } : { epoch: msg.p, seq: msg.s, event: msg.e, data: msg.d }
      )
    }
  }

  /** Heartbeats; also finds dead sockets and writes that stalled past the stall timeout. */
  #ping (): void {
    for (const conn of this.#followers) if (conn.replaying) this.#startFollower(conn)
    this.#catchUp()
    this.#closeOrphans()
    const ping = comment('ping')
    const now = Date.now()
    for (const conn of [...this.#all]) {
      if (gone(conn.raw) && conn.headSent) {
        conn.detached()
      } else if (conn.queue !== null) {
        if (now - conn.stalledSince > this.#stallMs) {
          this.droppedDeadSockets++
          this.dropSlow(conn)
        }
      } else if (!conn.replaying && conn.headSent) {
        conn.write(ping)
      }
    }
  }
}

const channel = hubKeys.channel

export function createHub (opts: HubOptions): HubImpl {
  return new HubImpl(opts)
}
