import { Redis, type RedisOptions } from 'ioredis'
import { newEpoch, type Bus, type EventLog, type HubEvent, type KeyRead, type LogHead, type LogRead, type StoredEvent } from './types.js'
import type { BroadcastTargets } from './hub.js'
import { hubKeys } from './keys.js'
import { DATASET_LUA, RedisDataset, newDatasetId } from './dataset.js'
import { ignore } from '../ignore.js'
import type { RedisSentinel } from '../config.js'

/** Default REDIS_COMMAND_TIMEOUT_MS: the longest any one Redis call may take before it fails. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2000

/**
 * Connection options for every Redis client. The bounds, chosen so that every Redis call on a request
 * path succeeds or fails within `commandTimeoutMs` (REDIS_COMMAND_TIMEOUT_MS, default 2 s) and the
 * client gets a 503 + Retry-After or a JSON-RPC error instead of a wait:
 * - `commandTimeout`: a command without a reply after that long rejects ("Command timed out"), whether
 *   it was sent or still queued offline;
 * - offline queue on, so a command issued during a short reconnect (a killed connection, a failover
 *   Sentinel resolves) waits for it instead of failing at once — within the timeout above;
 * - `maxRetriesPerRequest: 2`: when Redis stays unreachable, queued commands fail after the third
 *   failed reconnect attempt (≈ 0.6 s with the backoff below), usually before the timeout;
 * - reconnect for ever, backoff 200 ms × attempt, at most 2 s; a connect attempt gives up after 5 s.
 */
export function redisOptions (commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS): RedisOptions {
  return {
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 2,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 200, 2000)
  }
}

/** A client (a URL, or sentinel options) whose errors are logged, never thrown as unhandled 'error' events. */
export function createRedis (
  target: RedisTarget, onError: (err: Error) => void, commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS
): Redis {
  const options = redisOptions(commandTimeoutMs)
  const client = typeof target === 'string' ? new Redis(target, options) : new Redis({ ...options, ...target })
  client.on('error', onError)
  return client
}

