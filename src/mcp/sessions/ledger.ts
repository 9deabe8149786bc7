import type { Quota } from '../../budget.js'

/** Request streams (`s:<id>:r…`) remembered per session for cleanup; past this the oldest is dropped at once. */
export const MAX_REQUEST_STREAMS_PER_SESSION = 256

/**
 * MAX_SESSIONS_PER_CLIENT counted where every replica sees it (src/mcp/sessions/redis.ts): a unit
 * is taken as a pending reservation, bound to the session id once initialize made it, and counts
 * until the session's record is gone (deleted or expired), whichever replica ends it.
 */
export interface SharedSessionUnits {
  /** A pending unit's handle, or undefined at the limit. Rejects when the store is unavailable. */
  take (client: string, limit: number): Promise<string | undefined>
  /** The pending unit now stands for session `id` (best effort: it lapses like a pending unit otherwise). */
  bind (client: string, pending: string, id: string): void
  /** No session was made: the pending unit goes back. */
  release (client: string, pending: string): void
}

interface Owned {
  client: string
  release: () => void
  /** Hub keys of the session's request streams, oldest first. */
  streams: Set<string>
}

/**
 * What each session on this process holds besides its record: a unit of its client's
 * MAX_SESSIONS_PER_CLIENT quota and the hub keys of its request streams. Framework-free; the MCP
 * plugin ends a session through `end(id)` on every path (DELETE, idle eviction, HTTP+SSE stream
 * close, shutdown) and drops the keys it returns. Without Redis counting is per process; with
 * Redis (SharedSessionUnits) the count is shared by every replica and a unit counts until its
 * session's record is gone, whichever replica ended it, so a count can never stay stuck.
 */
export class SessionLedger {
  readonly #owned = new Map<string, Owned>()
  readonly #exists: (id: string) => Promise<boolean>
  /** MAX_SESSIONS_PER_CLIENT. */
  readonly quota: Quota

  readonly #shared: SharedSessionUnits | undefined

  /** `shared`: with REDIS_URL, the client's session units live there (counted across replicas). */
  constructor (quota: Quota, exists: (id: string) => Promise<boolean>, shared?: SharedSessionUnits) {
    this.quota = quota
    this.#exists = exists
    this.#shared = shared
  }

  /**
   * Takes one session unit for `client`; undefined when the client is at its limit (after
   * forgetting sessions that no longer exist). Call `bind` with the new session's id, or the
   * returned release when no session was created.
   */
  async admit (client: string): Promise<{ bind: (id: string) => void, release: () => void } | undefined> {
    if (this.#shared !== undefined) return await this.#admitShared(client)
    if (this.quota.used(client) >= this.quota.limit) await this.#prune(client)
    const release = this.quota.tryAcquire(client)
    if (release === undefined) return undefined
    const unit = release
    return {
      bind: (id) => { this.#owned.set(id, { client, release: unit, streams: new Set() }) },
      release: unit
    }
  }

  /** With a shared store (Redis): the unit is counted there, across replicas (SharedSessionUnits). */
  async #admitShared (client: string): Promise<{ bind: (id: string) => void, release: () => void } | undefined> {
    const shared = this.#shared
    if (shared === undefined) return undefined
    const pending = await shared.take(client, this.quota.limit)
    if (pending === undefined) {
      this.quota.countRefusal()
      return undefined
    }
    return {
      bind: (id) => {
        this.#owned.set(id, { client, release: () => {}, streams: new Set() })
        shared.bind(client, pending, id)
      },
      release: () => { shared.release(client, pending) }
    }
  }

  /**
   * Remembers a request stream key of a session; returns a key to drop now when over the bound.
   * Sessions not admitted here are not tracked.
   */
  addStream (id: string, key: string): string | undefined {
    const owned = this.#owned.get(id)
    // A session made on another replica (Redis): its request streams are not tracked here; their
    // logs expire with the Redis TTL.
    if (owned === undefined) return undefined
    owned.streams.add(key)
    if (owned.streams.size <= MAX_REQUEST_STREAMS_PER_SESSION) return undefined
    const [oldest] = owned.streams
    if (oldest === undefined) return undefined
    owned.streams.delete(oldest)
    return oldest
  }

  /** Releases the session's quota unit and returns the request stream keys it held (empty when unknown). */
  end (id: string): string[] {
    const owned = this.#owned.get(id)
    if (owned === undefined) return []
    this.#owned.delete(id)
    owned.release()
    return [...owned.streams]
  }

  /** Sessions this process accounts for. */
  get size (): number { return this.#owned.size }

  /** Ends everything (shutdown). */
  clear (): void {
    for (const id of [...this.#owned.keys()]) this.end(id)
  }

  async #prune (client: string): Promise<void> {
    const mine = [...this.#owned].filter(([, o]) => o.client === client).map(([id]) => id)
    const alive = await Promise.all(mine.map(async (id) => await this.#exists(id).catch(() => true)))
    mine.forEach((id, i) => { if (!alive[i]) this.end(id) })
  }
}
