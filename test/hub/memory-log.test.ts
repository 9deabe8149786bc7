import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryEventLog } from '../../src/hub/memory.js'

test('the replay ring keeps the newest REPLAY_BUFFER_SIZE events and reports eviction', async () => {
  const log = new MemoryEventLog(3)
  for (let i = 1; i <= 5; i++) assert.equal(await log.append('k', { data: String(i) }), i)
  assert.deepEqual(await log.readAfter('k', 2), { events: [{ seq: 3, data: '3' }, { seq: 4, data: '4' }, { seq: 5, data: '5' }], evicted: false })
  const old = await log.readAfter('k', 0)
  assert.equal(old.evicted, true)
  assert.deepEqual(old.events.map((e) => e.seq), [3, 4, 5])
  assert.deepEqual(await log.readAfter('k', 5), { events: [], evicted: false })
  assert.deepEqual(await log.readAfter('unknown', 0), { events: [], evicted: false })
})

test('ended keys are dropped after their retention, so finished request streams do not pile up', async () => {
  let now = 0
  const log = new MemoryEventLog(10, 1000, () => now)
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
