import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import { RedisBus, RedisEventLog, createRedis } from '../../src/hub/redis.js'
import { RedisDataset, datasetId } from '../../src/hub/dataset.js'
import { createHub } from '../../src/hub/hub.js'
import { parseEventId, type Hub } from '../../src/hub/types.js'
import { missing, startRedis, type RedisServer } from '../e2e/services.js'
import { until } from '../e2e/sdk.js'
import { openSse } from '../sse-client.js'
import { listen } from '../helper.js'

// Issue 19, finding 2: Redis that comes back with older data (restored from dump.rdb, a failover to
// a lagging replica, FLUSHALL) must never make the server hand out an event id twice.

const skip = missing('redis-server')

async function snapshotRedis (t: TestContext): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-rdb-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return await startRedis(t, { dir })
}

function client (t: TestContext, url: string): Redis {
  const c = createRedis(url, () => {})
  t.after(() => { c.disconnect() })
  return c
}

/** Kills Redis (no save on exit) and starts it again from its last SAVE. */
async function restoreSnapshot (redis: RedisServer, clients: Redis[]): Promise<void> {
  await redis.stop()
  await redis.start()
  await until(() => clients.every((c) => c.status === 'ready'), 15_000, 'clients to reconnect')
}

/** Retries while the client reconnects (a command may fail once during it). */
async function settle<T> (fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try { return await fn() } catch (err) { if (i > 50) throw err }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Serves the hub's public stream (resumable by Last-Event-ID) on a loopback port; closed with the test. */
async function servePublic (t: TestContext, hub: Hub): Promise<string> {
  const server = createServer((req, res) => {
    const last = parseEventId(req.headers['last-event-id'] as string | undefined)
    hub.attach(res, { key: 'public', kind: 'public', streamPart: 'p', afterSeq: last?.seq, afterEpoch: last?.epoch }).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    await hub.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const addr = server.address()
  return `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}/`
}

test('the dataset id stays while the data does, and changes on FLUSHALL and on a restart from a snapshot', { skip, timeout: 60_000 }, async (t) => {
  const redis = await snapshotRedis(t)
  const c = client(t, redis.url)
  const dataset = new RedisDataset(c)
  const changes: string[] = []
  dataset.onChange((next) => changes.push(next.id))
  const first = await dataset.check()
  assert.match(first.id, /^[0-9a-f]{16}$/)
  assert.equal((await dataset.check()).id, first.id)
  assert.equal(await datasetId(c), first.id, 'another process sees the same id')
  assert.deepEqual(changes, [first.id], 'creating the marker is a change')

  await c.flushall()
  const flushed = await dataset.check()
  assert.notEqual(flushed.id, first.id)

  await c.save()
  await restoreSnapshot(redis, [c])
  const restored = await settle(async () => await dataset.check())
  assert.notEqual(restored.id, flushed.id, 'the snapshot names the old id, but another Redis process wrote it')
  assert.equal((await dataset.check()).id, restored.id)
  assert.deepEqual(changes, [first.id, flushed.id, restored.id])
})

test('RedisEventLog: Redis restored from an older snapshot: the key restarts under a new epoch, no seq reused, the old history is gone', { skip, timeout: 60_000 }, async (t) => {
  const redis = await snapshotRedis(t)
  const c = client(t, redis.url)
  const log = new RedisEventLog(c, 100, 60_000)
  const handed = new Set<string>()
  const add = async (data: string): Promise<void> => {
    const { epoch, seq } = await settle(async () => await log.append('public', { data }))
    const id = `${epoch}-${seq}`
    assert.ok(!handed.has(id), `id ${id} handed out twice`)
    handed.add(id)
  }
  for (let i = 0; i < 5; i++) await add(`#${i}`)
  await c.save()
  for (let i = 5; i < 10; i++) await add(`#${i}`)
  const before = await log.head('public')
  assert.equal(before.last, 10)
  await restoreSnapshot(redis, [c])
  const afterRestore = await settle(async () => await log.readAfter('public', 7))
  assert.equal(afterRestore.epoch, undefined, 'the log of a lost dataset is no log')
  for (let i = 10; i < 15; i++) await add(`#${i}`)
  const now = await log.readAfter('public', 0)
  assert.notEqual(now.epoch, before.epoch)
  assert.deepEqual(now.events.map((e) => e.data), ['#10', '#11', '#12', '#13', '#14'])
})

test('hub on Redis restored from an older snapshot: open streams get evicted and no id twice; a resume past the snapshot gets evicted, then the new events', { skip, timeout: 60_000 }, async (t) => {
  const redis = await snapshotRedis(t)
  const c = client(t, redis.url)
  const sub = client(t, redis.url)
  const admin = client(t, redis.url)
  const log = new RedisEventLog(c, 100, 60_000)
  const hub = createHub({ log, bus: new RedisBus(c, sub), maxConnections: 10, heartbeatIntervalMs: 60_000 })
  const url = await servePublic(t, hub)
  const live = await openSse(url)
  t.after(() => live.close())
  await live.nextComment()

  const received: Array<{ id: string, event: string, data: string }> = []
  const readUntil = async (n: number): Promise<void> => {
    while (received.filter((e) => e.event === 'message').length < n) {
      const ev = await live.next(10_000)
      if (ev === undefined) throw new Error('stream ended')
      received.push({ id: ev.id ?? '', event: ev.event ?? 'message', data: ev.data })
    }
  }
  for (let i = 0; i < 5; i++) await hub.publish('public', { data: `#${i}` })
  await admin.save()
  for (let i = 5; i < 10; i++) await hub.publish('public', { data: `#${i}` })
  await readUntil(10)
  const id7 = received.find((e) => e.data === '#7')?.id ?? ''

  await restoreSnapshot(redis, [c, sub, admin])
  for (let i = 10; i < 15; i++) await settle(async () => await hub.publish('public', { data: `#${i}` }))
  await readUntil(15)

  const messages = received.filter((e) => e.event === 'message')
  assert.deepEqual(messages.map((e) => e.data), Array.from({ length: 15 }, (_, i) => `#${i}`), 'every event, in order')
  assert.equal(new Set(messages.map((e) => e.id)).size, 15, `no id twice: ${messages.map((e) => e.id).join(' ')}`)
  const evictedAt = received.findIndex((e) => e.event === 'evicted')
  assert.ok(evictedAt > received.findIndex((e) => e.data === '#9') && evictedAt < received.findIndex((e) => e.data === '#10'), `evicted announces the new epoch: ${JSON.stringify(received)}`)
  assert.equal(received.filter((e) => e.event === 'evicted').length, 1, 'once')

  // A client that had #7 (lost with the snapshot) resumes: evicted, then what the log has now.
  const resumed = await openSse(url, { headers: { 'last-event-id': id7 } })
  t.after(() => resumed.close())
  const first = await resumed.next(10_000)
  assert.equal(first?.event, 'evicted')
  const next: string[] = []
  for (let i = 0; i < 5; i++) next.push((await resumed.next(10_000))?.data ?? '')
  assert.deepEqual(next, ['#10', '#11', '#12', '#13', '#14'])
})

test('two replicas, Redis restored from an older snapshot between broadcasts: every stream gets all 15, ids never reused, the reset announced; a resume from #7 gets evicted then #10…', { skip, timeout: 90_000 }, async (t) => {
  const redis = await snapshotRedis(t)
  const config = { redisUrl: redis.url, rateLimitMax: 0, heartbeatIntervalMs: 500 }
  const a = await listen(t, config)
  const b = await listen(t, config)
  const streams = await Promise.all([openSse(`${a.url}/mcp`), openSse(`${b.url}/mcp`), openSse(`${b.url}/mcp`)])
  t.after(async () => { for (const s of streams) await s.close() })
  const seen = streams.map(() => [] as Array<{ id: string, event: string, data: string }>)
  const pumps = streams.map(async (s, i) => {
    for (;;) {
      const ev = await s.next(60_000).catch(() => undefined)
      if (ev === undefined) return
      seen[i]?.push({ id: ev.id ?? '', event: ev.event ?? 'message', data: ev.data })
    }
  })
  t.after(async () => { await Promise.allSettled(pumps) })
  const ticks = (i: number): Array<{ id: string, data: string }> => (seen[i] ?? []).filter((e) => e.event === 'tick')
  const broadcast = async (n: number): Promise<void> => {
    for (let i = 0; ; i++) {
      const res = await fetch(`${n % 2 ? b.url : a.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'tick', data: n }) })
      await res.arrayBuffer()
      if (res.status === 202) return
      if (i > 50) throw new Error(`broadcast #${n}: ${res.status}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const admin = client(t, redis.url)
  for (let n = 0; n < 5; n++) await broadcast(n)
  await admin.save()
  for (let n = 5; n < 10; n++) await broadcast(n)
  await until(() => streams.every((_, i) => ticks(i).length === 10), 10_000, 'the first 10 on every stream')
  const id7 = ticks(1).find((e) => e.data === '7')?.id ?? ''
  await restoreSnapshot(redis, [admin, ...[a, b].flatMap(({ app }) => app.redis === null ? [] : [app.redis.client])])
  for (let n = 10; n < 15; n++) await broadcast(n)
  await until(() => streams.every((_, i) => ticks(i).length >= 15), 10_000, 'all 15 on every stream')

  streams.forEach((_, i) => {
    const got = ticks(i)
    assert.deepEqual(got.map((e) => e.data), Array.from({ length: 15 }, (_, n) => String(n)), `stream ${i}: every broadcast once, in order`)
    assert.equal(new Set(got.map((e) => e.id)).size, 15, `stream ${i}: no id twice (${got.map((e) => e.id).join(' ')})`)
    const all = seen[i] ?? []
    const at9 = all.findIndex((e) => e.data === '9')
    const at10 = all.findIndex((e) => e.data === '10')
    assert.ok(all.slice(at9, at10).some((e) => e.event === 'evicted'), `stream ${i}: the reset is announced`)
  })
  const resumed = await openSse(`${a.url}/mcp`, { headers: { 'last-event-id': id7 } })
  t.after(() => resumed.close())
  const events: string[] = []
  while (events.filter((e) => e.startsWith('tick')).length < 5) {
    const ev = await resumed.next(10_000)
    if (ev === undefined) break
    if (ev.event !== 'welcome') events.push(`${ev.event ?? 'message'}:${ev.data.slice(0, 20)}`)
  }
  assert.match(events[0] ?? '', /^evicted/)
  assert.deepEqual(events.slice(1), ['tick:10', 'tick:11', 'tick:12', 'tick:13', 'tick:14'])
})

test('a key\'s log restored to an older copy in the same Redis process (head behind what was delivered): the epoch is retired, streams get evicted, no id twice', { skip, timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const c = client(t, redis.url)
  const sub = client(t, redis.url)
  const admin = client(t, redis.url)
  const hub = createHub({ log: new RedisEventLog(c, 100, 60_000), bus: new RedisBus(c, sub), maxConnections: 10, heartbeatIntervalMs: 300 })
  const url = await servePublic(t, hub)
  const live = await openSse(url)
  t.after(() => live.close())
  await live.nextComment()
  const ids: string[] = []
  for (let i = 0; i < 10; i++) ids.push(await hub.publish('public', { data: `#${i}` }))
  for (let i = 0; i < 10; i++) assert.equal((await live.next(5000))?.data, `#${i}`)
  // The key as an older copy had it: head 5, entries 6–10 gone.
  await admin.hset('mcp:seq:public', 's', 5)
  await admin.xtrim('mcp:log:public', 'MAXLEN', 5)
  await admin.xdel('mcp:log:public', '6-0', '7-0', '8-0', '9-0', '10-0')
  // The live stream finds out at its next catch-up, a resume from #7 at once.
  assert.equal((await live.next(5000))?.event, 'evicted')
  const resumed = await openSse(url, { headers: { 'last-event-id': ids[7] ?? '' } })
  t.after(() => resumed.close())
  assert.equal((await resumed.next(5000))?.event, 'evicted')
  const next = await hub.publish('public', { data: '#10' })
  assert.ok(!ids.includes(next), `${next} was handed out before`)
  assert.equal((await live.next(5000))?.id, next)
  assert.equal((await resumed.next(5000))?.id, next)
})
