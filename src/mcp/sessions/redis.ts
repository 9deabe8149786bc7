import type { Redis } from 'ioredis'
import { redisKeys } from '../keys.js'
import { randomBytes } from 'node:crypto'
import type { LoggingLevel, SessionRecord, SessionStore, Transport } from './store.js'
import type { SharedSessionUnits } from './ledger.js'
import { ignore } from '../../ignore.js'
import { bounded } from '../../budget.js'

const recordKey = redisKeys.session
const subsKey = redisKeys.sessionSubscriptions
const uriPrefix = redisKeys.resourceSubscribersPrefix
const INDEX = redisKeys.sessions

/** Transport names of records written by older replicas → today's names. */
const OLD_TRANSPORT_NAMES: Record<string, Transport> = { streamable: 'streamable-http', legacy: 'http+sse' }

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

// Redis's own clock in ms, inside a script: no replica's clock is ever compared with another's.
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

// Scores the session in the listing index by Redis time. ARGV[1] id, ARGV[2] 'XX' to update only.
const INDEX_NOW = `${NOW}
if ARGV[2] == 'XX' then redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1]) else redis.call('ZADD', KEYS[1], now, ARGV[1]) end
return 1`

// Live sessions in the index (scored within the idle timeout, Redis time). ARGV[1] idle ms, ARGV[2] 'count' or 'ids'.
const LIVE = `${NOW}
if ARGV[2] == 'count' then return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf') end
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')`

// Idle eviction: index entries not touched within the idle timeout (Redis time) whose record has
// expired (its TTL, refreshed on every touch, is the truth). Returns the ids removed here.
// ARGV[1] idle ms, ARGV[2] record key prefix, ARGV[3] subscriptions key prefix, ARGV[4] URI index prefix.
const SWEEP = `${NOW}
local gone = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, 500)) do
  if redis.call('EXISTS', ARGV[2] .. id) == 0 then
    local subs = ARGV[3] .. id
    for _, uri in ipairs(redis.call('SMEMBERS', subs)) do redis.call('SREM', ARGV[4] .. uri, id) end
    redis.call('DEL', subs)
    redis.call('ZREM', KEYS[1], id)
    gone[#gone + 1] = id
  end
end
return gone`

// MAX_SESSIONS_PER_CLIENT across replicas. KEYS[1] the client's set: members scored > 0 are
// pending units (score: their expiry, Redis time), scored 0 session ids (counting while the
// record exists). ARGV: limit, pending member, pending ms, record key prefix.
const TAKE_SESSION = `${NOW}
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local m, score = members[i], tonumber(members[i + 1])
  if (score > 0 and score <= now) or (score == 0 and redis.call('EXISTS', ARGV[4] .. m) == 0) then redis.call('ZREM', KEYS[1], m) end
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], 86400000)
return 1`

// The pending unit ARGV[1] becomes session ARGV[2].
const BIND_SESSION = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], 0, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 86400000)
return 1`

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
      .eval(INDEX_NOW, 1, INDEX, record.id, 'NEW')
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
    const transport = OLD_TRANSPORT_NAMES[fixed.transport] ?? fixed.transport
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
      .eval(INDEX_NOW, 1, INDEX, id, 'XX')
      .exec()
  }

  async delete (id: string): Promise<boolean> {
    const deleted = Number(await this.#redis.eval(DELETE, 3, recordKey(id), subsKey(id), INDEX, id, uriPrefix)) === 1
    if (deleted) this.#size = Math.max(0, this.#size - 1)
    return deleted
  }

  async ids (): Promise<string[]> {
    return await this.#redis.eval(LIVE, 1, INDEX, this.#idleMs, 'ids') as string[]
  }

  async count (): Promise<number> {
    this.#size = Number(await this.#redis.eval(LIVE, 1, INDEX, this.#idleMs, 'count'))
    return this.#size
  }

  onEvict (listener: (id: string) => void): void { this.#listeners.push(listener) }

  /**
   * Evicts sessions whose record expired (Redis TTL, refreshed on every touch); the replica whose
   * script removes an id from the index cleans up and tells its listeners. Only Redis's clock
   * counts, so a replica whose clock runs ahead evicts nothing early.
   */
  async #sweep (): Promise<void> {
    const gone = await this.#redis.eval(SWEEP, 1, INDEX, this.#idleMs, recordKey(''), subsKey(''), uriPrefix) as string[]
    for (const id of gone) for (const l of this.#listeners) l(id)
    await this.count()
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
  }
}

/** MAX_SESSIONS_PER_CLIENT shared by every replica (SharedSessionUnits): a sorted set per client. */
export class RedisSessionUnits implements SharedSessionUnits {
  readonly #redis: Redis
  readonly #timeoutMs: number
  constructor (redis: Redis, timeoutMs = 2000) {
    this.#redis = redis
    this.#timeoutMs = timeoutMs
  }

  async take (client: string, limit: number): Promise<string | undefined> {
    const pending = randomBytes(9).toString('base64url')
    const ok = await bounded(this.#redis.eval(TAKE_SESSION, 1, redisKeys.sessionUnits(client), limit, pending, PENDING_MS, recordKey('')), this.#timeoutMs, 'session budget')
    return Number(ok) === 1 ? pending : undefined
  }

  bind (client: string, pending: string, id: string): void {
    bounded(this.#redis.eval(BIND_SESSION, 1, redisKeys.sessionUnits(client), pending, id), this.#timeoutMs, 'session budget')
      .catch(ignore('the pending unit lapses after PENDING_MS; the session then counts no more'))
  }

  release (client: string, pending: string): void {
    bounded(this.#redis.zrem(redisKeys.sessionUnits(client), pending), this.#timeoutMs, 'session budget')
      .catch(ignore('the pending unit lapses after PENDING_MS'))
  }
}

/** How long a session unit may stay pending (initialize running) before it lapses. */
const PENDING_MS = 30_000
