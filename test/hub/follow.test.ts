import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHub, type HubImpl } from '../../src/hub/hub.js'
import { MemoryEventLog } from '../../src/hub/memory.js'
import type { Bus, KeyRead, StoredEvent } from '../../src/hub/types.js'

// Hub.follow: an in-process consumer of a key, fed like a stream. Two hubs ("replicas") share a log
// that the catch-up can read (readMany) and that can report a store reset; their bus delivers
// nothing (every wake-up lost), so whatever B's follower gets came from the log.

class SharedLog extends MemoryEventLog {
  readonly #reset = new Set<() => void>()
  async readMany (reads: ReadonlyArray<{ key: string, afterSeq: number }>): Promise<KeyRead[]> {
    return await Promise.all(reads.map(async ({ key, afterSeq }) => {
      const read = await this.readAfter(key, afterSeq)
      return { key, ...read, ended: await this.isEnded(key) }
    }))
  }

  onReset (listener: () => void): () => void {
    this.#reset.add(listener)
    return () => { this.#reset.delete(listener) }
  }

  reset (): void { for (const l of this.#reset) l() }
}

class DeafBus implements Bus {
  async publish (): Promise<void> {}
  async subscribe (): Promise<() => Promise<void>> { return async () => {} }
  async close (): Promise<void> {}
}

async function replicas (t: TestContext): Promise<{ a: HubImpl, b: HubImpl, log: SharedLog }> {
  const log = new SharedLog(100)
  const bus = new DeafBus()
  const a = createHub({ log, bus, replicaId: 'A', maxConnections: 10, heartbeatIntervalMs: 50 })
  const b = createHub({ log, bus, replicaId: 'B', maxConnections: 10, heartbeatIntervalMs: 50 })
  t.after(async () => { await b.close(); await a.close() })
  return { a, b, log }
}

/** A follower starts at the head it reads: in memory that takes a few microtasks (20 ms is plenty). */
async function started (): Promise<void> { await new Promise((resolve) => setTimeout(resolve, 20)) }

async function until (what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('a follower gets every event of its key from its start on, once and in order, within a heartbeat whatever the bus did', async (t) => {
  const { a, b } = await replicas(t)
  await a.publish('changes', { data: 'before' })
  const got: StoredEvent[] = []
  let lost = 0
  const stop = b.follow('changes', { event: (ev) => got.push(ev), lost: () => { lost++ } })
  t.after(stop)
  await started()
  // It starts at the head it read (seq 1): 'before' is not its business.
  for (let i = 0; i < 5; i++) await a.publish('changes', { data: `c${i}` })
  await until('five events on B', () => got.length >= 5)
  await new Promise((resolve) => setTimeout(resolve, 150))
  assert.deepEqual(got.map((e) => e.data), ['c0', 'c1', 'c2', 'c3', 'c4'])
  assert.deepEqual(got.map((e) => e.seq), [2, 3, 4, 5, 6])
  assert.equal(lost, 0)
  assert.equal(b.stats().streams, 0, 'a follower is not a stream')
})

test('a store reset tells the follower (lost), which then goes on with the log', async (t) => {
  const { a, b, log } = await replicas(t)
  const got: string[] = []
  let lost = 0
  const stop = b.follow('changes', { event: (ev) => got.push(ev.data), lost: () => { lost++ } })
  t.after(stop)
  await started()
  await a.publish('changes', { data: 'x' })
  await until('x on B', () => got.includes('x'))
  log.reset()
  assert.equal(lost, 1)
  await a.publish('changes', { data: 'y' })
  await until('y on B', () => got.includes('y'))
  assert.deepEqual(got, ['x', 'y'])
})

test('a stopped follower gets nothing more', async (t) => {
  const { a, b } = await replicas(t)
  const got: string[] = []
  const stop = b.follow('changes', { event: (ev) => got.push(ev.data), lost: () => {} })
  await started()
  await a.publish('changes', { data: 'x' })
  await until('x on B', () => got.includes('x'))
  stop()
  await a.publish('changes', { data: 'y' })
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(got, ['x'])
})