/** Replies by which Redis says "not now" (loading, a replica during failover, a busy script, Cluster moving). */
const UNAVAILABLE_REPLY = /^(LOADING|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|NOMASTERLINK)\b/
/** ioredis's own messages when a command could not get a reply (see redisOptions). */
const UNAVAILABLE_CLIENT = /^(Command timed out|Connection is closed|Stream isn't writeable|Reached the max retries per request limit|All sentinels are unreachable|Failed to refresh slots cache)/
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * True for an error that means "Redis is unreachable or not serving right now" (as opposed to a bug):
 * the request is answered 503 + Retry-After (src/plugin.ts errorHandler) or with a JSON-RPC error.
 */
export function isRedisUnavailable (err: unknown): boolean {
  if (!(err instanceof Error)) return false
  if (err.name === 'MaxRetriesPerRequestError') return true
  if (UNAVAILABLE_CLIENT.test(err.message) || UNAVAILABLE_REPLY.test(err.message)) return true
  const code = (err as Error & { code?: unknown }).code
  return typeof code === 'string' && UNAVAILABLE_CODES.has(code)
}

/** What a client is told when Redis is unavailable (503 + Retry-After: REDIS_RETRY_AFTER_S). */
export const REDIS_UNAVAILABLE = 'The shared store (Redis) is unavailable; retry later'
export const REDIS_RETRY_AFTER_S = 2

// Append atomically. KEYS[1] the stream, KEYS[2] a hash { e: epoch, s: last seq, b: bytes kept,
// d: the dataset it belongs to }, KEYS[3] the dataset marker (src/hub/dataset.ts). A missing hash (new
// key, expired) or one of another dataset (Redis lost data since: restarted, restored, failed over,
// flushed) starts a new epoch at seq 1 and drops any stale stream: an id is never handed out twice.
// The event's seq is its stream id; oldest entries go while the stream holds more than ARGV[1]
// entries or ARGV[6] bytes (one larger entry is kept alone). Both keys get the TTL, so they live and
// expire together. Returns { epoch, seq, dataset id, generation, dataset changed }.
const APPEND = `${DATASET_LUA}
local ds = dataset(KEYS[3], ARGV[7])
local h = redis.call('HMGET', KEYS[2], 'e', 'd')
local ep = h[1]
if not ep or h[2] ~= ds[1] then
  ep = ARGV[5]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], 'e', ep, 's', 0, 'b', 0, 'd', ds[1])
end
local seq = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('XADD', KEYS[1], seq .. '-0', 'e', ARGV[2], 'd', ARGV[3])
local bytes = redis.call('HINCRBY', KEYS[2], 'b', string.len(ARGV[2]) + string.len(ARGV[3]) + 64)
local n = redis.call('XLEN', KEYS[1])
local maxn = tonumber(ARGV[1])
local maxb = tonumber(ARGV[6])
while n > 1 and (n > maxn or bytes > maxb) do
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  local f = first[2]
  local c = 64
  for i = 2, #f, 2 do c = c + string.len(f[i]) end
  redis.call('XDEL', KEYS[1], first[1])
  bytes = redis.call('HINCRBY', KEYS[2], 'b', -c)
  n = n - 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {ep, seq, ds[1], ds[2], ds[3]}`

// One key's log as readers see it, after the dataset check: a hash of another dataset is no log.
// Defines read(seqKey, logKey, endKey, after): { epoch|false, last, oldest seq kept, ended, events
// with seq > after }; after < 0 reads the head only.
const READ_LUA = `
local function read(sk, lk, ek, after, ds)
  local h = redis.call('HMGET', sk, 'e', 's', 'd')
  local ended = 0
  if ek and redis.call('EXISTS', ek) == 1 then ended = 1 end
  if not h[1] or h[3] ~= ds then return {false, 0, 1, ended, {}} end
  local last = tonumber(h[2]) or 0
  if after < 0 or after >= last then return {h[1], last, last + 1, ended, {}} end
  local events = redis.call('XRANGE', lk, '(' .. after .. '-0', '+')
  local oldest = last + 1
  local first = redis.call('XRANGE', lk, '-', '+', 'COUNT', 1)[1]
  if first then oldest = tonumber(string.match(first[1], '^(%d+)')) end
  return {h[1], last, oldest, ended, events}
end
`

// KEYS[1] the stream, KEYS[2] its hash, KEYS[3] the dataset marker; ARGV[1] after (-1: head only),
// ARGV[2] a candidate dataset id. Returns { dataset id, generation, changed, read(...) }.
const READ = `${DATASET_LUA}${READ_LUA}
local ds = dataset(KEYS[3], ARGV[2])
return {ds[1], ds[2], ds[3], read(KEYS[2], KEYS[1], false, tonumber(ARGV[1]), ds[1])}`

type StreamEntry = [id: string, fields: string[]]

function toStored (entry: StreamEntry): StoredEvent {
  const [id, fields] = entry
  const seq = Number(id.slice(0, id.indexOf('-')))
  let event: string | undefined
  let data = ''
  for (let i = 0; i < fields.length; i += 2) {
    const value = fields[i + 1] ?? ''
    if (fields[i] === 'e' && value !== '') event = value
    else if (fields[i] === 'd') data = value
  }
  return event === undefined ? { seq, data } : { seq, event, data }
}

// The hub's catch-up (one per heartbeat and after every resubscribe): KEYS[1] the dataset marker,
// then per key its hash, stream and end flag; ARGV[1] a candidate dataset id, then per key the seq
// after which to read. Returns { dataset id, generation, changed, read(...) per key }.
const READ_MANY = `${DATASET_LUA}${READ_LUA}
local ds = dataset(KEYS[1], ARGV[1])
local out = {ds[1], ds[2], ds[3]}
for i = 2, #ARGV do
  local k = 2 + (i - 2) * 3
  out[#out + 1] = read(KEYS[k], KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[i]), ds[1])
end
return out`

// KEYS[1] the stream, KEYS[2] its hash; ARGV[1] the epoch to retire (only if still current).
const RETIRE = `
if redis.call('HGET', KEYS[2], 'e') == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) end
return 0`

/** Keys per READ_MANY call: one script call stays short (Redis runs it alone); the calls share one pipeline. */
const READ_MANY_BATCH = 200

type ReadReply = [epoch: string | null, last: number | string, oldest: number | string, ended: number | string, events: StreamEntry[]]

function toRead (reply: ReadReply, afterSeq: number): LogRead & { ended: boolean } {
  const [epoch, lastText, oldestText, ended, entries] = reply
  const last = Number(lastText)
  if (epoch === null) return { epoch: undefined, last: 0, events: [], evicted: false, ended: Number(ended) === 1 }
  const oldest = Number(oldestText)
  return { epoch, last, events: entries.map(toStored), evicted: afterSeq < last && afterSeq + 1 < oldest, ended: Number(ended) === 1 }
}

/**
 * The replay log on Redis Streams, shared by every replica: one stream per key, trimmed to
 * REPLAY_BUFFER_SIZE entries and REPLAY_BUFFER_BYTES bytes, the event's seq as its stream id, an
 * epoch per life of the key; keys expire when unused. Every append and read checks the dataset
 * marker (src/hub/dataset.ts) in the same script: a log of a lost dataset is no log, and appends
 * start a new epoch, so an id is never handed out twice.
 */
export class RedisEventLog implements EventLog {
  readonly #redis: Redis
  readonly #capacity: number
  readonly #ttlMs: number
  readonly #endedRetentionMs: number
  readonly #ringBytes: number
  readonly dataset: RedisDataset

  constructor (
    redis: Redis, capacity: number, ttlMs: number, endedRetentionMs = 5 * 60_000, ringBytes = Number.MAX_SAFE_INTEGER,
    dataset = new RedisDataset(redis)
  ) {
    this.#redis = redis
    this.#capacity = capacity
    this.#ttlMs = ttlMs
    this.#endedRetentionMs = endedRetentionMs
    this.#ringBytes = ringBytes
    this.dataset = dataset
  }

  async append (key: string, event: HubEvent): Promise<{ epoch: string, seq: number }> {
    const [epoch, seq, id, generation, changed] = await this.#redis.eval(
      APPEND, 3, hubKeys.log(key), hubKeys.seq(key), hubKeys.dataset, this.#capacity, event.event ?? '', event.data, this.#ttlMs, newEpoch(), this.#ringBytes, newDatasetId()) as [string, number, string, number, number]
    this.dataset.observe([id, generation, changed])
    return { epoch, seq: Number(seq) }
  }

  async #read (key: string, afterSeq: number): Promise<LogRead & { ended: boolean }> {
    const [id, generation, changed, read] = await this.#redis.eval(READ, 3, hubKeys.log(key), hubKeys.seq(key), hubKeys.dataset,
      afterSeq, newDatasetId()) as [string, number, number, ReadReply]
    this.dataset.observe([id, generation, changed])
    return toRead(read, afterSeq)
  }

  async head (key: string): Promise<LogHead> {
    const { epoch, last } = await this.#read(key, -1)
    return { epoch, last }
  }

  async lastSeq (key: string): Promise<number> {
    return (await this.head(key)).last
  }

  async readAfter (key: string, afterSeq: number): Promise<LogRead> {
    const { epoch, last, events, evicted } = await this.#read(key, Math.max(0, afterSeq))
    return { epoch, last, events, evicted }
  }

  async readMany (reads: ReadonlyArray<{ key: string, afterSeq: number }>): Promise<KeyRead[]> {
    const pipeline = this.#redis.pipeline()
    let i = 0
    do {
      const batch = reads.slice(i, i + READ_MANY_BATCH)
      const keys = batch.flatMap(({ key }) => [hubKeys.seq(key), hubKeys.log(key), hubKeys.end(key)])
      pipeline.eval(READ_MANY, keys.length + 1, hubKeys.dataset, ...keys, newDatasetId(), ...batch.map((r) => Math.max(0, r.afterSeq)))
      i += READ_MANY_BATCH
    } while (i < reads.length)
    const results = await pipeline.exec()
    if (results === null) throw new Error('Redis pipeline aborted')
    const out: KeyRead[] = []
    for (const [err, value] of results) {
      if (err) throw err
      const [id, generation, changed, ...perKey] = value as [string, number, number, ...ReadReply[]]
      this.dataset.observe([id, generation, changed])
      for (const read of perKey) {
        const request = reads[out.length]
        if (request === undefined) break
        out.push({ key: request.key, ...toRead(read, request.afterSeq) })
      }
    }
    return out
  }

  async retire (key: string, epoch: string): Promise<void> {
    await this.#redis.eval(RETIRE, 2, hubKeys.log(key), hubKeys.seq(key), epoch)
  }

  onReset (listener: () => void): () => void {
    return this.dataset.onChange(() => listener())
  }

  async end (key: string): Promise<void> {
    await this.#redis.multi()
      .set(hubKeys.end(key), '1', 'PX', this.#endedRetentionMs)
      .pexpire(hubKeys.log(key), this.#endedRetentionMs)
      .pexpire(hubKeys.seq(key), this.#endedRetentionMs)
      .exec()
  }

  async isEnded (key: string): Promise<boolean> {
    return await this.#redis.exists(hubKeys.end(key)) === 1
  }

  async delete (key: string): Promise<void> {
    await this.#redis.del(hubKeys.log(key), hubKeys.seq(key), hubKeys.end(key))
  }

  async close (): Promise<void> {}
}

/**
 * Pub/sub between replicas on a dedicated subscriber connection. Each replica subscribes only to
 * the channels of keys it holds connections for (one channel per key), so a replica never
 * receives the traffic of streams it does not serve.
 */
export class RedisBus implements Bus {
  readonly #pub: Redis
  readonly #sub: Redis
  readonly #handlers = new Map<string, Set<(payload: string) => void>>()
  readonly #subscribing = new Map<string, Promise<void>>()
  readonly #resubscribed = new Set<() => void>()

  constructor (pub: Redis, sub: Redis) {
    this.#pub = pub
    this.#sub = sub
    this.#sub.on('message', (channel: string, payload: string) => {
      for (const handler of this.#handlers.get(channel) ?? []) handler(payload)
    })
    // ioredis resubscribes when the connection comes back (autoResubscribe), writing SUBSCRIBE before
    // it emits 'ready'; a PING sent now is answered after those: the subscriptions are active.
    this.#sub.on('ready', () => {
      this.#sub.ping().then(() => {
        for (const listener of [...this.#resubscribed]) listener()
      }, ignore('the connection dropped again: the next ready tries again'))
    })
  }

  onResubscribe (listener: () => void): () => void {
    this.#resubscribed.add(listener)
    return () => { this.#resubscribed.delete(listener) }
  }

  async publish (channel: string, payload: string): Promise<void> {
    await this.#pub.publish(channel, payload)
  }

  /**
   * The handler is registered only once SUBSCRIBE succeeded: a failure (Redis down) leaves nothing
   * behind, and the next call tries again. Concurrent first calls share one SUBSCRIBE.
   */
  async subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    if (!this.#handlers.has(channel)) {
      let pending = this.#subscribing.get(channel)
      if (pending === undefined) {
        pending = this.#sub.subscribe(channel).then(() => {
          if (!this.#handlers.has(channel)) this.#handlers.set(channel, new Set())
        }).finally(() => { this.#subscribing.delete(channel) })
        this.#subscribing.set(channel, pending)
      }
      await pending
    }
    let set = this.#handlers.get(channel)
    if (set === undefined) {
      set = new Set()
      this.#handlers.set(channel, set)
    }
    set.add(handler)
    return async () => {
      const current = this.#handlers.get(channel)
      if (current === undefined) return
      current.delete(handler)
      if (current.size === 0) {
        this.#handlers.delete(channel)
        await this.#sub.unsubscribe(channel).catch(ignore('a failed unsubscribe leaves a channel nobody publishes to'))
      }
    }
  }

  async close (): Promise<void> {
    this.#handlers.clear()
  }
}

