import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildApp } from '../src/app.js'
import { build, testConfig } from './helper.js'
import { type POLICY } from '../plugins/policy.js'
import { ignore } from '../src/ignore.js'

const clients = { authTokens: ['tokA-client-1234', 'tokB-client-5678'], operatorTokens: ['op-token-abcdef'] }
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const broadcast = (headers: Record<string, string>, data: unknown = { text: 'hello' }) => ({
  method: 'POST' as const, url: '/broadcast', headers: { 'content-type': 'application/json', ...headers }, payload: { event: 'note', data }
})

test('a route that declares no policy makes the app refuse to start, naming the route', async () => {
  const app = await buildApp({ ...testConfig(), logger: false })
  app.get('/forgotten', async () => ({ secret: true }))
  await assert.rejects(async () => { await app.ready() }, /GET \/forgotten/)
  await app.close().catch(ignore('the app may be closed already'))
})

test('a route with a malformed policy is refused too', async () => {
  const app = await buildApp({ ...testConfig(), logger: false })
  app.post('/typo', { config: { policy: { access: 'everyone', crossOrigin: 'open' } as unknown as typeof POLICY.open } }, async () => ({}))
  await assert.rejects(async () => { await app.ready() }, /POST \/typo/)
  await app.close().catch(ignore('the app may be closed already'))
})

test('every route of the app declares a policy', async (t) => {
  const app = await build(t, clients)
  assert.ok(app.routePolicies.length >= 10)
  for (const r of app.routePolicies) assert.ok(r.policy, `${r.method} ${r.url}`)
})

for (const url of ['/.well-known/oauth-authorization-server', '/register', '/nope', '/token', '/authorize']) {
  test(`an unknown path (${url}) is a plain 404 whatever the token`, async (t) => {
    const app = await build(t, clients)
    for (const headers of [{}, bearer('wrong-token'), bearer('tokA-client-1234'), { host: 'evil.example' }]) {
      for (const method of ['GET', 'POST'] as const) {
        const res = await app.inject({ method, url, headers })
        assert.equal(res.statusCode, 404, `${method} ${url} ${JSON.stringify(headers)}`)
        assert.equal(res.headers['www-authenticate'], undefined)
      }
    }
  })
}

test('a 404 never echoes a long path whole', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: `/${'a'.repeat(5000)}` })
  assert.equal(res.statusCode, 404)
  assert.ok(res.body.length < 400, res.body)
})

test('a client token (tokB) cannot broadcast: 403', async (t) => {
  const app = await build(t, clients)
  const res = await app.inject(broadcast(bearer('tokB-client-5678')))
  assert.equal(res.statusCode, 403)
  assert.match(res.json().message, /operator/)
})

test('an operator token broadcasts (202) and is also a valid client token', async (t) => {
  const app = await build(t, clients)
  assert.equal((await app.inject(broadcast(bearer('op-token-abcdef')))).statusCode, 202)
  assert.equal((await app.inject({ method: 'GET', url: '/docs', headers: bearer('op-token-abcdef') })).statusCode, 200)
})

test('no token on /broadcast with auth on: 401', async (t) => {
  const app = await build(t, clients)
  const res = await app.inject(broadcast({}))
  assert.equal(res.statusCode, 401)
  assert.match(String(res.headers['www-authenticate']), /^Bearer /)
})

test('OPERATOR_TOKENS alone turns auth on (operator tokens only)', async (t) => {
  const app = await build(t, { operatorTokens: ['op-token-abcdef'] })
  assert.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 401)
  assert.equal((await app.inject(broadcast({}))).statusCode, 401)
  assert.equal((await app.inject(broadcast(bearer('op-token-abcdef')))).statusCode, 202)
})

test('with auth off /broadcast is open to same-origin callers and refused cross-origin', async (t) => {
  const app = await build(t)
  assert.equal((await app.inject(broadcast({}))).statusCode, 202)
  assert.equal((await app.inject(broadcast({ origin: 'http://evil.example' }))).statusCode, 403)
  assert.equal((await app.inject(broadcast({ host: 'evil.example' }))).statusCode, 403)
})

test('broadcast data over MAX_BROADCAST_BYTES → 413 with a message', async (t) => {
  const app = await build(t, { ...clients, budgets: { ...testConfig().budgets, broadcastBytes: 1024 } })
  const res = await app.inject(broadcast(bearer('op-token-abcdef'), { text: 'x'.repeat(2000) }))
  assert.equal(res.statusCode, 413)
  assert.match(res.json().message, /MAX_BROADCAST_BYTES/)
  assert.equal((await app.inject(broadcast(bearer('op-token-abcdef'), { text: 'x'.repeat(900) }))).statusCode, 202)
})

