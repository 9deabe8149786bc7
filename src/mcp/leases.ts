import type { Redis } from 'ioredis'
import { bounded } from '../budget.js'
import { ignore } from '../ignore.js'

/**
 * Leases: which replica runs a session request, in Redis, with a short TTL the runner renews. A
 * replica that dies stops renewing, so within one lease every other replica knows the run is
 * over — a resumed stream of that request gets an error instead of waiting for ever (RunWatch).
 */

/** How long a run's lease lives without renewal. */
export const RUN_LEASE_MS = 3000
/** How often the runner renews its leases (well within RUN_LEASE_MS: two renewals may fail). */
export const RUN_RENEW_MS = 1000
/** How often a replica serving a resumed request stream checks the runner's lease. */
export const RUN_CHECK_MS = 1000
/** Bound on each Redis call made here. */
const TIMEOUT_MS = 2000

/** What a lease holds once its run ended normally, or once another replica declared the runner dead. */
export const RUN_DONE = 'done'
export const RUN_DEAD = 'dead'

// Renews a lease this replica holds; re-takes one that lapsed (Redis slow, or restarted empty);
// 0 when someone else holds it (another replica declared this run dead), or when the guard key
// KEYS[2] (the session's record) is gone: the run must stop.
const RENEW = `
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`

// A resumed stream's check: the lease's value (a replica, 'done' or 'dead'); when the lease lapsed
// it becomes 'dead' (atomically, so only one checker reports it and the runner, should it come
// back, stops) and the request's id is returned as { 'dead', id }; nothing when the id is unknown.
const CHECK = `
local v = redis.call('GET', KEYS[1])
if v then return v end
local id = redis.call('GET', KEYS[2])
if not id then return false end
redis.call('SET', KEYS[1], 'dead', 'PX', ARGV[1])
return { 'dead', id }`

/** One replica's run leases, renewed together every RUN_RENEW_MS. */
export class RunLeases {
  readonly #redis: Redis
  readonly #replica: string
  readonly #held = new Map<string, { onLost: () => void, guard: string | undefined }>()
  #timer: NodeJS.Timeout | undefined

  constructor (redis: Redis, replica: string) {
    this.#redis = redis
    this.#replica = replica
  }

  /**
   * Takes the lease `key` for this replica (and stores `extra` key/values with `extraTtlMs`).
   * `onLost` runs when another replica declared the run dead, or when the `guard` key is gone (the
   * session ended: a backstop for a lost end-of-session message). Returns the release, which leaves
   * `finalValue` behind (for `finalTtlMs`) or deletes the lease.
   */
  async hold (
    key: string, onLost: () => void, extra: Array<[string, string]> = [], extraTtlMs = 60_000, guard?: string
  ): Promise<(finalValue?: string, finalTtlMs?: number) => Promise<void>> {
    const m = this.#redis.multi().set(key, this.#replica, 'PX', RUN_LEASE_MS)
    for (const [k, v] of extra) m.set(k, v, 'PX', extraTtlMs)
    await bounded(m.exec(), TIMEOUT_MS, 'run lease')
    this.#held.set(key, { onLost, guard })
    this.#start()
    return async (finalValue, finalTtlMs = 60_000) => {
      if (!this.#held.delete(key)) return
      const done: Promise<unknown> = finalValue === undefined ? this.#redis.del(key) : this.#redis.set(key, finalValue, 'PX', finalTtlMs)
      await bounded(done, TIMEOUT_MS, 'run lease release')
    }
  }

  /** Leases held by this replica. */
  get size (): number { return this.#held.size }

  #start (): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => {
      if (this.#held.size === 0) {
        clearInterval(this.#timer)
        this.#timer = undefined
        return
      }
      for (const [key, { onLost, guard }] of this.#held) {
        const renew = guard === undefined
          ? this.#redis.eval(RENEW, 1, key, this.#replica, RUN_LEASE_MS)
          : this.#redis.eval(RENEW, 2, key, guard, this.#replica, RUN_LEASE_MS)
        bounded(renew, TIMEOUT_MS, 'run lease renewal').then((ok) => {
          if (Number(ok) === 0 && this.#held.delete(key)) onLost()
        }).catch(ignore('retried at the next renewal; the lease outlives two misses'))
      }
    }, RUN_RENEW_MS)
    this.#timer.unref()
  }

  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#held.clear()
  }
}

/**
 * Watches the runner of a resumed request stream: every RUN_CHECK_MS it checks the lease, and
 * when the lease lapsed (runner dead) calls `onDead` once with the request's id; stops when the
 * run is done. So a resumed stream of a dead runner ends within RUN_LEASE_MS + RUN_CHECK_MS
 * (plus one Redis round trip) of the runner's last renewal.
 */
export function watchRun (redis: Redis, lease: string, requestKey: string, onDead: (id: string | number | null) => void): () => void {
  let stopped = false
  let busy = false
  const tick = (): void => {
    if (stopped || busy) return
    busy = true
    bounded(redis.eval(CHECK, 2, lease, requestKey, 60_000), TIMEOUT_MS, 'run lease check').then((v) => {
      if (stopped) return
      if (v === RUN_DONE || v === RUN_DEAD) { stop(); return }
      if (Array.isArray(v) && v[0] === RUN_DEAD) {
        stop()
        onDead(parseId(String(v[1])))
      }
    }).catch(ignore('checked again at the next tick')).finally(() => { busy = false })
  }
  const timer = setInterval(tick, RUN_CHECK_MS)
  timer.unref()
  const stop = (): void => {
    stopped = true
    clearInterval(timer)
  }
  tick()
  return stop
}

/** The request id as stored (JSON), or null. */
function parseId (stored: string): string | number | null {
  try {
    const id: unknown = JSON.parse(stored)
    return typeof id === 'string' || typeof id === 'number' ? id : null
  } catch {
    return null
  }
}
