/**
 * The SSE hub contract. Every stream the server holds goes through one hub; the MCP transports
 * (routes/mcp.ts, routes/sse.ts), the broadcast route, metrics and the Redis scale-out all meet here.
 * No Fastify in src/hub: the plugin (plugins/sse-hub.ts) adapts it.
 *
 * Vocabulary
 * - A *stream key* names one logical event stream and its replay log, e.g.
 *   `public`                 the public stream (GET /mcp without a session, browser EventSource)
 *   `s:<sessionId>:g`        an MCP session's standalone GET stream
 *   `s:<sessionId>:r<n>`     the SSE response stream of one POST request in that session
 *   `l:<sessionId>`          a legacy HTTP+SSE (2024-11-05) session stream
 * - An *event id* is unique per session and encodes its stream: `<streamPart>-<seq>` where streamPart
 *   is the last segment of the key (`g`, `r12`, `p` for public, `l` for legacy) and seq is the
 *   1-based sequence number in that key's replay log. parseEventId() reverses it.
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

/** Bounded per-key replay log (REPLAY_BUFFER_SIZE entries per key). Memory now; Redis Streams later. */
export interface EventLog {
  /** Appends and returns the new event's sequence number (1, 2, 3 … per key). */
  append (key: string, event: HubEvent): Promise<number>
  /**
   * Events with seq > afterSeq, oldest first. `evicted` is true when some of the requested history
   * is gone (afterSeq is older than the oldest kept event) — the hub must then tell the client.
   */
  readAfter (key: string, afterSeq: number): Promise<{ events: StoredEvent[], evicted: boolean }>
  /** Marks the key finished: readers that reach its end are closed instead of waiting for more. */
  end (key: string): Promise<void>
  isEnded (key: string): Promise<boolean>
  /** Forgets the key (session deleted or evicted). */
  delete (key: string): Promise<void>
  close (): Promise<void>
}

/** Cross-replica pub/sub. In-memory: an EventEmitter. Redis: pub/sub on a dedicated connection. */
export interface Bus {
  publish (channel: string, payload: string): Promise<void>
  /** Returns the function that unsubscribes. */
  subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>
  close (): Promise<void>
}

export type StreamKind = 'public' | 'session' | 'request' | 'legacy'

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
}

/** Splits `<streamPart>-<seq>`; undefined for anything malformed (treated as "no Last-Event-ID"). */
export function parseEventId (id: string | undefined): { streamPart: string, seq: number } | undefined {
  if (typeof id !== 'string' || id.length > 200) return undefined
  const m = /^([A-Za-z0-9_.]{1,64})-(\d{1,15})$/.exec(id)
  if (m === null) return undefined
  const seq = Number(m[2])
  return Number.isSafeInteger(seq) ? { streamPart: m[1], seq } : undefined
}

export function formatEventId (streamPart: string, seq: number): string {
  return `${streamPart}-${seq}`
}
