import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { McpServer, ScaleOutTracker } from './server.js'
import type { Change, ListenStreams } from './stateless.js'
import { ErrorCode, errorResponse, type JsonRpcResponse, type RequestId } from './jsonrpc.js'
import { MemoryNonceStore, fixedRing, type NonceStore, type SecretRing } from './mrtr.js'
import { RUN_DONE, RunLeases, watchRun } from './leases.js'
import { CHANGES_STREAM, channels, redisKeys } from './keys.js'
import type { Bus, Hub, HubEvent } from '../hub/types.js'
import { bounded, cap } from '../budget.js'
import { ignore, logFailure, type WarnLogger } from '../ignore.js'

/**
 * Cross-replica coordination of the MCP engine over Redis (beside src/hub/redis.ts, which carries
 * the streams): where a server→client request is awaited and a session request runs, the relay of
 * client answers and cancels to that replica, the end of a session to every replica, listen-stream
 * changes through the log (changeFeed), run leases, the requestState secret ring, its single-use nonces and Redis's clock.
 * Framework-free: plugins/mcp.ts wires it. Without REDIS_URL none of it exists and every function
 * below has its one-process answer.
 */

/**
 * Messages between replicas. Responses and cancels go to the one replica where the request is
 * awaited or running (its own channel, found through a Redis key set while it waits or runs);
 * session ends go to every replica.
 */
type Directed =
  | { t: 'response', sid: string, msg: JsonRpcResponse }
  | { t: 'cancel', sid: string, id: RequestId, reason?: string }
type Broadcast =
  | { t: 'end', from: string, sid: string, reason: string }
const CONTROL_CHANNEL = channels.control
const replicaChannel = channels.replica
const awaitKey = redisKeys.awaiting
const runKey = redisKeys.running
const STATE_SECRET_KEY = redisKeys.stateSecret
/** Largest client response relayed to another replica (bytes of JSON); larger ones are dropped. */
export const MAX_RELAY_BYTES = 1_048_576
/** A request is recorded as running (for cancels from other replicas) once it has run this long. */
const TRACK_RUNNING_AFTER_MS = 20
/** Longest request id tracked across replicas (longer ids are cancelled only where they run). */
const MAX_TRACKED_ID = 200
/** Bound on the Redis calls of requestState redemption, run leases, the clock and the session-end relay. */
export const REDIS_CALL_MS = 2000

/** Registers work to run when the app closes. */
export type OnClose = (fn: () => Promise<void>) => void

/** What the other replicas tell this one. */
export interface ScaleOutHandlers {
  /** A session ended on another replica. */
  ended (sid: string, reason: string): void
  /** A client's answer to a server→client request awaited here. */
  response (msg: JsonRpcResponse, sid: string): void
  /** A client cancelled a request running here. */
  cancel (sid: string, id: RequestId, reason: string | undefined): void
}

/** What a resumed stream says when its runner died. */
export const RUNNER_DIED = 'The server running this request stopped before it answered; retry the request'

/**
 * Session requests whose response became a stream, across replicas (Redis only). The runner holds
 * a lease on the stream (src/mcp/leases.ts: RUN_LEASE_MS, renewed every RUN_RENEW_MS) and marks
 * it done after the response; a replica serving a resumed stream of it watches the lease, and when
 * the runner died appends a JSON-RPC error for the request and ends the stream.
 */
export interface RequestRuns {
  /** Takes the lease for request `id` of session `sid` answering on stream `streamKey`; returns the release to call after the response. */
  hold (sid: string, id: RequestId, streamKey: string): Promise<() => Promise<void>>
  /** Watches the runner of a resumed request stream; returns the stop function. */
  watch (streamKey: string): () => void
}

/** The streams a dead runner's error goes to (the hub). */
export interface StreamSink {
  publish (key: string, event: HubEvent): Promise<string>
  end (key: string): Promise<void>
}

// Claims an awaited answer: the replica that awaits it, deleting the key so one answer is relayed once.
const CLAIM = `
local r = redis.call('GET', KEYS[1])
if r then redis.call('DEL', KEYS[1]) end
return r`

