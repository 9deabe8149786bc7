import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import { createHub, type HubImpl } from '../../src/hub/hub.js'
import { streamPartOf } from '../../src/mcp/keys.js'
import { MemoryBus, MemoryEventLog } from '../../src/hub/memory.js'
import type { Bus } from '../../src/hub/types.js'
import { openSse } from '../sse-client.js'
import { listen } from '../helper.js'
import { addTestStreamRoute } from './stream-route.js'
import { twoReplicas } from './replicas.js'
import { until } from '../e2e/sdk.js'

// Delivery per stream is exactly once and in order by construction: only consecutive seqs are
// written, an event past a gap waits, the log is re-read when the gap stays open, and a restarted
// log (another epoch) is announced with `evicted`.

/** A bus the test drives: messages are held until released, in any order; SUBSCRIBE can fail. */
class ManualBus implements Bus {
  readonly #inner = new MemoryBus()
  held: Array<{ channel: string, payload: string }> = []
  hold = false
  failSubscribes = 0
  async publish (channel: string, payload: string): Promise<void> {
    if (this.hold) this.held.push({ channel, payload })
    else await this.#inner.publish(channel, payload)
  }

  async release (order: number[]): Promise<void> {
    const held = this.held
    this.held = []
    for (const h of order.map((i) => held[i])) if (h !== undefined) await this.#inner.publish(h.channel, h.payload)
  }

  async subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    if (this.failSubscribes > 0) {
      this.failSubscribes--
      throw new Error('SUBSCRIBE failed (Redis down)')
    }
    return await this.#inner.subscribe(channel, handler)
  }

  async close (): Promise<void> { await this.#inner.close() }
}

async function replicas (t: TestContext, gapTimeoutMs = 60_000): Promise<{
  a: HubImpl,
  b: HubImpl,
  bus: ManualBus,
  url: string,
  log: MemoryEventLog
}> {
  const bus = new ManualBus()
  return { ...await twoReplicas(t, bus, gapTimeoutMs), bus }
}

test('events from another replica that arrive out of order are written in order, each once', async (t) => {
  const { a, bus, url } = await replicas(t)
  const s = await openSse(url)
  t.after(() => s.close())
  assert.equal((await s.next())?.event, 'welcome')
  bus.hold = true
  for (const n of ['1', '2', '3', '4']) await a.publish('public', { data: n })
  // 3 and 4 first: they wait (the gap timer is long here); then 1 and 2 arrive late.
  await bus.release([2, 3, 0, 1])
  const got = [(await s.next(2000))?.data, (await s.next(2000))?.data, (await s.next(2000))?.data, (await s.next(2000))?.data]
  assert.deepEqual(got, ['1', '2', '3', '4'])
  bus.hold = false
  await a.publish('public', { data: '5' })
  assert.equal((await s.next(2000))?.data, '5', 'nothing was dropped as a duplicate and nothing repeats')
})

test('a gap that stays open is filled from the log, then the late copies are not written twice', async (t) => {
  const { a, b, bus, url } = await replicas(t, 50)
  const s = await openSse(url)
  t.after(() => s.close())
  assert.equal((await s.next())?.event, 'welcome')
  bus.hold = true
  for (const n of ['1', '2', '3']) await a.publish('public', { data: n })
  await bus.release([2]) // only 3 arrives; 1 and 2 are in the log
  assert.deepEqual([(await s.next(2000))?.data, (await s.next(2000))?.data, (await s.next(2000))?.data], ['1', '2', '3'])
  assert.ok(b.stats().gapReads >= 1)
  bus.held = [] // 1 and 2 never arrive live: nothing more is written for them
  bus.hold = false
  await a.publish('public', { data: '4' })
  assert.equal((await s.next(2000))?.data, '4')
})

test('a failed subscription is not kept: that stream is refused and released, the next one works', async (t) => {
  const { a, b, bus, url } = await replicas(t)
  bus.failSubscribes = 1
  const refused = await fetch(url, { headers: { accept: 'text/event-stream' } })
  assert.equal(refused.status, 503)
  await refused.arrayBuffer()
  await until(() => b.stats().streams === 0, 2000, 'the refused stream to be released')
  const s = await openSse(url)
  t.after(() => s.close())
  assert.equal(s.res.status, 200)
  assert.equal((await s.next(2000))?.event, 'welcome')
  await a.publish('public', { data: 'live' })
  assert.equal((await s.next(2000))?.data, 'live')
})

