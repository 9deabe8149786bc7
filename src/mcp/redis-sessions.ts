import type { Redis } from 'ioredis'
import { redisKeys } from './keys.js'
import type { LoggingLevel, SessionRecord, SessionStore, Transport } from './session.js'
import { ignore } from '../ignore.js'

const recordKey = redisKeys.session
const subsKey = redisKeys.sessionSubscriptions
const uriPrefix = redisKeys.resourceSubscribersPrefix
const INDEX = redisKeys.sessions

/** Transport names of records written by older replicas → today's names. */
const LEGACY_TRANSPORT_NAMES: Record<string, Transport> = { streamable: 'streamable-http', legacy: 'http+sse' }

/** Fields kept whole in the hash's `r` field: set by initialize, never changed concurrently. */
type Fixed = Omit<SessionRecord, 'logLevel' | 'initialized' | 'subscriptions'>

// HSET field/value pairs only while the record exists, and refresh its TTL (and its subscriptions').
const UPDATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`

// Adds a URI to the session's set and the session to the URI's index, unless the set is full.
const SUBSCRIBE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -2 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[2])
return 1`

const UNSUBSCRIBE = `
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 1`

// Drops every subscription of a session (and its entries in the URI index); ARGV[1] = session id.
const UNSUBSCRIBE_ALL = `
for _, uri in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('SREM', ARGV[2] .. uri, ARGV[1]) end
redis.call('DEL', KEYS[1])
return 1`

// Deletes a session: its subscriptions, the URI index entries, the record and the listing entry.
const DELETE = `
for _, uri in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('SREM', ARGV[2] .. uri, ARGV[1]) end
redis.call('DEL', KEYS[2])
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n`

/**
 * Sessions in Redis, so any replica can serve any request. One hash per session with a TTL of
 * SESSION_IDLE_TIMEOUT_MS (refreshed on use): `r` the fixed part (JSON), `l` the log level, `i`
 * initialized — so setLevel and notifications/initialized on different replicas are single HSETs,
 * never a read-modify-write of the whole record. Subscriptions are a Redis set per session
 * (added/removed atomically with the budget checked in Lua) plus an index per URI (the sessions
 * subscribed to it), so resources/updated costs in proportion to its subscribers. A sorted set of
 * ids by last use serves listing and idle eviction.
 *
 * The scripts touch keys they derive (the URI index), so this store needs a single Redis (or
 * Sentinel), not Redis Cluster.
 */
export class RedisSessionStore implements SessionStore {
  readonly #redis: Redis
  readonly #idleMs: number
  readonly #listeners: Array<(id: string) => void> = []
  readonly #timer: NodeJS.Timeout
  #size = 0

  constructor (redis: Redis, idleTimeoutMs: number) {
    this.#redis = redis
    this.#idleMs = idleTimeoutMs
    this.#timer = setInterval(() => { this.#sweep().catch(ignore('the next sweep retries; records expire by TTL anyway')) }, Math.max(500, Math.min(30_000, Math.floor(idleTimeoutMs / 10))))
    this.#timer.unref()
  }

