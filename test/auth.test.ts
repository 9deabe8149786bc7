import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'

const tokens = { authTokens: ['alpha-token-123', 'beta-token-456'] }

test('without AUTH_TOKENS every route is open', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope' })
  assert.equal(res.statusCode, 404)
})

test('with AUTH_TOKENS a request without a token gets 401 and a Bearer challenge', async (t) => {
  const app = await build(t, tokens)
  const res = await app.inject({ method: 'POST', url: '/mcp', payload: {} })
  assert.equal(res.statusCode, 401)
  assert.match(String(res.headers['www-authenticate']), /^Bearer /)
  assert.equal(res.json().statusCode, 401)
})

test('a wrong token of the same length is refused with invalid_token', async (t) => {
  const app = await build(t, tokens)
  const res = await app.inject({ method: 'GET', url: '/docs', headers: { authorization: 'Bearer alpha-token-124' } })
  assert.equal(res.statusCode, 401)
  assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/)
})

test('a valid token (any of the list) passes auth', async (t) => {
  const app = await build(t, tokens)
  for (const token of tokens.authTokens) {
    const res = await app.inject({ method: 'GET', url: '/docs', headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.statusCode, 200)
  }
})

test('a token in the query string is not accepted', async (t) => {
  const app = await build(t, tokens)
  const res = await app.inject({ method: 'GET', url: '/docs?access_token=alpha-token-123&token=alpha-token-123' })
  assert.equal(res.statusCode, 401)
})

test('/health and /ready need no token', async (t) => {
  const app = await build(t, tokens)
  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  assert.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)
})

test('CORS preflight works without a token', async (t) => {
  const app = await build(t, tokens)
  const res = await app.inject({
    method: 'OPTIONS',
    url: '/mcp',
    headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' }
  })
  assert.equal(res.statusCode, 204)
})

test('a 401 still carries CORS headers so a browser can read it', async (t) => {
  const app = await build(t, tokens)
  const res = await app.inject({ method: 'POST', url: '/mcp', headers: { origin: 'http://localhost:3000' }, payload: {} })
  assert.equal(res.statusCode, 401)
  assert.equal(res.headers['access-control-allow-origin'], 'http://localhost:3000')
})
