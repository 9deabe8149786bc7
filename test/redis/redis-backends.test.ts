import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { type Redis } from 'ioredis'
import { RedisBus, RedisEventLog, RedisTargets, createRedis } from '../../src/hub/redis.js'
import { RedisSessionStore } from '../../src/mcp/sessions/redis.js'
import { missing, startRedis } from '../e2e/services.js'
import type { SessionRecord } from '../../src/mcp/sessions/store.js'

const skip = missing('redis-server')

async function client (t: TestContext, url: string): Promise<Redis> {
  const c = createRedis(url, () => {})
  t.after(() => { c.disconnect() })
  await c.ping()
  return c
}

test('RedisEventLog: seqs, bounded trimming, eviction, end, delete', { skip }, async (t) => {
  const redis = await startRedis(t)
  const log = new RedisEventLog(await client(t, redis.url), 3, 60_000)
  const epochs = new Set<string>()
  for (let i = 1; i <= 5; i++) {
    const r = await log.append('s:a:g', { event: i % 2 ? 'message' : undefined, data: `d${i}` })
    assert.equal(r.seq, i)
    epochs.add(r.epoch)
  }
  assert.equal(epochs.size, 1)
  const [epoch] = epochs
  assert.equal(await log.lastSeq('s:a:g'), 5)
  const recent = await log.readAfter('s:a:g', 3)
  assert.deepEqual(recent, { epoch, last: 5, events: [{ seq: 4, data: 'd4' }, { seq: 5, event: 'message', data: 'd5' }], evicted: false })
  const old = await log.readAfter('s:a:g', 0)
  assert.equal(old.evicted, true)
  assert.deepEqual(old.events.map((e) => e.seq), [3, 4, 5])
  assert.deepEqual(await log.readAfter('s:a:g', 5), { epoch, last: 5, events: [], evicted: false })
  assert.equal(await log.isEnded('s:a:g'), false)
  await log.end('s:a:g')
  assert.equal(await log.isEnded('s:a:g'), true)
  await log.delete('s:a:g')
  assert.deepEqual(await log.readAfter('s:a:g', 0), { epoch: undefined, last: 0, events: [], evicted: false })
  const again = await log.append('s:a:g', { data: 'new life' })
  assert.equal(again.seq, 1)
  assert.notEqual(again.epoch, epoch, 'a restarted sequence has a new epoch')
})

test('RedisEventLog: a stream is bounded by bytes as well as entries (counter kept in the Lua append)', { skip }, async (t) => {
  const redis = await startRedis(t)
  const c = await client(t, redis.url)
  const log = new RedisEventLog(c, 1000, 60_000, 60_000, 10_000)
  for (let i = 1; i <= 100; i++) await log.append('k', { data: 'x'.repeat(1000) })
  const kept = await log.readAfter('k', 0)
  assert.equal(kept.evicted, true)
  assert.ok(kept.events.length >= 8 && kept.events.length <= 10, `${kept.events.length} kept`)
  assert.equal(kept.events.at(-1)?.seq, 100)
  assert.ok(Number(await c.hget('mcp:seq:k', 'b')) <= 10_000)
  await log.append('k', { data: 'y'.repeat(50_000) })
  assert.deepEqual((await log.readAfter('k', 0)).events.map((e) => e.seq), [101])
})

test('RedisBus: a SUBSCRIBE that fails leaves no handler behind, and the next one works', { skip }, async (t) => {
  const redis = await startRedis(t)
  const pub = await client(t, redis.url)
  const sub = await client(t, redis.url)
  const bus = new RedisBus(pub, sub)
  await redis.stop()
  const got: string[] = []
  await assert.rejects(bus.subscribe('hub:y', (p) => got.push(`stale ${p}`)))
  await redis.start()
  const deadline = Date.now() + 10_000
  while ((pub.status !== 'ready' || sub.status !== 'ready') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  await bus.subscribe('hub:y', (p) => got.push(p))
  await bus.publish('hub:y', 'one')
  while (got.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(got, ['one'])
})

test('RedisBus: a message published by one replica reaches another; unsubscribe stops it', { skip }, async (t) => {
  const redis = await startRedis(t)
  const a = new RedisBus(await client(t, redis.url), await client(t, redis.url))
  const b = new RedisBus(await client(t, redis.url), await client(t, redis.url))
  const got: string[] = []
  const off = await b.subscribe('hub:x', (p) => got.push(p))
  await a.publish('hub:x', 'one')
  const deadline = Date.now() + 3000
  while (got.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(got, ['one'])
  await off()
  await a.publish('hub:x', 'two')
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(got, ['one'])
})

test('RedisSessionStore and RedisTargets are shared between replicas', { skip }, async (t) => {
  const redis = await startRedis(t)
  const one = new RedisSessionStore(await client(t, redis.url), 60_000)
  const two = new RedisSessionStore(await client(t, redis.url), 60_000)
  t.after(async () => { await one.close(); await two.close() })
  const now = Date.now()
  const record: SessionRecord = { id: 'sess-1', transport: 'streamable-http', protocolVersion: '2025-11-25', clientInfo: null, clientCapabilities: { sampling: {} }, logLevel: null, subscriptions: [], identity: null, initialized: false, createdAt: now, lastSeenAt: now }
  await one.create(record)
  await two.update('sess-1', { logLevel: 'debug', subscriptions: ['test://x'] })
  const seen = await one.get('sess-1')
  assert.equal(seen?.logLevel, 'debug')
  assert.deepEqual(await one.subscriptionsOf('sess-1'), ['test://x'])
  assert.deepEqual(await two.ids(), ['sess-1'])
  assert.equal(await two.delete('sess-1'), true)
  assert.equal(await one.get('sess-1'), undefined)

  // A record an older replica wrote (transport 'streamable' / 'legacy') reads with today's names.
  const c = await client(t, redis.url)
  for (const [old, now] of [['streamable', 'streamable-http'], ['legacy', 'http+sse']]) {
    await c.hset(`mcp:session:old-${old}`, 'r', JSON.stringify({ ...record, id: `old-${old}`, transport: old }), 'l', '', 'i', '1')
    assert.equal((await one.get(`old-${old}`))?.transport, now)
  }

  const ta = new RedisTargets(await client(t, redis.url))
  const tb = new RedisTargets(await client(t, redis.url))
  await ta.add('s:a:g')
  assert.deepEqual([...await tb.list()], ['s:a:g'])
})

test('with Redis down, calls fail with clear errors and recover when it returns', { skip }, async (t) => {
  const redis = await startRedis(t)
  const c = await client(t, redis.url)
  const log = new RedisEventLog(c, 10, 60_000)
  await log.append('k', { data: 'before' })
  await redis.stop()
  await assert.rejects(log.append('k', { data: 'during' }))
  await redis.start()
  const deadline = Date.now() + 10_000
  while (c.status !== 'ready' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(c.status, 'ready')
  assert.equal((await log.append('k2', { data: 'after' })).seq, 1)
})
