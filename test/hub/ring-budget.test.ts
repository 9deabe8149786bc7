import { test } from 'node:test'
import assert from 'node:assert/strict'
import v8 from 'node:v8'
import vm from 'node:vm'
import { build, testConfig } from '../helper.js'

// Issue 13, findings 3, 6 and 12: replay rings are bounded by bytes as well as events
// (REPLAY_BUFFER_BYTES per ring, REPLAY_TOTAL_BYTES per process), measured as heap after GC.

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
const MB = 1024 * 1024

function heapAfterGc (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** A distinct flat string of `n` bytes (not a slice or rope of a shared one). */
const blob = (n: number, i: number): string => Buffer.alloc(n, 97 + (i % 26)).toString('latin1')

test('a ring filled with 2,000 maximal events keeps about REPLAY_BUFFER_BYTES (default 1 MiB)', { timeout: 60_000 }, async (t) => {
  const app = await build(t)
  const before = heapAfterGc()
  for (let i = 0; i < 2000; i++) await app.hub.publish('s:big:g', { event: 'message', data: blob(100 * 1024, i) })
  const grown = heapAfterGc() - before
  t.diagnostic(`heap after GC grew by ${(grown / MB).toFixed(1)} MB for 2,000 × 100 KB (195 MB) published`)
  assert.ok(grown < 8 * MB, `${(grown / MB).toFixed(1)} MB kept`)
})

test('100 broadcasts of 1 MB do not stay in memory', { timeout: 60_000 }, async (t) => {
  const app = await build(t)
  // A few broadcast targets (HTTP+SSE / session streams) as well as the public ring.
  for (let i = 0; i < 5; i++) await app.hub.addBroadcastTarget(`s:t${i}:g`)
  const before = heapAfterGc()
  for (let i = 0; i < 100; i++) await app.hub.broadcast('big', { text: blob(MB, i) })
  const grown = heapAfterGc() - before
  t.diagnostic(`heap after GC grew by ${(grown / MB).toFixed(1)} MB for 100 × 1 MB broadcasts to 6 rings`)
  // At most one 1 MB event per ring is kept (an event larger than the ring is kept alone).
  assert.ok(grown < 6 * 1.1 * MB + 4 * MB, `${(grown / MB).toFixed(1)} MB kept`)
})

test('REPLAY_TOTAL_BYTES holds across many keys', { timeout: 60_000 }, async (t) => {
  const app = await build(t, { budgets: { ...testConfig().budgets, replayTotalBytes: 16 * MB } })
  const before = heapAfterGc()
  // 400 keys × 10 × 50 KB = 195 MB offered.
  for (let k = 0; k < 400; k++) {
    for (let i = 0; i < 10; i++) await app.hub.publish(`s:k${k}:g`, { data: blob(50 * 1024, k + i) })
  }
  const grown = heapAfterGc() - before
  t.diagnostic(`heap after GC grew by ${(grown / MB).toFixed(1)} MB with REPLAY_TOTAL_BYTES=16 MiB and 195 MB offered over 400 keys`)
  assert.ok(grown < 24 * MB, `${(grown / MB).toFixed(1)} MB kept`)
})
