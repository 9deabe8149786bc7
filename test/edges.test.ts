import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'
import { hostName } from '../src/config.js'

test('the Host header is parsed, not prefix-matched: `[::1]anything` and other junk after the name are refused', async (t) => {
  const app = await build(t)
  const status = async (host: string): Promise<number> => (await app.inject({ method: 'GET', url: '/docs', headers: { host } })).statusCode
  for (const host of ['[::1]anything', '[::1]:8080x', '[::1]x:80', 'localhost:80:90', 'localhost:', 'localhost:123456', 'localhost@evil.test', '[::1', 'localhost.:80', '127.0.0.1.evil.test']) {
    assert.equal(await status(host), 403, host)
  }
  for (const host of ['[::1]', '[::1]:8080', 'localhost', 'LOCALHOST:8080', '127.0.0.1:1']) {
    assert.equal(await status(host), 200, host)
  }
  assert.equal(hostName('[::1]anything'), undefined)
  assert.equal(hostName('[::1]:80'), '[::1]')
  assert.equal(hostName('Example.COM:443'), 'example.com')
})

test('requests to paths with no route count against the rate limit (still a plain 404, whatever the token)', async (t) => {
  const app = await build(t, { rateLimitMax: 3, authTokens: ['edge-token-123'] })
  const codes: number[] = []
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer edge-token-123' }, {}, {}]) {
    const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server', headers })
    codes.push(res.statusCode)
    assert.equal(res.headers['www-authenticate'], undefined)
  }
  assert.deepEqual(codes, [404, 404, 404, 429, 429])
  // Counted per address: another client still gets its 404.
  assert.equal((await app.inject({ method: 'GET', url: '/nope', remoteAddress: '127.0.0.9' })).statusCode, 404)
})

test('/health tells stream and session counts only to whom /metrics is open without a token; anyone else gets plain liveness', async (t) => {
  const open = await build(t)
  const metricsPublic = await build(t, { authTokens: ['health-token-1'], metricsPublic: true })
  const closed = await build(t, { authTokens: ['health-token-1'] })
  const body = async (app: typeof open, headers: Record<string, string> = {}): Promise<Record<string, unknown>> => {
    const res = await app.inject({ method: 'GET', url: '/health', headers })
    assert.equal(res.statusCode, 200, 'liveness for anyone, from any Host')
    const json = res.json<Record<string, unknown>>()
    assert.equal(json.status, 'ok')
    return json
  }
  assert.equal((await body(open)).sessions, 0, 'same-origin, auth off: counts')
  assert.equal((await body(metricsPublic)).streams, 0, 'METRICS_PUBLIC: counts')
  for (const [app, headers, who] of [
    [open, { host: 'rebind.evil.test' }, 'a foreign Host (DNS rebinding)'],
    [open, { origin: 'https://evil.test' }, 'a foreign Origin'],
    [metricsPublic, { host: 'rebind.evil.test' }, 'a foreign Host with METRICS_PUBLIC'],
    [closed, {}, 'auth on'],
    [closed, { authorization: 'Bearer health-token-1' }, 'auth on, even with a token (operators read /metrics)']
  ] as const) {
    const json = await body(app, headers)
    assert.equal('streams' in json || 'sessions' in json, false, who)
  }
})