  get size (): number { return this.#size }

  async create (record: SessionRecord): Promise<void> {
    const { logLevel, initialized, subscriptions, ...fixed } = record
    const m = this.#redis.multi()
      .del(recordKey(record.id), subsKey(record.id))
      .hset(recordKey(record.id), 'r', JSON.stringify(fixed), 'l', logLevel ?? '', 'i', initialized ? '1' : '0')
      .pexpire(recordKey(record.id), this.#idleMs)
      .zadd(INDEX, record.lastSeenAt, record.id)
    if (subscriptions !== undefined && subscriptions.length > 0) {
      m.sadd(subsKey(record.id), ...subscriptions).pexpire(subsKey(record.id), this.#idleMs)
      for (const uri of subscriptions) m.sadd(uriPrefix + uri, record.id)
    }
    await m.exec()
    this.#size++
  }

  /** The record without its subscriptions (subscriptionsOf): reading a session costs the same however many it has. */
  async get (id: string): Promise<SessionRecord | undefined> {
    const hash = await this.#redis.hgetall(recordKey(id))
    if (hash.r === undefined) return undefined
    const fixed = JSON.parse(hash.r) as Fixed
    // Records written before the transports were renamed (a rolling upgrade) keep working.
    const transport = LEGACY_TRANSPORT_NAMES[fixed.transport] ?? fixed.transport
    return { ...fixed, transport, logLevel: hash.l === '' || hash.l === undefined ? null : hash.l as LoggingLevel, initialized: hash.i === '1' }
  }

  async subscriptionsOf (id: string): Promise<string[]> {
    return await this.#redis.smembers(subsKey(id))
  }

  /**
   * logLevel and initialized are single HSETs; subscriptions (only replaced whole by a repeated
   * initialize) are rewritten with their index; any other field rewrites the fixed part.
   */
  async update (id: string, patch: Partial<Omit<SessionRecord, 'id'>>): Promise<void> {
    const { logLevel, initialized, subscriptions, ...rest } = patch
    const fields: string[] = []
    if (logLevel !== undefined) fields.push('l', logLevel ?? '')
    if (initialized !== undefined) fields.push('i', initialized ? '1' : '0')
    if (Object.keys(rest).length > 0) {
      const current = await this.get(id)
      if (current === undefined) return
      const { logLevel: _l, initialized: _i, subscriptions: _s, ...fixed } = { ...current, ...rest, id }
      fields.push('r', JSON.stringify(fixed))
    }
    if (fields.length > 0) {
      if (await this.#redis.eval(UPDATE, 2, recordKey(id), subsKey(id), this.#idleMs, ...fields) === 0) return
    }
    if (subscriptions !== undefined) {
      await this.#redis.eval(UNSUBSCRIBE_ALL, 1, subsKey(id), id, uriPrefix)
      for (const uri of subscriptions) await this.subscribe(id, uri, Number.MAX_SAFE_INTEGER)
    }
  }

  async subscribe (id: string, uri: string, max: number): Promise<'ok' | 'full' | 'gone'> {
    const n = Number(await this.#redis.eval(SUBSCRIBE, 3, recordKey(id), subsKey(id), uriPrefix + uri, uri, id, max, this.#idleMs))
    return n === -1 ? 'gone' : n === -2 ? 'full' : 'ok'
  }

  async unsubscribe (id: string, uri: string): Promise<void> {
    await this.#redis.eval(UNSUBSCRIBE, 3, recordKey(id), subsKey(id), uriPrefix + uri, uri, id)
  }

  async subscribers (uri: string): Promise<string[]> {
    return await this.#redis.smembers(uriPrefix + uri)
  }

  async touch (id: string): Promise<void> {
    await this.#redis.multi()
      .pexpire(recordKey(id), this.#idleMs)
      .pexpire(subsKey(id), this.#idleMs)
      .zadd(INDEX, 'XX', Date.now(), id)
      .exec()
  }

  async delete (id: string): Promise<boolean> {
    const deleted = Number(await this.#redis.eval(DELETE, 3, recordKey(id), subsKey(id), INDEX, id, uriPrefix)) === 1
    if (deleted) this.#size = Math.max(0, this.#size - 1)
    return deleted
  }

  async ids (): Promise<string[]> {
    return await this.#redis.zrangebyscore(INDEX, Date.now() - this.#idleMs, '+inf')
  }

  async count (): Promise<number> {
    this.#size = await this.#redis.zcount(INDEX, Date.now() - this.#idleMs, '+inf')
    return this.#size
  }

  onEvict (listener: (id: string) => void): void { this.#listeners.push(listener) }

  /** Drops idle ids from the index; the replica whose ZREM wins cleans up and tells its listeners. */
  async #sweep (): Promise<void> {
    const cutoff = Date.now() - this.#idleMs
    const stale = await this.#redis.zrangebyscore(INDEX, '-inf', cutoff, 'LIMIT', 0, 500)
    for (const id of stale) {
      if (await this.#redis.zrem(INDEX, id) === 1) {
        await this.#redis.eval(DELETE, 3, recordKey(id), subsKey(id), INDEX, id, uriPrefix)
        for (const l of this.#listeners) l(id)
      }
    }
    await this.count()
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
  }
}
