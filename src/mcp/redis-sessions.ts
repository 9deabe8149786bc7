import type { Redis } from 'ioredis'
import type { SessionRecord, SessionStore } from './session.js'

const recordKey = (id: string): string => `mcp:session:${id}`
const INDEX = 'mcp:sessions'

/**
 * Sessions in Redis, so any replica can serve any request: one JSON record per session with a TTL
 * of SESSION_IDLE_TIMEOUT_MS (refreshed on use), and a sorted set of ids by last use for listing
 * and idle eviction.
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
    this.#timer = setInterval(() => { this.#sweep().catch(() => {}) }, Math.max(500, Math.min(30_000, Math.floor(idleTimeoutMs / 10))))
    this.#timer.unref()
  }

  get size (): number { return this.#size }

  async create (record: SessionRecord): Promise<void> {
    await this.#redis.multi()
      .set(recordKey(record.id), JSON.stringify(record), 'PX', this.#idleMs)
      .zadd(INDEX, record.lastSeenAt, record.id)
      .exec()
    this.#size++
  }

  async get (id: string): Promise<SessionRecord | undefined> {
    const text = await this.#redis.get(recordKey(id))
    return text === null ? undefined : JSON.parse(text) as SessionRecord
  }

  async update (id: string, patch: Partial<Omit<SessionRecord, 'id'>>): Promise<void> {
    const current = await this.get(id)
    if (current === undefined) return
    await this.#redis.set(recordKey(id), JSON.stringify({ ...current, ...patch, id }), 'PX', this.#idleMs, 'XX')
  }

  async touch (id: string): Promise<void> {
    await this.#redis.multi()
      .pexpire(recordKey(id), this.#idleMs)
      .zadd(INDEX, 'XX', Date.now(), id)
      .exec()
  }

  async delete (id: string): Promise<boolean> {
    const results = await this.#redis.multi().del(recordKey(id)).zrem(INDEX, id).exec()
    const deleted = results?.[0]?.[1] === 1
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

  /** Drops idle ids from the index; the replica whose ZREM wins tells its listeners. */
  async #sweep (): Promise<void> {
    const cutoff = Date.now() - this.#idleMs
    const stale = await this.#redis.zrangebyscore(INDEX, '-inf', cutoff, 'LIMIT', 0, 500)
    for (const id of stale) {
      if (await this.#redis.zrem(INDEX, id) === 1) {
        await this.#redis.del(recordKey(id))
        for (const l of this.#listeners) l(id)
      }
    }
    await this.count()
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
  }
}
