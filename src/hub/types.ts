import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'

/**
 * The SSE hub contract. Every stream the server holds goes through one hub; the MCP transports
 * (routes/mcp.ts, routes/mcp-stateless.ts, routes/sse.ts), the broadcast route, metrics and the Redis scale-out all meet here.
 * No Fastify in src/hub: the plugin (plugins/sse-hub.ts) adapts it.
 *
 * Vocabulary
 * - A *stream key* names one logical event stream and its replay log. The hub gives keys no
 *   meaning (but `public`, where broadcasts go); the MCP side builds and lists them (src/mcp/keys.ts).
 * - An *event id* encodes its stream: `<streamPart>-<epoch>-<seq>` where streamPart comes from the
 *   key (HubOptions.partOf; the MCP side passes its streamPartOf), epoch names one life of the
 *   key's log (created with its sequence counter; a log that
 *   expired or was lost on a Redis restart starts a new epoch) and seq is the 1-based sequence
 *   number in that epoch. parseEventId() reverses it. Within one epoch a connection gets consecutive
 *   seqs, each once; a different epoch (or a gap the log no longer holds) is announced with an
 *   `evicted` event.
 * - A *connection* is one open HTTP response attached to a key. A key may have 0..n connections on
 *   any replica; events are appended to the key's log at publish time (so nothing published while a
 *   client is away is lost) and delivered to every connection on it, on whatever replica it is.
 */

/** One event as written to the wire. `data` is already serialized (JSON text for MCP). */
export interface HubEvent {
  /** SSE `event:` field; omitted means the default `message`. */
  event?: string
  data: string
}

/** An event as kept in a replay log. */
export interface StoredEvent extends HubEvent {
  seq: number
}

/** What a log holds for a key: its epoch (undefined while the key has no log) and its newest seq. */
export interface LogHead {
  epoch: string | undefined
  last: number
}

/** A read of a key's log: events with seq > afterSeq of the current epoch, oldest first. */
export interface LogRead extends LogHead {
  events: StoredEvent[]
  /** Some of the requested history is gone (afterSeq is older than the oldest kept event). */
  evicted: boolean
}

/** One key's log as the hub's catch-up reads it: events after a seq, and whether the key ended. */
export interface KeyRead extends LogRead {
  key: string
  ended: boolean
}

/**
 * Bounded per-key replay log: at most REPLAY_BUFFER_SIZE events and REPLAY_BUFFER_BYTES bytes per
 * key (oldest go first; one event larger than that is kept alone). In memory or on Redis Streams.
 */
export interface EventLog {
  /** Appends and returns the new event's epoch and sequence number (1, 2, 3 … per key and epoch). */
  append (key: string, event: HubEvent): Promise<{ epoch: string, seq: number }>
  /**
   * Events with seq > afterSeq, oldest first. `evicted` is true when some of the requested history
   * is gone (afterSeq is older than the oldest kept event) — the hub must then tell the client.
   */
  readAfter (key: string, afterSeq: number): Promise<LogRead>
  /** The key's epoch and newest seq, without reading events. */
  head (key: string): Promise<LogHead>
  /** Marks the key finished: readers that reach its end are closed instead of waiting for more. */
  end (key: string): Promise<void>
  isEnded (key: string): Promise<boolean>
  /** Forgets the key (session deleted or evicted). */
  delete (key: string): Promise<void>
  close (): Promise<void>
  /**
   * Calls `listener` when the store lost (or may have lost) data — Redis restarted, restored from a
   * snapshot, failed over or flushed (src/hub/dataset.ts): every key's history is gone and its next
   * append starts a new epoch. Returns the function that removes the listener. The in-memory log
   * never loses data behind the process's back and does not implement it.
   */
  onReset?: (listener: () => void) => () => void
  /**
   * Reads many keys at once (one round trip, also a dataset check): the hub's catch-up, once per
   * heartbeat and after every resubscribe, for the keys with open streams here. A log shared between
   * processes implements it; without it the hub trusts its bus.
   */
  /**
   * Ends `epoch` of `key` if it is still the current one: the next append starts a new epoch. For a
   * log found behind what was delivered from it (an older copy restored): its ids after the head
   * were handed out already.
   */
  retire?: (key: string, epoch: string) => Promise<void>
  readMany?: (reads: ReadonlyArray<{ key: string, afterSeq: number }>) => Promise<KeyRead[]>
}

