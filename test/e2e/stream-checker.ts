/**
 * One checker per SSE stream (a logical stream: its reconnections with Last-Event-ID included).
 * Feed it what the client received, in arrival order, and what the server accepted; it reports
 * every way the "exactly once, in order, or `evicted`" guarantee can be broken:
 *
 * - a silent gap: within one epoch the next id is not seq + 1, with no `evicted` since the last id;
 * - a new epoch with no `evicted` before it, or a return to an epoch the stream had left;
 * - a reused id: an id delivered twice (a duplicate), or, after a rewind of the log, an id of the
 *   current epoch at or below one already delivered (the server handed the same id out again);
 * - out of order: a payload of one source older than one already delivered from that source;
 * - a duplicate payload (the same payload under two ids);
 * - a silent loss: a payload the server accepted that never arrived, with no `evicted` (and no
 *   announced end of the stream) received after it was sent. `checkpoint()` turns what is still
 *   missing at that moment into problems, so a later reset cannot excuse an earlier loss.
 */

export interface Received {
  /** The SSE id (`<part>-<epoch>-<seq>`), if the event had one. */
  id?: string
  /** The SSE event type (`message` by default). */
  event: string
  /** What identifies the content (e.g. a broadcast tag); undefined for events not tracked. */
  payload?: string
  /** Per-source order: payloads of one source must arrive with increasing `n`. */
  source?: string
  n?: number
}

interface Entry extends Received { at: number }

/** `<part>-<epoch>-<seq>` → its parts; undefined when malformed. */
export function splitId (id: string): { part: string, epoch: string, seq: number } | undefined {
  const m = /^([A-Za-z0-9_.]+)-([a-z0-9]+)-(\d+)$/.exec(id)
  if (m === null) return undefined
  return { part: m[1] ?? '', epoch: m[2] ?? '', seq: Number(m[3]) }
}

export class StreamChecker {
  readonly name: string
  readonly entries: Entry[] = []
  readonly #expected = new Map<string, number>()
  readonly #lost: string[] = []
  readonly #reported = new Set<string>()
  #ended: { at: number, why: string } | undefined

  constructor (name: string) { this.name = name }

  /** Records one received event (`at`: when, on the test's clock). */
  record (ev: Received, at = performance.now()): void {
    this.entries.push({ ...ev, at })
  }

  /** The server accepted `payload` at `sentAt` (when the request was sent): it must arrive, or be announced lost. */
  expect (payload: string, sentAt: number): void {
    if (!this.#expected.has(payload)) this.#expected.set(payload, sentAt)
  }

  /** The stream ended in a way the client is told of (e.g. its session is gone: 404 on resume). */
  end (why: string, at = performance.now()): void {
    this.#ended ??= { at, why }
  }

  get ended (): boolean { return this.#ended !== undefined }

  /** Payloads delivered so far. */
  delivered (): Set<string> {
    return new Set(this.entries.flatMap((e) => e.payload === undefined ? [] : [e.payload]))
  }

  /** Expected payloads neither delivered nor announced lost (by an `evicted` or an announced end after they were sent). */
  missing (): string[] {
    const delivered = this.delivered()
    const evictedAt = this.entries.filter((e) => e.event === 'evicted').map((e) => e.at)
    const out: string[] = []
    for (const [payload, sentAt] of this.#expected) {
      if (delivered.has(payload)) continue
      if (evictedAt.some((at) => at >= sentAt)) continue
      if (this.#ended !== undefined && this.#ended.at >= sentAt) continue
      out.push(payload)
    }
    return out
  }

  /** What is missing and not yet reported at a checkpoint (what a wait for the stream to catch up waits for). */
  pending (): string[] {
    return this.missing().filter((p) => !this.#reported.has(p))
  }

  /** Whatever is still missing now is a silent loss (reported once, under `label`). */
  checkpoint (label: string): string[] {
    const now = this.pending()
    for (const p of now) this.#reported.add(p)
    if (now.length > 0) this.#lost.push(`${this.name}: ${now.length} lost silently by ${label} (e.g. ${now.slice(0, 3).join(', ')})`)
    return now
  }

  /** Everything the checker knows, for a dump when a test fails. */
  dump (): { name: string, ended: { at: number, why: string } | undefined, expected: Array<[string, number]>, entries: Entry[] } {
    return { name: this.name, ended: this.#ended, expected: [...this.#expected], entries: this.entries }
  }

  /** Counts for the diagnostics. */
  summary (): { events: number, delivered: number, evicted: number, missing: number } {
    return {
      events: this.entries.length,
      delivered: this.delivered().size,
      evicted: this.entries.filter((e) => e.event === 'evicted').length,
      missing: this.missing().length
    }
  }

  /** Every problem found; empty when the stream kept the guarantee. */
  problems (): string[] {
    const problems: string[] = []
    const say = (at: number, what: string): void => { problems.push(`${this.name} #${at}: ${what}`) }
    const seenIds = new Map<string, string | undefined>()
    const maxSeq = new Map<string, number>()
    const leftEpochs = new Set<string>()
    const payloads = new Set<string>()
    const lastN = new Map<string, number>()
    let epoch: string | undefined
    let seq = 0
    let evictedSince = false
    this.entries.forEach((ev, i) => {
      if (ev.event === 'evicted') { evictedSince = true; return }
      if (ev.id !== undefined) {
        const id = splitId(ev.id)
        if (id === undefined) {
          say(i, `malformed id ${ev.id}`)
        } else {
          const key = `${id.epoch}-${id.seq}`
          if (seenIds.has(key)) {
            say(i, seenIds.get(key) === ev.payload ? `id ${ev.id} delivered twice` : `id ${ev.id} reused for another event`)
          } else if (epoch === undefined || id.epoch === epoch) {
            const max = maxSeq.get(id.epoch) ?? 0
            if (epoch !== undefined && id.seq <= seq) say(i, evictedSince ? `id ${ev.id} reused after a rewind (seq ${max} already delivered)` : `out of order: seq ${seq} then ${id.seq}`)
            else if (epoch !== undefined && id.seq !== seq + 1 && !evictedSince) say(i, `silent gap: seq ${seq} then ${id.seq}`)
          } else if (leftEpochs.has(id.epoch)) {
            say(i, `back to epoch ${id.epoch}, which the stream had left`)
          } else if (!evictedSince) {
            say(i, `new epoch ${epoch} → ${id.epoch} (seq ${seq} → ${id.seq}) without evicted`)
          }
          if (epoch !== undefined && id.epoch !== epoch) leftEpochs.add(epoch)
          seenIds.set(key, ev.payload)
          maxSeq.set(id.epoch, Math.max(maxSeq.get(id.epoch) ?? 0, id.seq))
          epoch = id.epoch
          seq = id.seq
          evictedSince = false
        }
      }
      if (ev.payload !== undefined) {
        if (payloads.has(ev.payload)) say(i, `${ev.payload} delivered twice`)
        payloads.add(ev.payload)
      }
      if (ev.source !== undefined && ev.n !== undefined) {
        const last = lastN.get(ev.source)
        if (last !== undefined && ev.n < last) say(i, `out of order: ${ev.source} ${last} then ${ev.n}`)
        lastN.set(ev.source, Math.max(last ?? ev.n, ev.n))
      }
    })
    return [...problems, ...this.#lost]
  }
}