test('broadcast data nested too deep is a 400, not a 500', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'POST', url: '/broadcast', headers: { 'content-type': 'application/json' }, payload: `{"event":"x","data":${'['.repeat(5000)}${']'.repeat(5000)}}` })
  assert.equal(res.statusCode, 400)
})

test('failed authentications from one IP turn into 429 + Retry-After after AUTH_FAILURE_MAX, even with a valid token', async (t) => {
  const app = await build(t, { ...clients, authFailureMax: 3, rateLimitMax: 0 })
  for (let i = 0; i < 3; i++) {
    assert.equal((await app.inject({ method: 'GET', url: '/docs', headers: bearer(`guess-${i}`) })).statusCode, 401)
  }
  const locked = await app.inject({ method: 'GET', url: '/docs', headers: bearer('guess-4') })
  assert.equal(locked.statusCode, 429)
  assert.ok(Number(locked.headers['retry-after']) > 0)
  assert.equal((await app.inject({ method: 'GET', url: '/docs', headers: bearer('tokA-client-1234') })).statusCode, 429, 'checked before the token')
  // Another address is not affected; public probes are not either.
  assert.equal((await app.inject({ method: 'GET', url: '/docs', headers: bearer('tokA-client-1234'), remoteAddress: '127.0.0.9' })).statusCode, 200)
  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

test('RATE_LIMIT_MAX now also sees wrong tokens: 12 guesses with the limits at 5 → 429 before the 12th', async (t) => {
  const app = await build(t, { ...clients, authFailureMax: 5, rateLimitMax: 5 })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) statuses.push((await app.inject({ method: 'POST', url: '/mcp', headers: bearer(`wrong-${i}`), payload: {} })).statusCode)
  assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401])
  assert.ok(statuses.slice(5).every((s) => s === 429), statuses.join(','))
})

test('AUTH_FAILURE_MAX=0 never locks out', async (t) => {
  const app = await build(t, { ...clients, authFailureMax: 0, rateLimitMax: 0 })
  for (let i = 0; i < 30; i++) assert.equal((await app.inject({ method: 'GET', url: '/docs', headers: bearer(`g${i}`) })).statusCode, 401)
})

test('/docs and /metrics are guarded against DNS rebinding even when public', async (t) => {
  const app = await build(t, { metricsPublic: true, docsPublic: true, ...clients })
  for (const url of ['/docs', '/metrics']) {
    assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
    assert.equal((await app.inject({ method: 'GET', url, headers: { host: 'evil.example:8080' } })).statusCode, 403, url)
    assert.equal((await app.inject({ method: 'GET', url, headers: { origin: 'http://evil.example' } })).statusCode, 403, url)
  }
})

test('DOCS_PUBLIC=false: /docs needs a token when auth is on; DOCS_PUBLIC=true opens only /docs', async (t) => {
  const app = await build(t, { ...clients, docsPublic: true })
  assert.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 200)
  assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
})

test('/health, /ready answer any Host (load balancers) and are never rate limited', async (t) => {
  const app = await build(t, { ...clients, rateLimitMax: 1 })
  for (let i = 0; i < 3; i++) {
    assert.equal((await app.inject({ method: 'GET', url: '/health', headers: { host: 'lb.internal' } })).statusCode, 200)
    assert.equal((await app.inject({ method: 'GET', url: '/ready', headers: { host: 'lb.internal' } })).statusCode, 200)
  }
})

test('the docs page in OAuth-only mode says auth is on and asks for a token', async (t) => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { generateKeyPairSync } = await import('node:crypto')
  const dir = mkdtempSync(join(tmpdir(), 'docs-oauth-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'key.pem')
  writeFileSync(file, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }))
  const app = await build(t, {
    docsPublic: true,
    oauth: { resource: 'http://127.0.0.1:8080/mcp', issuer: undefined, jwksUrl: undefined, publicKeyFile: file, authorizationServers: [], scopesSupported: [] }
  })
  const res = await app.inject({ method: 'GET', url: '/docs' })
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /Auth is on/)
  assert.doesNotMatch(res.body, /Auth is off/)
  assert.match(res.body, /placeholder="required"/)
  assert.match(res.body, /"authOn":true/)
})
