import { test } from 'node:test'
import assert from 'node:assert/strict'
import { listen } from '../helper.js'
import { openSse } from '../sse-client.js'
import { addTestStreamRoute } from './stream-route.js'

test('a stream gets SSE headers, CORS headers, events with ids and heartbeat comments', async (t) => {
  const { app, url } = await listen(t, { heartbeatIntervalMs: 100 }, addTestStreamRoute)
  const s = await openSse(`${url}/test-stream?key=s:abc:g`, { headers: { origin: 'http://localhost:3000' } })
  t.after(() => s.close())
  assert.equal(s.res.status, 200)
  assert.match(s.res.headers.get('content-type') ?? '', /^text\/event-stream/)
  assert.equal(s.res.headers.get('cache-control'), 'no-cache, no-transform')
  assert.equal(s.res.headers.get('x-accel-buffering'), 'no')
  assert.equal(s.res.headers.get('access-control-allow-origin'), 'http://localhost:3000')
  assert.match(s.res.headers.get('access-control-expose-headers') ?? '', /Mcp-Session-Id/)
  const id = await app.hub.publish('s:abc:g', { event: 'message', data: '{"a":1}' })
  assert.match(id, /^g-[0-9a-f]{8}-1$/)
  const ev = await s.next()
  assert.equal(ev?.id, id)
  assert.equal(ev?.data, '{"a":1}')
  assert.equal(await s.nextComment(2000), 'open')
  assert.equal(await s.nextComment(2000), 'ping')
})

test('1,000 events with 20 random disconnects and Last-Event-ID reconnects arrive exactly once, in order', async (t) => {
  const { app, url } = await listen(t, {}, addTestStreamRoute)
  const key = 's:resume:g'
  const total = 1000
  let published = 0
  let first: Awaited<ReturnType<typeof openSse>> | undefined = await openSse(`${url}/test-stream?key=${encodeURIComponent(key)}`)
  // The publisher keeps going whether or not the client is connected.
  const publisher = (async () => {
    while (published < total) {
      await app.hub.publish(key, { event: 'message', data: JSON.stringify({ n: published + 1 }) })
      published++
      if (published % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  const received: number[] = []
  let lastId: string | undefined
  let reconnects = 0
  // Disconnect points chosen at random, 20 of them, from a seed the run prints (HUB_STREAM_SEED=<n> replays a failure).
  const seed = Number(process.env.HUB_STREAM_SEED ?? Math.floor(Math.random() * 2 ** 32))
  t.diagnostic(`HUB_STREAM_SEED=${seed}`)
  const random = mulberry32(seed)
  const cuts = new Set<number>()
  while (cuts.size < 20) cuts.add(1 + Math.floor(random() * (total - 1)))
  while (received.length < total) {
    const s = first ?? await openSse(`${url}/test-stream?key=${encodeURIComponent(key)}`, { headers: lastId ? { 'last-event-id': lastId } : {} })
    first = undefined
    for (;;) {
      const ev = await s.next(10_000)
      if (ev === undefined) break
      received.push((JSON.parse(ev.data) as { n: number }).n)
      lastId = ev.id
      if (cuts.has(received.length)) { cuts.delete(received.length); break }
      if (received.length === total) break
    }
    await s.close()
    if (received.length < total) reconnects++
  }
  await publisher
  assert.equal(reconnects, 20)
  assert.deepEqual(received, Array.from({ length: total }, (_, i) => i + 1))
})

test('a reconnect whose history was trimmed is told so with an evicted event', async (t) => {
  const { app, url } = await listen(t, { replayBufferSize: 5 }, addTestStreamRoute)
  const ids: string[] = []
  for (let i = 1; i <= 20; i++) ids.push(await app.hub.publish('s:x:g', { data: String(i) }))
  const s = await openSse(`${url}/test-stream?key=s:x:g`, { headers: { 'last-event-id': ids[2] ?? '' } })
  t.after(() => s.close())
  const first = await s.next()
  assert.equal(first?.event, 'evicted')
  assert.equal(JSON.parse(first?.data ?? '{}').firstAvailable, ids[15])
  const rest: string[] = []
  for (let i = 0; i < 5; i++) rest.push((await s.next())?.data ?? '')
  assert.deepEqual(rest, ['16', '17', '18', '19', '20'])
})

test('an ended stream closes after its last event, and a late resume replays then closes', async (t) => {
  const { app, url } = await listen(t, {}, addTestStreamRoute)
  const s = await openSse(`${url}/test-stream?key=s:q:r1`)
  await app.hub.publish('s:q:r1', { data: 'a' })
  await app.hub.publish('s:q:r1', { data: 'b' })
  await app.hub.end('s:q:r1')
  const a = await s.next()
  assert.equal(a?.data, 'a')
  assert.equal((await s.next())?.data, 'b')
  assert.equal(await s.next(), undefined)
  const late = await openSse(`${url}/test-stream?key=s:q:r1`, { headers: { 'last-event-id': a?.id ?? '' } })
  assert.equal((await late.next())?.data, 'b')
  assert.equal(await late.next(), undefined)
})

test('over MAX_CONNECTIONS a new stream gets 503 with Retry-After', async (t) => {
  const { app, url } = await listen(t, { maxConnections: 2 }, addTestStreamRoute)
  const a = await openSse(`${url}/test-stream`)
  const b = await openSse(`${url}/test-stream`)
  t.after(async () => { await Promise.all([a.close(), b.close()]) })
  const res = await fetch(`${url}/test-stream`)
  assert.equal(res.status, 503)
  assert.ok(Number(res.headers.get('retry-after')) > 0)
  assert.equal(app.hub.stats().rejectedOverCapacity, 1)
})

test('closing the app tells every stream with a shutdown event', async (t) => {
  const { app, url } = await listen(t, {}, addTestStreamRoute)
  const s = await openSse(`${url}/test-stream`)
  await app.hub.broadcast('hello', { x: 1 })
  assert.equal((await s.next())?.event, 'hello')
  const closing = app.close()
  const ev = await s.next()
  assert.equal(ev?.event, 'shutdown')
  await closing
})

/** A small seeded PRNG (mulberry32): the same seed gives the same cuts. */
function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
