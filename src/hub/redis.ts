import { Redis, type RedisOptions } from 'ioredis'
import type { Bus, EventLog, HubEvent, StoredEvent } from './types.js'
import type { BroadcastTargets } from './hub.js'

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

// Append atomically: next seq, XADD with that seq as the stream id, trim to the buffer size, TTL.
const APPEND = `
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], seq .. '-0', 'e', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return seq`

type StreamEntry = [id: string, fields: string[]]

function toStored (entry: StreamEntry): StoredEvent {
  const [id, fields] = entry
  const seq = Number(id.slice(0, id.indexOf('-')))
  let event: string | undefined
  let data = ''
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'e' && fields[i + 1] !== '') event = fields[i + 1]
    else if (fields[i] === 'd') data = fields[i + 1]
  }
  return event === undefined ? { seq, data } : { seq, event, data }
}

/**
 * The replay log on Redis Streams, shared by every replica: one stream per key, trimmed to
 * REPLAY_BUFFER_SIZE entries, the event's seq as its stream id; keys expire when unused.
 */
export class RedisEventLog implements EventLog {
  readonly #redis: Redis
  readonly #capacity: number
  readonly #ttlMs: number
  readonly #endedRetentionMs: number

  constructor (redis: Redis, capacity: number, ttlMs: number, endedRetentionMs = 5 * 60_000) {
    this.#redis = redis
    this.#capacity = capacity
    this.#ttlMs = ttlMs
    this.#endedRetentionMs = endedRetentionMs
  }

  async append (key: string, event: HubEvent): Promise<number> {
    const seq = await this.#redis.eval(APPEND, 2, `mcp:log:${key}`, `mcp:seq:${key}`, this.#capacity, event.event ?? '', event.data, this.#ttlMs)
    return Number(seq)
  }

  async lastSeq (key: string): Promise<number> {
    return Number(await this.#redis.get(`mcp:seq:${key}`) ?? 0)
  }

  async readAfter (key: string, afterSeq: number): Promise<{ events: StoredEvent[], evicted: boolean }> {
    const results = await this.#redis.multi()
      .xrange(`mcp:log:${key}`, `(${afterSeq}-0`, '+')
      .xrange(`mcp:log:${key}`, '-', '+', 'COUNT', 1)
      .get(`mcp:seq:${key}`)
      .exec()
    if (results === null) throw new Error('Redis transaction aborted')
    for (const [err] of results) if (err) throw err
    const events = (results[0][1] as StreamEntry[]).map(toStored)
    const first = (results[1][1] as StreamEntry[])[0]
    const last = Number(results[2][1] ?? 0)
    const oldest = first === undefined ? last + 1 : toStored(first).seq
    return { events, evicted: afterSeq < last && afterSeq + 1 < oldest }
  }

  async end (key: string): Promise<void> {
    await this.#redis.multi()
      .set(`mcp:end:${key}`, '1', 'PX', this.#endedRetentionMs)
      .pexpire(`mcp:log:${key}`, this.#endedRetentionMs)
      .pexpire(`mcp:seq:${key}`, this.#endedRetentionMs)
      .exec()
  }

  async isEnded (key: string): Promise<boolean> {
    return await this.#redis.exists(`mcp:end:${key}`) === 1
  }

  async delete (key: string): Promise<void> {
    await this.#redis.del(`mcp:log:${key}`, `mcp:seq:${key}`, `mcp:end:${key}`)
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

  async subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    let set = this.#handlers.get(channel)
    if (set === undefined) {
      set = new Set()
      this.#handlers.set(channel, set)
      await this.#sub.subscribe(channel)
    }
    set.add(handler)
    return async () => {
      const current = this.#handlers.get(channel)
      if (current === undefined) return
      current.delete(handler)
      if (current.size === 0) {
        this.#handlers.delete(channel)
        await this.#sub.unsubscribe(channel).catch(() => {})
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
  async add (key: string): Promise<void> { await this.#redis.sadd('mcp:targets', key) }
  async remove (key: string): Promise<void> { await this.#redis.srem('mcp:targets', key) }
  async list (): Promise<Iterable<string>> { return await this.#redis.smembers('mcp:targets') }
}
