import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import http from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { listen, testConfig } from '../helper.js'
import { openSse } from '../sse-client.js'
import { addTestStreamRoute } from './stream-route.js'
import { until } from '../e2e/sdk.js'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

function heapAfterGc (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

test('a client that never reads is dropped with bounded memory while others keep receiving', async (t) => {
  const { app, url } = await listen(t, {}, addTestStreamRoute)
  const { port } = new URL(url)
  // A raw socket that asks for the stream and then never reads a byte.
  const stuck = connect(Number(port), '127.0.0.1')
  t.after(() => stuck.destroy())
  stuck.write('GET /test-stream?key=public HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n')
  stuck.pause()
  const healthy = await openSse(`${url}/test-stream?key=public`)
  t.after(() => healthy.close())
  await until(() => app.hub.stats().streams === 2, 5000, 'both streams to open')

  const before = process.memoryUsage().rss
  const chunk = 'x'.repeat(64 * 1024)
  let received = 0
  let sent = 0
  const reader = (async () => {
    for (;;) {
      const ev = await healthy.next(10_000)
      if (ev === undefined || ev.data === 'done') break
      received++
    }
  })()
  // 64 MB in total through the hub: far more than socket buffers + the 1 MiB queue bound.
  for (; sent < 1024; sent++) {
    await app.hub.publish('public', { data: chunk })
    if (sent % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await app.hub.publish('public', { data: 'done' })
  await reader
  assert.equal(app.hub.stats().droppedSlowConsumers, 1, 'the stuck client was dropped')
  assert.equal(app.hub.stats().streams, 1)
  assert.equal(received, sent, 'the healthy client got every event')
  const grown = process.memoryUsage().rss - before
  assert.ok(grown < 48 * 1024 * 1024, `RSS grew by ${Math.round(grown / 1048576)} MB for 64 MB published`)
})

/** Opens `n` idle public streams with raw http requests; resolves once each has its first bytes. */
async function openStreams (url: string, agent: http.Agent, n: number): Promise<http.ClientRequest[]> {
  const requests: http.ClientRequest[] = []
  let opened = 0
  await new Promise<void>((resolve, reject) => {
    for (let i = 0; i < n; i++) {
      const req = http.get(`${url}/mcp`, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
        res.once('data', () => { if (++opened === n) resolve() })
        res.on('error', () => {})
      })
      req.on('error', reject)
      requests.push(req)
    }
  })
  return requests
}

test('2,000 idle streams open on one process, show in /health, and leave no leak when closed', { timeout: 60_000 }, async (t) => {
  const budgets = { ...testConfig().budgets, streamsPerClient: 5000 }
  const { app, url } = await listen(t, { maxConnections: 5000, maxConnectionsPerClient: 5000, rateLimitMax: 0, budgets })
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  t.after(() => agent.destroy())
  const N = 2000
  const cycle = async (): Promise<void> => {
    let requests = await openStreams(url, agent, N)
    assert.equal(app.hub.stats().streams, N)
    const health = (await app.inject({ method: 'GET', url: '/health' })).json()
    assert.equal(health.streams, N)
    for (const req of requests) req.destroy()
    requests = [] // the client side's objects are not the server's leak
    await until(() => app.hub.stats().streams === 0, 20_000, 'every stream to close')
    assert.equal((await app.inject({ method: 'GET', url: '/health' })).json().streams, 0)
  }
  // The first round warms pools Node keeps on purpose (HTTP parsers, sockets' lazily built
  // structures); a leak shows as growth from one round to the next.
  await cycle()
  const start = heapAfterGc()
  await cycle()
  await cycle()
  const end = heapAfterGc()
  assert.ok(end <= start * 1.1, `heap after GC ${Math.round(end / 1024)} KB vs ${Math.round(start / 1024)} KB before`)
})