/** Cross-replica pub/sub. In-memory: an EventEmitter. Redis: pub/sub on a dedicated connection. */
export interface Bus {
  publish (channel: string, payload: string): Promise<void>
  /** Returns the function that unsubscribes. */
  subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>
  close (): Promise<void>
  /**
   * Calls `listener` each time the bus's subscriptions are active again after its connection came
   * back (messages published meanwhile are lost: the hub then reads the log). Returns the remover.
   */
  onResubscribe?: (listener: () => void) => () => void
}

/**
 * What a stream carries: `public` (GET /mcp without a session), `session` (a Streamable HTTP
 * session's GET stream), `request` (one request's response stream), `http+sse` (an HTTP+SSE
 * 2024-11-05 session), `listen` (a stateless subscriptions/listen stream).
 */
export type StreamKind = 'public' | 'session' | 'request' | 'http+sse' | 'listen'

/** What the hub reports (health, metrics). */
export interface HubStats {
  /** Open SSE connections on this process. */
  streams: number
  byKind: Record<StreamKind, number>
  eventsSent: number
  eventsReplayed: number
  /** Slow consumers dropped because their bounded queue overflowed. */
  droppedSlowConsumers: number
  /** Connections refused because MAX_CONNECTIONS was reached. */
  rejectedOverCapacity: number
  /** Connections ended because a write failed or stalled (no 'drain' within the stall timeout). */
  droppedDeadSockets: number
  /** `evicted` notices written (history gone, or the log restarted under a new epoch). */
  evictedNotices: number
  /** Gaps between live events that were filled by re-reading the log. */
  gapReads: number
  /** Events written by the catch-up (in the log, but their wake-up never came: bus down, publisher died). */
  caughtUp: number
}

/**
 * Splits `<streamPart>-<epoch>-<seq>` (or the epoch-less `<streamPart>-<seq>` of older servers:
 * epoch undefined, which the hub answers with `evicted` + what the log has); undefined for anything
 * malformed (treated as "no Last-Event-ID").
 */
export function parseEventId (id: string | undefined): { streamPart: string, epoch?: string, seq: number } | undefined {
  if (typeof id !== 'string' || id.length > 64) return undefined
  const m = /^([A-Za-z0-9_.]{1,40})-(?:([a-z0-9]{1,16})-)?(\d{1,15})$/.exec(id)
  if (m === null) return undefined
  const seq = Number(m[3])
  if (!Number.isSafeInteger(seq)) return undefined
  const [, streamPart = '', epoch] = m
  return epoch === undefined ? { streamPart, seq } : { streamPart, epoch, seq }
}

export function formatEventId (streamPart: string, epoch: string, seq: number): string {
  return `${streamPart}-${epoch}-${seq}`
}

/** A new epoch name: 8 lowercase hex characters. */
export function newEpoch (): string {
  return randomBytes(4).toString('hex')
}

/** Why a connection ended. */
export type CloseReason = 'client' | 'ended' | 'slow-consumer' | 'shutdown' | 'replaced' | 'error'

/** Gives a unit back; idempotent. */
export type Release = () => void

/** A per-client count of open streams (MAX_STREAMS_PER_CLIENT; src/budget.ts builds it). */
export interface StreamBudget {
  readonly name: string
  readonly limit: number
  /** A release, or undefined when the client is at its limit; rejects when a shared store cannot answer. */
  take (client: string): Promise<Release | undefined>
  close (): void
}

