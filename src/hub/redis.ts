import { Redis, type RedisOptions } from 'ioredis'
import { newEpoch, type Bus, type EventLog, type HubEvent, type LogHead, type LogRead, type StoredEvent } from './types.js'
import type { BroadcastTargets } from './hub.js'
import { redisKeys } from '../mcp/keys.js'
import { DATASET_LUA, RedisDataset, newDatasetId } from './dataset.js'
import { ignore } from '../ignore.js'

/** Connection options for every Redis client: reconnect for ever with capped backoff, fail fast while down. */
export function redisOptions (): RedisOptions {
  return {
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 2,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 200, 2000)
  }
}

/** A client whose errors are logged, never thrown as unhandled 'error' events. */
export function createRedis (url: string, onError: (err: Error) => void): Redis {
  const client = new Redis(url, redisOptions())
  client.on('error', onError)
  return client
}

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
      APPEND, 3, redisKeys.log(key), redisKeys.seq(key), redisKeys.dataset, this.#capacity, event.event ?? '', event.data, this.#ttlMs, newEpoch(), this.#ringBytes, newDatasetId()) as [string, number, string, number, number]
    this.dataset.observe([id, generation, changed])
    return { epoch, seq: Number(seq) }
  }

  async #read (key: string, afterSeq: number): Promise<LogRead & { ended: boolean }> {
    const [id, generation, changed, read] = await this.#redis.eval(READ, 3, redisKeys.log(key), redisKeys.seq(key), redisKeys.dataset,
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

  onReset (listener: () => void): () => void {
    return this.dataset.onChange(() => listener())
  }

  async end (key: string): Promise<void> {
    await this.#redis.multi()
      .set(redisKeys.end(key), '1', 'PX', this.#endedRetentionMs)
      .pexpire(redisKeys.log(key), this.#endedRetentionMs)
      .pexpire(redisKeys.seq(key), this.#endedRetentionMs)
      .exec()
  }

  async isEnded (key: string): Promise<boolean> {
    return await this.#redis.exists(redisKeys.end(key)) === 1
  }

  async delete (key: string): Promise<void> {
    await this.#redis.del(redisKeys.log(key), redisKeys.seq(key), redisKeys.end(key))
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

  constructor (pub: Redis, sub: Redis) {
    this.#pub = pub
    this.#sub = sub
    this.#sub.on('message', (channel: string, payload: string) => {
      for (const handler of this.#handlers.get(channel) ?? []) handler(payload)
    })
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
  async add (key: string): Promise<void> { await this.#redis.sadd(redisKeys.targets, key) }
  async remove (key: string): Promise<void> { await this.#redis.srem(redisKeys.targets, key) }
  async list (): Promise<Iterable<string>> { return await this.#redis.smembers(redisKeys.targets) }
}
