/**
 * Quotas: how much of one kind of thing each client (auth identity, else IP) may hold at once.
 * Framework-free; the plugins own one Quota per budget and release on every path. The release
 * function `acquire` returns is idempotent, so "release on close" and "release on error" may both
 * run without double-counting.
 */

/** Thrown (or mapped to 429 / a JSON-RPC error) when a client is over one of its budgets. */
export class BudgetExceededError extends Error {
  override name = 'BudgetExceededError'
  constructor (readonly budget: string, readonly limit: number, message?: string) {
    super(message ?? `Over the ${budget} budget (limit ${limit}); close some and retry`)
  }
}

export class Quota {
  readonly #used = new Map<string, number>()
  readonly name: string
  readonly limit: number
  /** Acquisitions refused because the client was at its limit (a metric). */
  refused = 0

  constructor (name: string, limit: number) {
    this.name = name
    this.limit = limit
  }

  /** Takes one unit for `client`; undefined when the client is at its limit. */
  tryAcquire (client: string): (() => void) | undefined {
    const used = this.#used.get(client) ?? 0
    if (used >= this.limit) {
      this.refused++
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

  /** Like tryAcquire, but throws BudgetExceededError at the limit. */
  acquire (client: string): () => void {
    const release = this.tryAcquire(client)
    if (release === undefined) throw new BudgetExceededError(this.name, this.limit)
    return release
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
