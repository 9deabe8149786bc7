import { Redis, type RedisOptions } from 'ioredis'
import { newEpoch, type Bus, type EventLog, type HubEvent, type LogHead, type LogRead, type StoredEvent } from './types.js'
import type { BroadcastTargets } from './hub.js'
import { hubKeys } from './keys.js'
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

// Append atomically. KEYS[1] the stream, KEYS[2] a hash { e: epoch, s: last seq, b: bytes kept }.
// A missing hash (new key, expired, or Redis restarted without persistence) starts a new epoch at
// seq 1 and drops any stale stream. The event's seq is its stream id; oldest entries go while the
// stream holds more than ARGV[1] entries or ARGV[6] bytes (one larger entry is kept alone). Both
// keys get the TTL, so they live and expire together.
const APPEND = `
local ep = redis.call('HGET', KEYS[2], 'e')
if not ep then
  ep = ARGV[5]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', ep, 's', 0, 'b', 0)
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
return {ep, seq}`

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

/**
 * The replay log on Redis Streams, shared by every replica: one stream per key, trimmed to
 * REPLAY_BUFFER_SIZE entries and REPLAY_BUFFER_BYTES bytes, the event's seq as its stream id, an
 * epoch per life of the key; keys expire when unused.
 */
export class RedisEventLog implements EventLog {
  readonly #redis: Redis
  readonly #capacity: number
  readonly #ttlMs: number
  readonly #endedRetentionMs: number
  readonly #ringBytes: number

  constructor (redis: Redis, capacity: number, ttlMs: number, endedRetentionMs = 5 * 60_000, ringBytes = Number.MAX_SAFE_INTEGER) {
    this.#redis = redis
    this.#capacity = capacity
    this.#ttlMs = ttlMs
    this.#endedRetentionMs = endedRetentionMs
    this.#ringBytes = ringBytes
  }

  async append (key: string, event: HubEvent): Promise<{ epoch: string, seq: number }> {
    const [epoch, seq] = await this.#redis.eval(APPEND, 2, hubKeys.log(key), hubKeys.seq(key),
      this.#capacity, event.event ?? '', event.data, this.#ttlMs, newEpoch(), this.#ringBytes) as [string, number]
    return { epoch, seq: Number(seq) }
  }

  async head (key: string): Promise<LogHead> {
    const [epoch, last] = await this.#redis.hmget(hubKeys.seq(key), 'e', 's')
    return { epoch: epoch ?? undefined, last: Number(last ?? 0) }
  }

  async lastSeq (key: string): Promise<number> {
    return (await this.head(key)).last
  }

  async readAfter (key: string, afterSeq: number): Promise<LogRead> {
    const results = await this.#redis.multi()
      .xrange(hubKeys.log(key), `(${afterSeq}-0`, '+')
      .xrange(hubKeys.log(key), '-', '+', 'COUNT', 1)
      .hmget(hubKeys.seq(key), 'e', 's')
      .exec()
    if (results === null) throw new Error('Redis transaction aborted')
    for (const [err] of results) if (err) throw err
    const [after, head, seq] = results as Array<[Error | null, unknown]>
    const [epoch, lastText] = seq?.[1] as [string | null, string | null]
    if (epoch === null) return { epoch: undefined, last: 0, events: [], evicted: false }
    const events = (after?.[1] as StreamEntry[]).map(toStored)
    const first = (head?.[1] as StreamEntry[])[0]
    const last = Number(lastText ?? 0)
    const oldest = first === undefined ? last + 1 : toStored(first).seq
    return { epoch, last, events, evicted: afterSeq < last && afterSeq + 1 < oldest }
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
  async add (key: string): Promise<void> { await this.#redis.sadd(hubKeys.targets, key) }
  async remove (key: string): Promise<void> { await this.#redis.srem(hubKeys.targets, key) }
  async list (): Promise<Iterable<string>> { return await this.#redis.smembers(hubKeys.targets) }
}