test('a Last-Event-ID from a log that was forgotten and started again gets evicted, then the new events', async (t) => {
  const { app, url } = await listen(t, {}, addTestStreamRoute)
  const key = 's:reset:g'
  const old: string[] = []
  for (let i = 1; i <= 3; i++) old.push(await app.hub.publish(key, { data: `old ${i}` }))
  await app.hub.forget(key)
  const fresh = await app.hub.publish(key, { data: 'new 1' })
  assert.notEqual(fresh.split('-')[1], old[2]?.split('-')[1], 'a new epoch')
  const s = await openSse(`${url}/test-stream?key=${encodeURIComponent(key)}`, { headers: { 'last-event-id': old[2] ?? '' } })
  t.after(() => s.close())
  const first = await s.next(2000)
  assert.equal(first?.event, 'evicted')
  assert.equal(JSON.parse(first?.data ?? '{}').lastEventId, old[2])
  const next = await s.next(2000)
  assert.deepEqual([next?.id, next?.data], [fresh, 'new 1'])
  // An id in the epoch-less format of older servers is answered the same way.
  const epochlessId = await openSse(`${url}/test-stream?key=${encodeURIComponent(key)}`, { headers: { 'last-event-id': 'g-3' } })
  t.after(() => epochlessId.close())
  assert.equal((await epochlessId.next(2000))?.event, 'evicted')
  assert.equal((await epochlessId.next(2000))?.data, 'new 1')
})

test('a live stream that sees the log restart gets evicted, follows the new epoch, and ignores late events of the old one', async (t) => {
  const { a, bus, log, url } = await replicas(t, 50)
  const s = await openSse(url)
  t.after(() => s.close())
  assert.equal((await s.next())?.event, 'welcome')
  await a.publish('public', { data: 'old 1' })
  assert.equal((await s.next(2000))?.data, 'old 1')
  bus.hold = true
  await a.publish('public', { data: 'old 2' }) // in flight when the log is lost
  await log.delete('public') // the key expired / Redis restarted without persistence
  await a.publish('public', { data: 'new 1' })
  await bus.release([1, 0]) // the new epoch's first event, then the stale one
  const notice = await s.next(2000)
  assert.equal(notice?.event, 'evicted')
  assert.equal((await s.next(2000))?.data, 'new 1')
  bus.hold = false
  await a.publish('public', { data: 'new 2' })
  assert.equal((await s.next(2000))?.data, 'new 2')
})

test('a write that stalls (no drain within the stall timeout) ends the stream and releases it', { timeout: 30_000 }, async (t) => {
  const log = new MemoryEventLog(10)
  const closed: string[] = []
  const hub = createHub({
    partOf: streamPartOf, log, maxConnections: 10, heartbeatIntervalMs: 100, stallTimeoutMs: 300, maxQueueBytes: 64 * 1024 * 1024
  })
  const server = createServer((_req, res) => {
    hub.attach(res, { key: 'k', kind: 'session', streamPart: 'g', onClose: (reason) => closed.push(reason) }).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    await hub.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const addr = server.address()
  const stuck = connect(typeof addr === 'object' && addr !== null ? addr.port : 0, '127.0.0.1')
  t.after(() => stuck.destroy())
  stuck.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  stuck.pause() // never reads: the socket buffers fill and 'drain' never comes
  await until(() => hub.stats().streams === 1, 5000, 'the stream to open')
  const chunk = 'x'.repeat(64 * 1024)
  for (let i = 0; i < 256 && hub.stats().streams === 1; i++) {
    await hub.publish('k', { data: chunk + String(i) })
    if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await until(() => hub.stats().streams === 0, 5000, 'the stalled stream to be dropped')
  assert.equal(hub.stats().droppedDeadSockets, 1)
  assert.deepEqual(closed, ['slow-consumer'])
})
