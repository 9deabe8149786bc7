import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { hubKeys } from './keys.js'

/**
 * The dataset identity: which life of the Redis data the replicas are talking to.
 *
 * Redis can lose writes without any replica being told: restarted empty, restarted from an older RDB
 * snapshot, `FLUSHALL`, a Sentinel failover to a replica that had not received the last writes.
 * Anything derived from a counter in Redis (event ids, single-use nonces) would then be handed out
 * again. So the data carries a marker, `mcp:dataset` = { id, run, n }: `id` a random name for this
 * life of the data, `run` the `run_id` of the Redis process that wrote the marker, `n` a generation
 * counter (informational). Every script that hands out ids checks it first (DATASET_LUA):
 * - marker missing (empty restart, FLUSHALL, keys deleted) → a new dataset;
 * - marker written by another Redis process (`run_id` differs: any restart, a restore from a snapshot,
 *   a failover) → a new dataset, because what was written since the snapshot or the last replicated
 *   write may be lost and nobody can tell which;
 * - otherwise the data is the one the marker names.
 * A new dataset gets a new random id; everything keyed by the old one (event-log epochs, MRTR state)
 * is treated as gone: new ids start under new epochs, open streams are told with `evicted`.
 * The check runs inside Redis (INFO server in the script), so it needs no replica's memory and no
 * clock, and it is atomic with the write it guards.
 *
 * Trade-off, stated: a restart that lost nothing (AOF with fsync always) is also a new dataset — open
 * streams get one `evicted` notice and continue; nothing is lost silently and no id is reused.
 */
export interface Dataset {
  /** Random name of this life of the data (16 hex digits). */
  id: string
  /** How many times the marker was (re)created since it last went missing. */
  generation: number
}

/**
 * A Lua chunk that defines `local function dataset(k, candidate)`: checks the marker at key `k`,
 * creates or replaces it (with id `candidate`) when missing or written by another Redis process, and
 * returns { id, generation, changed (1 when it was just created or replaced) }. Other scripts that
 * guard ids with the dataset (MRTR single-use state) embed it and pass `hubKeys.dataset` as a key.
 */
export const DATASET_LUA = `
local function dataset(k, candidate)
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''
  local d = redis.call('HMGET', k, 'id', 'run', 'n')
  local n = tonumber(d[3] or '0') or 0
  if d[1] and d[2] == run then return {d[1], n, 0} end
  n = n + 1
  redis.call('HSET', k, 'id', candidate, 'run', run, 'n', n)
  return {candidate, n, 1}
end
`

const CHECK = `${DATASET_LUA}
return dataset(KEYS[1], ARGV[1])`

/** A fresh dataset id: 16 lowercase hex digits. */
export function newDatasetId (): string {
  return randomBytes(8).toString('hex')
}

/** What DATASET_LUA's `dataset()` returns, as a script result. */
export type DatasetReply = [id: string, generation: number | string, changed: number | string]

/**
 * This process's view of the dataset: the id last seen in any script's reply, and the callbacks
 * told when it changes. One per Redis client (plugins/redis.ts makes it as `app.redis.dataset`).
 */
export class RedisDataset {
  readonly #redis: Redis
  readonly #listeners = new Set<(next: Dataset, previous: Dataset | undefined) => void>()
  #current: Dataset | undefined

  constructor (redis: Redis) {
    this.#redis = redis
  }

  /** The dataset last observed (undefined before the first check). No Redis call. */
  get current (): Dataset | undefined { return this.#current }

  /**
   * Checks the marker in Redis (creating or replacing it when the data was lost) and returns the
   * current dataset; tells the listeners when it differs from the one observed before. One round
   * trip; rejects within the client's command timeout when Redis is unreachable.
   */
  async check (): Promise<Dataset> {
    const reply = await this.#redis.eval(CHECK, 1, hubKeys.dataset, newDatasetId()) as DatasetReply
    return this.observe(reply)
  }

  /** Records a `dataset()` reply from any script (append, reads); tells the listeners on a change. */
  observe (reply: DatasetReply): Dataset {
    const next: Dataset = { id: String(reply[0]), generation: Number(reply[1]) }
    const previous = this.#current
    const changed = Number(reply[2]) === 1 || (previous !== undefined && previous.id !== next.id)
    this.#current = next
    if (changed) for (const listener of [...this.#listeners]) listener(next, previous)
    return next
  }

  /**
   * Calls `listener` whenever the dataset changes (Redis lost or may have lost data): everything
   * keyed by the previous id is gone. Returns the function that removes the listener.
   */
  onChange (listener: (next: Dataset, previous: Dataset | undefined) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
}

/** The current dataset id of the data behind `redis` (checked, created or replaced as needed). */
export async function datasetId (redis: Redis): Promise<string> {
  return (await new RedisDataset(redis).check()).id
}