export interface AttachOptions {
  key: string
  kind: StreamKind
  /** The id prefix for this key's events (`g`, `r<hex>`, `p`, `l`); see formatEventId. */
  streamPart: string
  /**
   * Headers for the SSE response head, on top of the hub's own (Content-Type: text/event-stream,
   * Cache-Control: no-cache, Connection: keep-alive, X-Accel-Buffering: no). The caller passes
   * `reply.getHeaders()` here (CORS!) plus e.g. Mcp-Session-Id.
   */
  headers?: Record<string, string | number | string[] | undefined>
  /** Replay this key's events with seq > afterSeq before going live (from Last-Event-ID). */
  afterSeq?: number
  /**
   * The epoch of Last-Event-ID (parseEventId). With afterSeq > 0, a missing or different epoch
   * means the client's history is gone: it gets `evicted`, then what the log holds.
   */
  afterEpoch?: string
  /** Written first, not logged, no id (e.g. HTTP+SSE `endpoint`, public `welcome`). */
  prelude?: HubEvent[]
  /** SSE `retry:` hint (ms) written at open. */
  retryMs?: number
  /** Called once when the connection is gone, whatever the reason. */
  onClose?: (reason: CloseReason) => void
}

/**
 * An in-process consumer of one key (Hub.follow): the key's events from when it started, each once
 * and in log order, whoever appended them — covered like a stream by the hub's catch-up (a lost
 * wake-up costs at most one heartbeat) and by its handling of a store that lost data.
 */
export interface Follower {
  /** The key's next event. */
  event (ev: StoredEvent): void
  /**
   * Events of the key may be lost for this follower: the store lost (or may have lost) data, or
   * the log was trimmed past what the follower had read. It continues with what the log holds now.
   */
  lost (): void
}

export interface Connection {
  readonly id: number
  readonly key: string
  readonly kind: StreamKind
  close (reason?: CloseReason): void
}

/** Thrown by attach() before anything is written when MAX_CONNECTIONS is reached (route: 503 + Retry-After). */
export class OverCapacityError extends Error {
  override name = 'OverCapacityError'
  readonly retryAfterSeconds: number
  constructor (retryAfterSeconds = 5) {
    super('Too many open streams; retry later')
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/**
 * The hub: the one hub type. plugins/sse-hub.ts decorates `app.hub` with it (plus `open(reply)`,
 * the Fastify adapter); src/hub/hub.ts implements it. The routes translate HTTP ↔ these calls.
 */
export interface Hub {
  /**
   * Turns a raw HTTP response into an SSE connection on `opts.key`: writes the head, the `retry:`
   * hint and prelude, replays history after `afterSeq` (an `evicted` notice first if part of it is
   * gone), then delivers live events; heartbeats as comments; frees everything on close. If the key
   * is already ended, it replays and closes. Throws OverCapacityError (nothing written) when full.
   */
  attach (raw: ServerResponse, opts: AttachOptions): Promise<Connection>
  /** Appends to `key`'s log and delivers to its connections on every replica. Returns the event id. */
  publish (key: string, event: HubEvent): Promise<string>
  /** No more events on `key`: connections close once what was published is written. */
  end (key: string): Promise<void>
  /** Drops `key`'s log and closes its connections (session deleted or evicted). */
  forget (key: string): Promise<void>
  /**
   * Closes this process's connections on `key` without ending it (SEP-1699 polling: the client
   * reconnects with Last-Event-ID and gets what is published meanwhile).
   */
  closeConnections (key: string): void
  /**
   * Operator broadcast: the public stream gets `event: <event>` with JSON `data`; every broadcast
   * target (see addBroadcastTarget) gets HubOptions.targetEvent's event (the MCP side makes it a
   * `notifications/message`). Logged per key, so replayable.
   */
  broadcast (event: string, data: unknown): Promise<void>
  /** Registers a key (an MCP session's standalone or HTTP+SSE stream) to receive broadcasts. */
  addBroadcastTarget (key: string): Promise<void>
  removeBroadcastTarget (key: string): Promise<void>
  stats (): HubStats
  /**
   * Wires the owner check: of the keys with open streams here, which ones' owner is gone (an MCP
   * session deleted, or lost with Redis). Asked once per heartbeat and after the store lost data;
   * those keys' streams are closed (the client reconnects and learns the session is gone: 404).
   */
  setLiveness (deadKeys: (keys: readonly string[]) => Promise<ReadonlySet<string>>): void
  /**
   * Consumes `key` in this process from its current head on (see Follower); not a stream (no
   * socket, not counted). Starts at once; reading the head waits for the store when it is down.
   * Returns the function that stops it.
   */
  follow (key: string, follower: Follower): () => void
  /** Tells every connection (a `shutdown` event) and closes them; closes log and bus. */
  close (): Promise<void>
}
