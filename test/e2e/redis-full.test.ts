import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { missing, startRedis } from './services.js'
import { startServer } from './process.js'
import { openSse } from '../sse-client.js'

// A full Redis (maxmemory reached, policy noeviction, as docker-compose.yml runs it) refuses writes
// with OOM: the client gets 503 + Retry-After, never a 500, and the process stays up.

const skip = missing('redis-server')
const POST = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

test('with Redis full (maxmemory, noeviction) a refused write answers 503 + Retry-After (never 500, never accepted and lost) and the process stays up', { skip, timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t, { args: ['--maxmemory-policy', 'noeviction'] })
  const server = await startServer(t, { REDIS_URL: redis.url, LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '0' })
  const admin = new Redis(redis.url)
  t.after(() => { admin.disconnect() })
  // A public stream is open, so a broadcast has somewhere to go (and must be logged first).
  const pub = await openSse(`${server.url}/mcp`)
  t.after(() => pub.close())
  await admin.config('SET', 'maxmemory', '1')

  const init = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers: POST,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } })
  })
  const broadcast = await fetch(`${server.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'x', data: 1 }) })
  const initBody = await init.text()
  assert.equal(init.status, 503, `initialize: ${init.status} ${initBody.slice(0, 200)}`)
  assert.match(init.headers.get('retry-after') ?? '', /^\d+$/, 'initialize: Retry-After')
  t.diagnostic(`initialize: 503 ${initBody.slice(0, 160)}`)
  // A broadcast is refused (503 + Retry-After) or, if Redis took the write after all, delivered:
  // never accepted and lost, never a 500.
  const broadcastBody = await broadcast.text()
  t.diagnostic(`broadcast: ${broadcast.status} ${broadcastBody.slice(0, 160)}`)
  if (broadcast.status === 202) {
    let got: string | undefined
    for (let i = 0; i < 5 && got === undefined; i++) {
      const e = await pub.next(5000)
      if (e?.event === 'x') got = e.data
    }
    assert.equal(got, '1', 'an accepted broadcast reaches the open stream')
  } else {
    assert.equal(broadcast.status, 503, `broadcast: ${broadcast.status} ${broadcastBody.slice(0, 200)}`)
    assert.match(broadcast.headers.get('retry-after') ?? '', /^\d+$/, 'broadcast: Retry-After')
  }

  await admin.config('SET', 'maxmemory', '0')
  const health = await fetch(`${server.url}/health`)
  assert.equal(health.status, 200, 'the process is still up')
  await health.arrayBuffer()
})
