import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'
import { PROTOCOL_VERSIONS } from '../src/meta.js'

test('GET /health reports status, identity, versions, uptime, streams and sessions', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  assert.equal(res.statusCode, 200)
  assert.match(res.headers['content-type'] as string, /^application\/json/)
  const body = res.json()
  assert.equal(body.status, 'ok')
  assert.equal(body.server, 'sse-mcp-server')
  assert.match(body.version, /^\d+\.\d+\.\d+/)
  assert.ok(!Number.isNaN(Date.parse(body.timestamp)))
  assert.deepEqual(body.protocolVersions, [...PROTOCOL_VERSIONS])
  assert.deepEqual(body.protocolVersions, ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'], 'both eras, newest first')
  assert.equal(typeof body.uptime, 'number')
  assert.equal(body.streams, 0)
  assert.equal(body.sessions, 0)
})

test('GET /ready is 200 when nothing is wrong', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/ready' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.json().status, 'ready')
})

test('GET /ready is 503 with Retry-After while draining', async (t) => {
  const app = await build(t)
  app.lifecycle.startDraining()
  const res = await app.inject({ method: 'GET', url: '/ready' })
  assert.equal(res.statusCode, 503)
  assert.equal(res.json().status, 'draining')
  assert.ok(res.headers['retry-after'])
})

test('GET /ready is 503 when a dependency check fails, and names it', async (t) => {
  const app = await build(t)
  app.lifecycle.addReadinessCheck('redis', () => false)
  const res = await app.inject({ method: 'GET', url: '/ready' })
  assert.equal(res.statusCode, 503)
  assert.deepEqual(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'Not ready: redis down', status: 'unavailable', checks: { redis: false } })
  assert.equal(res.headers['retry-after'], '5')
})

test('an unknown route is a JSON 404, not an HTML page', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope' })
  assert.equal(res.statusCode, 404)
  assert.equal(res.json().statusCode, 404)
})
