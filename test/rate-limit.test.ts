import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'

test('over RATE_LIMIT_MAX a caller gets 429 with Retry-After and a JSON message', async (t) => {
  const app = await build(t, { rateLimitMax: 3, rateLimitWindowMs: 60_000 })
  for (let i = 0; i < 3; i++) assert.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 200)
  const res = await app.inject({ method: 'GET', url: '/docs' })
  assert.equal(res.statusCode, 429)
  assert.ok(Number(res.headers['retry-after']) > 0)
  assert.match(res.json().message, /Rate limit exceeded/)
})

test('the limit is per token identity: another token still gets through', async (t) => {
  const app = await build(t, { rateLimitMax: 2, authTokens: ['token-one', 'token-two'] })
  const as = (token: string) => ({ method: 'GET' as const, url: '/docs', headers: { authorization: `Bearer ${token}` } })
  await app.inject(as('token-one'))
  await app.inject(as('token-one'))
  assert.equal((await app.inject(as('token-one'))).statusCode, 429)
  assert.equal((await app.inject(as('token-two'))).statusCode, 200)
})

test('/health and /ready are never rate limited', async (t) => {
  const app = await build(t, { rateLimitMax: 1 })
  for (let i = 0; i < 5; i++) {
    assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
    assert.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)
  }
})

test('RATE_LIMIT_MAX=0 turns rate limiting off', async (t) => {
  const app = await build(t, { rateLimitMax: 0 })
  for (let i = 0; i < 20; i++) assert.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 200)
})