/** Broadcast targets shared by every replica: a Redis set. */
export class RedisTargets implements BroadcastTargets {
  readonly #redis: Redis
  constructor (redis: Redis) { this.#redis = redis }
  async add (key: string): Promise<void> { await this.#redis.sadd(hubKeys.targets, key) }
  async remove (key: string): Promise<void> { await this.#redis.srem(hubKeys.targets, key) }
  async list (): Promise<Iterable<string>> { return await this.#redis.smembers(hubKeys.targets) }
}

/** Where Redis is: a redis:// URL, or ioredis options naming the sentinels (sentinelOptions). */
export type RedisTarget = string | RedisOptions

/**
 * REDIS_SENTINELS: ioredis asks the sentinels for the master of `name` on every (re)connect, so a
 * failover is followed when the old master's connection drops. Not `failoverDetector`: with
 * ioredis 5.11 a +switch-master that arrives while the client is reconnecting ends the client for
 * good ("Connection is closed", never retried) — seen in test/e2e/sentinel.test.ts.
 */
export function sentinelOptions (sentinel: RedisSentinel): RedisOptions {
  return {
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    ...(sentinel.password === undefined ? {} : { sentinelPassword: sentinel.password }),
    // A demoted master (manual failover) answers writes with READONLY: reconnect, through the sentinels.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    sentinelRetryStrategy: (times) => Math.min(times * 200, 2000)
  }
}

/** The Redis the config names (REDIS_URL or REDIS_SENTINELS); undefined for the in-memory default. */
export function redisTarget (config: { redisUrl: string | undefined, redisSentinel: RedisSentinel | undefined }): RedisTarget | undefined {
  if (config.redisSentinel !== undefined) return sentinelOptions(config.redisSentinel)
  return config.redisUrl
}
