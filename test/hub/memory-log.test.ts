import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryEventLog } from '../../src/hub/memory.js'

test('the replay ring keeps the newest REPLAY_BUFFER_SIZE events and reports eviction', async (t) => {
  const log = new MemoryEventLog(3)
  t.after(() => log.close())
  const epoch = (await log.append('k', { data: '1' })).epoch
  for (let i = 2; i <= 5; i++) assert.deepEqual(await log.append('k', { data: String(i) }), { epoch, seq: i })
  assert.deepEqual(await log.readAfter('k', 2), { epoch, last: 5, events: [{ seq: 3, data: '3' }, { seq: 4, data: '4' }, { seq: 5, data: '5' }], evicted: false })
  const old = await log.readAfter('k', 0)
  assert.equal(old.evicted, true)
  assert.deepEqual(old.events.map((e) => e.seq), [3, 4, 5])
  assert.deepEqual(await log.readAfter('k', 5), { epoch, last: 5, events: [], evicted: false })
  assert.deepEqual(await log.readAfter('unknown', 0), { epoch: undefined, last: 0, events: [], evicted: false })
})

test('ended keys are dropped after their retention, so finished request streams do not pile up', async (t) => {
  let now = 0
  const log = new MemoryEventLog(10, 1000, () => now)
  t.after(() => log.close())
  await log.append('r1', { data: 'x' })
  await log.end('r1')
  assert.equal(log.size, 1)
  now = 500
  await log.append('r2', { data: 'y' })
  await log.end('r2')
  assert.equal(log.size, 2, 'r1 is still inside its retention')
  now = 1200
  await log.append('r3', { data: 'z' })
  await log.end('r3')
  assert.equal(log.size, 2, 'r1 dropped, r2 and r3 kept')
  assert.equal(await log.isEnded('r1'), false)
  assert.equal(await log.isEnded('r2'), true)
})

test('a ring keeps at most REPLAY_BUFFER_BYTES; one larger event is kept alone', async (t) => {
  const log = new MemoryEventLog({ capacity: 1000, ringBytes: 10_000 })
  t.after(() => log.close())
  for (let i = 1; i <= 100; i++) await log.append('k', { data: 'x'.repeat(1000) })
  const kept = await log.readAfter('k', 0)
  assert.equal(kept.evicted, true)
  assert.ok(kept.events.length <= 10 && kept.events.length >= 8, `${kept.events.length} kept`)
  assert.equal(kept.events.at(-1)?.seq, 100)
  assert.ok(log.bytes <= 10_000)
  await log.append('k', { data: 'y'.repeat(50_000) })
  const big = await log.readAfter('k', 0)
  assert.deepEqual(big.events.map((e) => e.seq), [101])
  assert.equal(big.evicted, true)
})

test('REPLAY_TOTAL_BYTES holds across many keys: ended rings go first, then the largest rings give back', async (t) => {
  const log = new MemoryEventLog({ capacity: 1000, ringBytes: 100_000, totalBytes: 1_000_000 })
  t.after(() => log.close())
  await log.append('ended', { data: 'e'.repeat(50_000) })
  await log.end('ended')
  for (let k = 0; k < 200; k++) {
    for (let i = 0; i < 20; i++) await log.append(`k${k}`, { data: 'x'.repeat(5000) })
    assert.ok(log.bytes <= 1_000_000, `${log.bytes} bytes after key ${k}`)
  }
  assert.equal(log.size, 200, 'the ended ring went first')
  // Each key keeps at least its newest events or is emptied, but the total holds.
  const last = await log.readAfter('k199', 0)
  assert.equal(last.events.at(-1)?.seq, 20)
})

test('ended rings are swept by a timer, not only when another stream ends', async (t) => {
  const log = new MemoryEventLog({ capacity: 10, endedRetentionMs: 1 })
  t.after(() => log.close())
  await log.append('r', { data: 'x' })
  await log.end('r')
  const deadline = Date.now() + 5000
  while (log.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(log.size, 0)
  assert.equal(log.bytes, 0)
})
