import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'

for (const url of ['/mcp', '/sse', '/messages?sessionId=x']) {
  test(`a browser preflight for ${url} from an allowed origin is answered with the MCP headers`, async (t) => {
    const app = await build(t)
    const res = await app.inject({
      method: 'OPTIONS',
      url,
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,mcp-session-id,mcp-protocol-version,last-event-id'
      }
    })
    assert.equal(res.statusCode, 204)
    assert.equal(res.headers['access-control-allow-origin'], 'http://localhost:5173')
    const allowed = String(res.headers['access-control-allow-headers']).toLowerCase()
    for (const h of ['authorization', 'content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']) {
      assert.ok(allowed.includes(h), `${h} allowed`)
    }
    assert.match(String(res.headers['access-control-allow-methods']), /DELETE/)
  })
}

test('responses expose Mcp-Session-Id to browsers', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'http://127.0.0.1:3000' } })
  assert.equal(res.headers['access-control-allow-origin'], 'http://127.0.0.1:3000')
  assert.match(String(res.headers['access-control-expose-headers']), /Mcp-Session-Id/)
})

test('an origin that is not allowed gets no CORS grant', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } })
  assert.equal(res.headers['access-control-allow-origin'], undefined)
})

test('ALLOWED_ORIGINS=* grants any origin', async (t) => {
  const app = await build(t, { allowedOrigins: ['*'] })
  const res = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://anything.example' } })
  assert.equal(res.headers['access-control-allow-origin'], 'https://anything.example')
})

test('a request to /mcp from a foreign origin is refused with 403 (DNS rebinding)', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'POST', url: '/mcp', headers: { origin: 'https://evil.example' }, payload: {} })
  assert.equal(res.statusCode, 403)
  assert.match(res.json().message, /Origin/)
})

test('a request to /mcp with a foreign Host header is refused with 403 when bound to loopback', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/mcp', headers: { host: 'attacker.example:8080' } })
  assert.equal(res.statusCode, 403)
  assert.match(res.json().message, /Host/)
})
