import { randomBytes } from 'node:crypto'
import type { RequestId } from './jsonrpc.js'
import type { SessionRecord } from './sessions/store.js'
import { PUBLIC_KEY, hubKeys } from '../hub/keys.js'

/**
 * Every name the server gives to state outside one function: hub stream keys (which are also the
 * replay-log keys), Redis keys and pub/sub channels. One module, so a key is spelled once and a
 * reader finds them all here.
 *
 * Hub stream keys, and the `streamPart` their event ids start with (`<part>-<epoch>-<seq>`):
 *   `public`            the public stream (GET /mcp without a session)           part `p`
 *   `s:<sid>:g`         a Streamable HTTP session's standalone GET stream        part `g`
 *   `s:<sid>:r<hex>`    the SSE response stream of one POST in that session      part `r<hex>`
 *   `l:<sid>`           an HTTP+SSE (2024-11-05) session's stream                part `l`
 *   `m:<hex>`           a stateless (2026-07-28) request's response stream       ids `<hex>-…`, not resumable
 *   `n:<hex>`           a stateless subscriptions/listen stream                  ids `<hex>-…`, not resumable
 *   `changes`           what every replica's listen streams are told (list changes, resource updates,
 *                       operator broadcasts): no stream, each replica follows it (Hub.follow) with Redis
 */

/** The public stream's key. */
export const PUBLIC_STREAM = PUBLIC_KEY

/** The changes every replica's subscriptions/listen streams are told of (with REDIS_URL; src/mcp/scale-out.ts). */
export const CHANGES_STREAM = 'changes'

/** A Streamable HTTP session's standalone GET stream. */
export const sessionStream = (sid: string): string => `s:${sid}:g`

/** An HTTP+SSE (2024-11-05) session's stream. */
export const httpSseStream = (sid: string): string => `l:${sid}`

/** One request's response stream in a Streamable HTTP session (`part` from newRequestPart). */
export const requestStream = (sid: string, part: string): string => `s:${sid}:${part}`

/** A fresh stream part for a session request's response stream: `r` + 10 hex digits. */
export const newRequestPart = (): string => `r${randomBytes(5).toString('hex')}`

/** True when a Last-Event-ID's stream part names a session request's stream (`r<hex>`). */
export const isRequestPart = (part: string): boolean => /^r[0-9a-f]+$/.test(part)

/** A fresh key for one stateless request's response stream. */
export const newStatelessStream = (): string => `m:${randomBytes(6).toString('hex')}`

/** A fresh key for one subscriptions/listen stream. */
export const newListenStream = (): string => `n:${randomBytes(8).toString('hex')}`

/** The hub key a session's server-initiated messages go to. */
export function sessionStreamKey (session: Pick<SessionRecord, 'id' | 'transport'>): string {
  return session.transport === 'http+sse' ? httpSseStream(session.id) : sessionStream(session.id)
}

/** The keys a session may own besides its request streams (the ledger knows those). */
export const sessionOwnedStreams = (sid: string): string[] => [sessionStream(sid), httpSseStream(sid)]

/** The session that owns a stream key (`s:<sid>:…`, `l:<sid>`), undefined for the public and stateless keys. */
export function sessionOfStream (key: string): string | undefined {
  if (key.startsWith('l:')) return key.slice(2)
  if (!key.startsWith('s:')) return undefined
  const end = key.lastIndexOf(':')
  return end > 2 ? key.slice(2, end) : undefined
}

/**
 * The id prefix of the events the hub publishes on a key: `public` → `p`, `l:<sid>` → `l`,
 * otherwise the last `:` segment (`s:<sid>:g` → `g`, `s:<sid>:r<hex>` → `r<hex>`).
 */
export function streamPartOf (key: string): string {
  if (key === PUBLIC_STREAM) return 'p'
  if (key.startsWith('l:')) return 'l'
  return key.slice(key.lastIndexOf(':') + 1)
}

/** Redis keys and channels (all under `mcp:`, except the hub's bus channels `hub:<key>`). */
export const redisKeys = {
  /** A stream key's replay log (a Redis Stream; the hub's, src/hub/keys.ts). */
  log: hubKeys.log,
  /** A stream key's epoch and sequence counter (a hash; the hub's). */
  seq: hubKeys.seq,
  /** Set once a stream key has ended (the hub's). */
  end: hubKeys.end,
  /** The dataset marker { id, run, n }: which life of the Redis data this is (src/hub/dataset.ts; the hub's). */
  dataset: hubKeys.dataset,
  /** The set of broadcast targets (stream keys that get operator broadcasts; the hub's). */
  targets: hubKeys.targets,
  /** A session's record (a hash). */
  session: (sid: string): string => `mcp:session:${sid}`,
  /** A session's resource subscriptions (a set of URIs). */
  sessionSubscriptions: (sid: string): string => `mcp:session-subs:${sid}`,
  /** Prefix of a URI's subscriber index (a set of session ids): the URI follows it. */
  resourceSubscribersPrefix: 'mcp:resource-subs:',
  /** Live sessions by last-seen time (a sorted set). */
  sessions: 'mcp:sessions',
  /** The replica that awaits a server→client request's answer. */
  awaiting: (sid: string, id: RequestId): string => `mcp:await:${sid}:${String(id)}`,
  /** The replica that runs a session request. */
  running: (sid: string, id: RequestId): string => `mcp:run:${sid}:${String(id)}`,
  /** The shared secret of the request-state codec. */
  stateSecret: 'mcp:state-secret',
  /** A redeemed request-state nonce. */
  nonce: (nonce: string): string => `mcp:nonce:${nonce}`,
  /** A client's MAX_SESSIONS_PER_CLIENT units (a sorted set: pending units and session ids). */
  sessionUnits: (client: string): string => `mcp:units:sessions:${client}`,
  /** Prefix of a client's units of a leased per-client budget (a sorted set; the client follows). */
  budgetUnits: (budget: string): string => `mcp:units:${budget}:`,
  /** The lease of the replica running the request whose response stream is `streamKey` (short TTL, renewed). */
  streamRunner: (streamKey: string): string => `mcp:runner:${streamKey}`,
  /** The JSON-RPC id of the request whose response stream is `streamKey` (for the error when its runner dies). */
  streamRequest: (streamKey: string): string => `mcp:request-of:${streamKey}`,
  /** Prefix of the shared rate limit's counters (@fastify/rate-limit's Redis store). */
  rateLimit: 'mcp:rate:'
} as const

/** Pub/sub channels. */
export const channels = {
  /** Session ends for every replica (listen-stream changes go through the log: CHANGES_STREAM). */
  control: 'mcp:control',
  /** One replica's own channel (responses and cancels directed at it). */
  replica: (replica: string): string => `mcp:control:${replica}`,
  /** The hub's bus channel for a stream key's live events (src/hub/keys.ts). */
  hub: hubKeys.channel
} as const
