import { randomBytes } from 'node:crypto'
import { ignore } from './ignore.js'
import { redisKeys } from './mcp/keys.js'

/**
 * The budgets a client can run into (README "Resource budgets"), by the name metrics label them
 * with (`mcp_budget_refusals_total{budget}`).
 */
export const BUDGETS = [
  'sessions_per_client', 'streams_per_client', 'inflight_per_client', 'client_info_bytes',
  'subscriptions_per_session', 'uri_bytes', 'listen_filter_bytes', 'broadcast_bytes', 'state_bytes'
] as const
export type BudgetName = typeof BUDGETS[number]

/** Counts one refusal of one budget (a BudgetRefusals counter bound to the budget's name). */
export type CountRefusal = () => void
const uncounted: CountRefusal = () => {}

/**
 * The one registry of budget refusals: whoever refuses counts it here, by the budget's name, where
 * it refuses; metrics read it. Never inferred from a URL or a status code.
 */
export class BudgetRefusals {
  readonly #counts = new Map<BudgetName, number>()
  count (budget: BudgetName): void { this.#counts.set(budget, this.get(budget) + 1) }
  /** A counter bound to one budget, for an owner that knows only its own. */
  counter (budget: BudgetName): CountRefusal { return () => { this.count(budget) } }
  get (budget: BudgetName): number { return this.#counts.get(budget) ?? 0 }
  totals (): Record<BudgetName, number> {
    return Object.fromEntries(BUDGETS.map((b) => [b, this.get(b)])) as Record<BudgetName, number>
  }
}

/**
 * Quotas: how much of one kind of thing each client (auth identity, else IP) may hold at once.
 * Framework-free; the plugins own one Quota per budget and release on every path. The release
 * function `tryAcquire` returns is idempotent, so "release on close" and "release on error" may
 * both run without double-counting. A refusal is counted by `countRefusal` (BudgetRefusals).
 */
export class Quota {
  readonly #used = new Map<string, number>()
  readonly name: string
  readonly limit: number
  /** Counts a refusal of this budget (also called by a shared store that refuses for it). */
  readonly countRefusal: CountRefusal

  constructor (name: string, limit: number, countRefusal: CountRefusal = uncounted) {
    this.name = name
    this.limit = limit
    this.countRefusal = countRefusal
  }

  /** Takes one unit for `client`; undefined when the client is at its limit. */
  tryAcquire (client: string): (() => void) | undefined {
    const used = this.#used.get(client) ?? 0
    if (used >= this.limit) {
      this.countRefusal()
      return undefined
    }
    this.#used.set(client, used + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#used.get(client) ?? 1) - 1
      if (left <= 0) this.#used.delete(client)
      else this.#used.set(client, left)
    }
  }

  used (client: string): number { return this.#used.get(client) ?? 0 }
  /** Units held across every client. */
  get total (): number {
    let n = 0
    for (const v of this.#used.values()) n += v
    return n
  }

  /** Clients holding at least one unit. */
  get clients (): number { return this.#used.size }
}

/** Byte length of a string as UTF-8 (what it costs on the wire; a fair proxy for heap). */
export function utf8Bytes (s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/** A client string made safe to echo in an error or log line: at most `max` characters, marked when cut. */
export function cap (s: string, max = 120): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length} chars)`
}

/** Gives a unit back; idempotent. */
export type Release = () => void

/**
 * A per-client budget as the routes use it: `take` resolves with a release, or undefined when the
 * client is at its limit. In one process it is a Quota; with REDIS_URL a RedisQuota counts the
 * client's units on every replica. A shared store that cannot answer rejects with
 * StoreUnavailableError (the caller answers 503 + Retry-After).
 */
export interface ClientBudget {
  readonly name: string
  readonly limit: number
  take (client: string): Promise<Release | undefined>
  /** Stops background work (lease renewal) and forgets held units (shutdown). */
  close (): void
}

/** The shared store behind a budget (Redis) did not answer in time, or failed. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
  readonly retryAfterSeconds = 2
  constructor (what: string, cause?: unknown) {
    super(`The shared state store is unavailable (${what}); retry shortly`, { cause })
  }
}

/** Rejects with StoreUnavailableError when `work` has not settled within `ms` (or fails). */
export async function bounded<T> (work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      work,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new StoreUnavailableError(`${what}: no answer within ${ms} ms`)) }, ms) })
    ])
  } catch (err) {
    // The losing command may still settle later: its outcome no longer matters to anyone.
    work.catch(ignore('the caller was already answered'))
    if (err instanceof StoreUnavailableError) throw err
    throw new StoreUnavailableError(what, err)
  } finally {
    clearTimeout(timer)
  }
}

/** A Quota as a ClientBudget (the per-process budget, without REDIS_URL). */
export class LocalBudget implements ClientBudget {
  constructor (readonly quota: Quota) {}
  get name (): string { return this.quota.name }
  get limit (): number { return this.quota.limit }
  async take (client: string): Promise<Release | undefined> { return this.quota.tryAcquire(client) }
  close (): void {}
}

/** The few Redis calls a RedisQuota makes (ioredis's `Redis` has them). */
export interface RedisEval {
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

/** The Redis calls a RedisQuota makes. */
export type RedisCalls = RedisEval & { zrem: (key: string, member: string) => Promise<unknown> }

// Takes a unit: KEYS[1] a sorted set of the client's units scored by lease expiry (Redis time, so
// no replica's clock matters). Expired units (a replica that died holding them) are dropped first.
// ARGV: limit, member, lease ms.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`

// Renews the units still held here; a unit Redis lost (restarted empty) is counted again. A release
// (ZREM on the same connection) always runs after any renewal that still named its unit.
// ARGV: lease ms, members...
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`

export interface RedisQuotaOptions {
  /** Redis key of a client's units: prefix + client. */
  prefix: string
  /** How long a unit outlives the replica holding it (renewed every third of it). Default 15 s. */
  leaseMs?: number
  /** Bound on each Redis call. Default 2 s. */
  timeoutMs?: number
  /** Counts a refusal (BudgetRefusals). */
  countRefusal?: CountRefusal
}

/**
 * A per-client budget shared by every replica: each unit is a member of a Redis sorted set per
 * client, scored by its lease's expiry in Redis time. The replica holding units renews their
 * leases every third of LEASE; a release removes the unit at once; a replica that dies stops
 * renewing, so its units lapse within one lease (never a count stuck for ever).
 */
export class RedisQuota implements ClientBudget {
  readonly name: string
  readonly limit: number
  readonly #countRefusal: CountRefusal
  readonly #redis: RedisCalls
  readonly #prefix: string
  readonly #leaseMs: number
  readonly #timeoutMs: number
  /** Redis key → units held by this process. */
  readonly #held = new Map<string, Set<string>>()
  #timer: NodeJS.Timeout | undefined

  constructor (redis: RedisCalls, name: string, limit: number, opts: RedisQuotaOptions) {
    this.#redis = redis
    this.name = name
    this.limit = limit
    this.#prefix = opts.prefix
    this.#leaseMs = opts.leaseMs ?? 15_000
    this.#timeoutMs = opts.timeoutMs ?? 2000
    this.#countRefusal = opts.countRefusal ?? uncounted
  }

  async take (client: string): Promise<Release | undefined> {
    const key = this.#prefix + client
    const unit = randomUnit()
    const ok = await bounded(this.#redis.eval(TAKE, 1, key, this.limit, unit, this.#leaseMs), this.#timeoutMs, `${this.name} budget`)
    if (Number(ok) !== 1) {
      this.#countRefusal()
      return undefined
    }
    let mine = this.#held.get(key)
    if (mine === undefined) this.#held.set(key, mine = new Set())
    mine.add(unit)
    this.#startRenewing()
    let released = false
    return () => {
      if (released) return
      released = true
      const set = this.#held.get(key)
      set?.delete(unit)
      if (set?.size === 0) this.#held.delete(key)
      // Best effort: a unit whose removal fails lapses with its lease.
      bounded(this.#redis.zrem(key, unit), this.#timeoutMs, 'budget release').catch(ignore('the unit lapses with its lease'))
    }
  }

  /** Units this process holds (all clients). */
  get held (): number {
    let n = 0
    for (const s of this.#held.values()) n += s.size
    return n
  }

  #startRenewing (): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => {
      if (this.#held.size === 0) {
        clearInterval(this.#timer)
        this.#timer = undefined
        return
      }
      for (const [key, units] of this.#held) {
        // A failed renewal is retried at the next tick; the lease is three ticks long.
        bounded(this.#redis.eval(RENEW, 1, key, this.#leaseMs, ...units), this.#timeoutMs, 'budget lease renewal').catch(ignore('retried at the next tick'))
      }
    }, Math.max(50, Math.floor(this.#leaseMs / 3)))
    this.#timer.unref()
  }

  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#held.clear()
  }
}

function randomUnit (): string {
  return randomBytes(9).toString('base64url')
}

/**
 * The per-client budget for `name`: shared by every replica through `redis` (REDIS_URL), else
 * per process. Leased units (streams, in-flight requests) lapse within `leaseMs` of a replica's
 * death. Each refusal is counted by `countRefusal`.
 */
export function clientBudget (
  name: string, limit: number,
  redis: RedisCalls | undefined,
  countRefusal: CountRefusal,
  leaseMs?: number
): ClientBudget {
  if (redis === undefined) return new LocalBudget(new Quota(name, limit, countRefusal))
  return new RedisQuota(redis, name, limit, { prefix: redisKeys.budgetUnits(name), leaseMs, countRefusal })
}