/** One replica's side of the coordination (REDIS_URL set). */
export class ScaleOut {
  /** This replica's id (its own channel, the owner in await and run keys). */
  readonly replica = randomBytes(9).toString('base64url')
  readonly leases: RunLeases
  readonly #redis: Redis
  readonly #bus: Bus
  readonly #log: WarnLogger

  constructor (redis: Redis, bus: Bus, log: WarnLogger) {
    this.#redis = redis
    this.#bus = bus
    this.#log = log
    this.leases = new RunLeases(redis, this.replica)
  }

  async #publish (channel: string, c: Directed | Broadcast): Promise<void> { await this.#bus.publish(channel, JSON.stringify(c)) }

  /** Listens to the control channel and this replica's own; returns the unsubscribe. */
  async listen (on: ScaleOutHandlers): Promise<() => Promise<void>> {
    const offChanges = await this.#bus.subscribe(CONTROL_CHANNEL, (payload) => {
      try {
        const c = JSON.parse(payload) as Broadcast
        if (c.from === this.replica) return
        if (c.t === 'end') on.ended(c.sid, c.reason)
      } catch (err) {
        logFailure(this.#log, 'a malformed message on the replicas\' control channel was dropped')(err)
      }
    })
    const offDirected = await this.#bus.subscribe(replicaChannel(this.replica), (payload) => {
      try {
        const c = JSON.parse(payload) as Directed
        if (c.t === 'response') on.response(c.msg, c.sid)
        else if (c.t === 'cancel') on.cancel(c.sid, c.id, c.reason)
      } catch (err) {
        logFailure(this.#log, 'a malformed message on this replica\'s channel was dropped')(err)
      }
    })
    return async () => { await Promise.all([offChanges(), offDirected()]) }
  }

  /** Tells the other replicas a session ended (their calls of it stop); bounded, failures logged. */
  async ended (sid: string, reason: string): Promise<void> {
    await bounded(this.#publish(CONTROL_CHANNEL, { t: 'end', from: this.replica, sid, reason: cap(reason, 200) }), REDIS_CALL_MS, 'session end relay')
      .catch(logFailure(this.#log, 'telling the other replicas a session ended failed'))
  }

  /** A client's answer nobody awaits here: to the replica that awaits it (claimed once), if any. */
  async relayResponse (sid: string, msg: JsonRpcResponse): Promise<void> {
    const payload = JSON.stringify({ t: 'response', sid, msg } satisfies Directed)
    if (Buffer.byteLength(payload) > MAX_RELAY_BYTES) return
    const owner = await this.#redis.eval(CLAIM, 1, awaitKey(sid, msg.id ?? 'null')) as string | null
    if (owner === null || owner === this.replica) return
    await this.#bus.publish(replicaChannel(owner), payload)
  }

  /** A cancel of a request not running here: to the replica that runs it, if any. */
  async relayCancel (sid: string, id: RequestId, reason: string | undefined): Promise<void> {
    if (String(id).length > MAX_TRACKED_ID) return
    const owner = await this.#redis.get(runKey(sid, id))
    if (owner === null || owner === this.replica) return
    await this.#publish(replicaChannel(owner), { t: 'cancel', sid, id, reason: reason === undefined ? undefined : cap(reason, 200) })
  }

  /**
   * Scale-out bookkeeping in Redis: which replica awaits a server→client request's answer and
   * which runs a session request (only once it has run TRACK_RUNNING_AFTER_MS: quick ones are not
   * worth a round trip, and a cancel that arrives after the answer has nothing to do anyway).
   */
  tracker (cancel: (sid: string, id: RequestId) => void): ScaleOutTracker {
    const redis = this.#redis
    const replica = this.replica
    const leases = this.leases
    return {
      async awaiting (sid, id, ttlMs) { await redis.set(awaitKey(sid, id), replica, 'PX', ttlMs) },
      settled (sid, id) { redis.del(awaitKey(sid, id)).catch(ignore('the await key expires with its TTL')) },
      running (sid, id) {
        if (String(id).length > MAX_TRACKED_ID) return () => {}
        // A lease (RUN_LEASE_MS, renewed): a dead runner is named for seconds, not a minute.
        let release: Promise<(() => Promise<void>) | undefined> | undefined
        const timer = setTimeout(() => {
          // Guarded by the session's record: a session ended anywhere stops this run within one
          // renewal, even if the end-of-session message between replicas was lost.
          release = leases.hold(runKey(sid, id), () => { cancel(sid, id) }, [], 0, redisKeys.session(sid)).catch((): undefined => undefined)
        }, TRACK_RUNNING_AFTER_MS)
        timer.unref()
        return () => {
          clearTimeout(timer)
          release?.then(async (r) => { await r?.() }).catch(ignore('the run key lapses with its lease'))
        }
      }
    }
  }

  /** RequestRuns on Redis: leases through RunLeases, watches through watchRun, errors through the hub (the log). */
  requestRuns (server: McpServer, streams: StreamSink, keepMs: number): RequestRuns {
    const leases = this.leases
    const redis = this.#redis
    const log = this.#log
    return {
      async hold (sid, id, streamKey) {
        const release = await leases.hold(redisKeys.streamRunner(streamKey), () => { server.cancel(sid, id, 'another replica declared this run dead') },
          [[redisKeys.streamRequest(streamKey), JSON.stringify(id)]], keepMs)
        return async () => { await release(RUN_DONE, keepMs) }
      },
      watch (streamKey) {
        return watchRun(redis, redisKeys.streamRunner(streamKey), redisKeys.streamRequest(streamKey), (id) => {
          const error = errorResponse(id, ErrorCode.InternalError, RUNNER_DIED)
          streams.publish(streamKey, { event: 'message', data: JSON.stringify(error) })
            .then(async () => { await streams.end(streamKey) })
            .catch(logFailure(log, 'ending the stream of a request whose runner died failed'))
        })
      }
    }
  }

  close (): void { this.leases.close() }
}

/** What a listen stream is told when changes may have been lost for it (it ends with this error). */
export const CHANGES_LOST = 'The shared store (Redis) lost data: change notifications may be missing; list again and listen again'

/**
 * Listen-stream changes across replicas (REDIS_URL): each change is appended to one shared log key
 * (CHANGES_STREAM) and every replica follows that key through the hub (Hub.follow), fanning it out
 * to its own listen streams by their filters. A change thus reaches every replica's listen streams
 * as an event reaches a stream: once, in order, within one heartbeat whatever the bus did (the hub's
 * catch-up). When the log lost changes (Redis lost data, or trimmed past a replica far behind), the
 * listen streams here end with a JSON-RPC error (CHANGES_LOST): a listen stream cannot be resumed,
 * so its client lists again and opens a new one. `changed` rejects when the change cannot be logged
 * (the caller refuses: 503).
 */
export function changeFeed (hub: Pick<Hub, 'follow' | 'publish'>, listeners: ListenStreams, log: WarnLogger): { changed: (change: Change) => Promise<void>, stop: () => void } {
  const stop = hub.follow(CHANGES_STREAM, {
    event (ev) {
      let change: Change
      try { change = JSON.parse(ev.data) as Change } catch { return }
      listeners.deliver(change).catch(logFailure(log, 'change delivery to listen streams failed'))
    },
    lost () {
      listeners.failAll(CHANGES_LOST).catch(logFailure(log, 'ending listen streams after lost changes failed'))
    }
  })
  return {
    changed: async (change) => { await hub.publish(CHANGES_STREAM, { event: 'change', data: JSON.stringify(change) }) },
    stop
  }
}

/** A keyring that follows the shared secret in Redis: current signs, current and previous verify. */
class SharedSecretRing implements SecretRing {
  current: Buffer
  #previous: Buffer | undefined
  constructor (current: Buffer) { this.current = current }
  get all (): readonly Buffer[] { return this.#previous === undefined ? [this.current] : [this.current, this.#previous] }

  /**
   * After every Redis (re)connect: offer our key (SET NX) and adopt whatever Redis holds. After a
   * Redis restart the first replica back re-publishes the key all replicas already share, so states
   * keep verifying everywhere; a replica that must switch keeps its old key to verify with.
   */
  async sync (redis: Redis): Promise<void> {
    await redis.set(STATE_SECRET_KEY, this.current.toString('base64'), 'NX')
    const shared = await redis.get(STATE_SECRET_KEY)
    if (shared === null) throw new Error('Redis lost the shared requestState key')
    const key = Buffer.from(shared, 'base64')
    if (!key.equals(this.current)) {
      this.#previous = this.current
      this.current = key
    }
  }
}

/**
 * The MRTR requestState keys: `secret` (STATE_SECRET) when set; else one random key shared by every
 * replica through Redis (first one wins, re-offered on every reconnect); else random for this process.
 * The caller checks that STATE_SECRET comes with Redis (config).
 */
export async function stateSecret (
  secret: string | undefined, redis: Redis | undefined, log: WarnLogger, onClose: OnClose
): Promise<SecretRing> {
  if (secret !== undefined) return fixedRing(Buffer.from(secret, 'utf8'))
  if (redis === undefined) return fixedRing(randomBytes(32))
  const ring = new SharedSecretRing(randomBytes(32))
  await ring.sync(redis)
  const onReady = (): void => { ring.sync(redis).catch((err: Error) => { log.warn({ err: err.message }, 'requestState key sync failed') }) }
  redis.on('ready', onReady)
  onClose(async () => { redis.off('ready', onReady) })
  return ring
}

// Redeems a nonce (SET NX) only while Redis is the one the state was sealed under: its run id
// changes on every restart and failover, so a Redis that lost nonces (restarted empty, restored
// from an older snapshot, a lagging replica promoted) refuses every state sealed before.
// Returns { 1 | 0 | -1 (other dataset), current run id }.
const CONSUME = `
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if id ~= ARGV[2] then return { -1, id } end
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return { 1, id } end
return { 0, id }`

/**
 * Single use of requestState: a nonce redeemed with SET NX in Redis (shared by the replicas) and
 * bound to Redis's run id (see CONSUME), else in memory (one process: STATE_SECRET needs Redis).
 */
export async function nonceStore (redis: Redis | undefined, log: WarnLogger, onClose: OnClose): Promise<NonceStore> {
  if (redis === undefined) return new MemoryNonceStore()
  let dataset: string | undefined
  const refresh = async (): Promise<void> => {
    const info = await bounded(redis.info('server'), REDIS_CALL_MS, 'Redis run id')
    dataset = /run_id:(\w+)/.exec(info)?.[1]
  }
  await refresh().catch(logFailure(log, 'reading the Redis run id failed; requestStates are refused until it is known'))
  const onReady = (): void => { refresh().catch(logFailure(log, 'reading the Redis run id failed')) }
  redis.on('ready', onReady)
  onClose(async () => { redis.off('ready', onReady) })
  return {
    dataset: () => dataset,
    async consume (nonce, ttlMs, who) {
      const [ok, id] = await bounded(redis.eval(CONSUME, 1, redisKeys.nonce(nonce), ttlMs, who?.dataset ?? '') as Promise<[number, string]>, REDIS_CALL_MS, 'requestState redemption')
      dataset = id
      return ok === 1
    }
  }
}

/**
 * Redis's clock as seen from this process (local clock + measured offset, re-measured on every
 * reconnect and each minute), so requestState expiry set on one replica and checked on another
 * never compares two replicas' clocks.
 */
export async function sharedClock (redis: Redis | undefined, log: WarnLogger, onClose: OnClose): Promise<() => number> {
  if (redis === undefined) return Date.now
  let offset = 0
  const sync = async (): Promise<void> => {
    const before = Date.now()
    const [sec, usec] = await bounded(redis.time(), REDIS_CALL_MS, 'Redis TIME')
    const after = Date.now()
    offset = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - Math.round((before + after) / 2)
  }
  await sync().catch(logFailure(log, 'reading the Redis clock failed; using the local clock until it answers'))
  const onReady = (): void => { sync().catch(logFailure(log, 'reading the Redis clock failed')) }
  redis.on('ready', onReady)
  const timer = setInterval(onReady, 60_000)
  timer.unref()
  onClose(async () => { redis.off('ready', onReady); clearInterval(timer) })
  return () => Date.now() + offset
}
