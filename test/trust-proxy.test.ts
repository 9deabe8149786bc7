import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { buildApp, type App } from '../src/app.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { MCP_POST_HEADERS } from './helper.js'

/** A peer that reached the app port directly, not through a proxy. */
const STRANGER = '203.0.113.9'
const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }

/** The app as the environment makes it, or undefined when the environment is refused at start-up. */
async function fromEnv (t: TestContext, env: Record<string, string>): Promise<App | undefined> {
  let config
  try {
    config = loadConfig(env)
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    assert.match(err.message, /^Invalid configuration: TRUST_PROXY=.*TRUST_PROXY=loopback/, 'one line that says what to set')
    return undefined
  }
  const app = await buildApp({ ...config, logLevel: 'silent', logger: false })
  t.after(() => app.close())
  await app.ready()
  return app
}

/** Every spelling, the ones refused at start-up included: none may let a stranger speak for others. */
const SPELLINGS = ['1', '2', 'true', 'loopback', 'loopback,1', 'private', '10.0.0.0/8,127.0.0.1']

test('a bare hop count or `true` is refused at start-up with one line that says what to set', () => {
  for (const value of ['1', '3', 'true', 'TRUE']) {
    assert.throws(() => loadConfig({ TRUST_PROXY: value }), (err: unknown) =>
      err instanceof ConfigError && /^Invalid configuration: TRUST_PROXY=".*" trusts X-Forwarded-\* from any peer; name the proxies by address: TRUST_PROXY=loopback/.test(err.message) && !err.message.includes('\n'))
  }
  assert.throws(() => loadConfig({ TRUST_PROXY: 'loopback,0' }), ConfigError)
  assert.throws(() => loadConfig({ TRUST_PROXY: 'nginx' }), /TRUST_PROXY="nginx" is not a list of addresses/)
  assert.throws(() => loadConfig({ TRUST_PROXY: '1,2,loopback' }), /more than one hop count/)
  assert.deepEqual(loadConfig({ TRUST_PROXY: 'false' }).trustProxy, false)
  assert.deepEqual(loadConfig({ TRUST_PROXY: 'private, 1' }).trustProxy, { addresses: ['uniquelocal'], hops: 1 })
  assert.deepEqual(loadConfig({ TRUST_PROXY: 'loopback,10.1.2.3,fd00::/8' }).trustProxy, { addresses: ['loopback', '10.1.2.3', 'fd00::/8'] })
})

test('from a peer that is not a trusted proxy, X-Forwarded-Host does not pass the Host guard', async (t) => {
  for (const TRUST_PROXY of SPELLINGS) {
    const app = await fromEnv(t, { TRUST_PROXY })
    if (app === undefined) continue
    const res = await app.inject({ method: 'GET', url: '/docs', remoteAddress: STRANGER, headers: { host: 'rebind.evil.test', 'x-forwarded-host': 'localhost' } })
    assert.equal(res.statusCode, 403, `TRUST_PROXY=${TRUST_PROXY}: ${res.body}`)
  }
})

test('from a peer that is not a trusted proxy, a rotating X-Forwarded-For is one client for the session budget', async (t) => {
  for (const TRUST_PROXY of SPELLINGS) {
    const app = await fromEnv(t, { TRUST_PROXY, MAX_SESSIONS_PER_CLIENT: '2', RATE_LIMIT_MAX: '0' })
    if (app === undefined) continue
    const codes: number[] = []
    for (let i = 0; i < 4; i++) {
      const res = await app.inject({ method: 'POST', url: '/mcp', remoteAddress: STRANGER, headers: { ...MCP_POST_HEADERS, 'x-forwarded-for': `198.51.100.${i + 1}` }, payload: INIT })
      codes.push(res.statusCode)
    }
    assert.deepEqual(codes, [200, 200, 429, 429], `TRUST_PROXY=${TRUST_PROXY}`)
  }
})

test('from a peer that is not a trusted proxy, a rotating X-Forwarded-For is one client for the rate limit', async (t) => {
  for (const TRUST_PROXY of SPELLINGS) {
    const app = await fromEnv(t, { TRUST_PROXY, RATE_LIMIT_MAX: '3' })
    if (app === undefined) continue
    const codes: number[] = []
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({ method: 'GET', url: '/docs', remoteAddress: STRANGER, headers: { 'x-forwarded-for': `198.51.100.${i + 1}` } })
      codes.push(res.statusCode)
    }
    assert.deepEqual(codes, [200, 200, 200, 429, 429], `TRUST_PROXY=${TRUST_PROXY}`)
  }
})

test('from a peer that is not a trusted proxy, a rotating X-Forwarded-For is one address for the failed-auth limit', async (t) => {
  for (const TRUST_PROXY of SPELLINGS) {
    const app = await fromEnv(t, { TRUST_PROXY, AUTH_TOKENS: 'right-token-1234', AUTH_FAILURE_MAX: '3', RATE_LIMIT_MAX: '0' })
    if (app === undefined) continue
    const codes: number[] = []
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({ method: 'GET', url: '/docs', remoteAddress: STRANGER, headers: { authorization: `Bearer wrong-${i}`, 'x-forwarded-for': `198.51.100.${i + 1}` } })
      codes.push(res.statusCode)
    }
    assert.deepEqual(codes, [401, 401, 401, 429, 429], `TRUST_PROXY=${TRUST_PROXY}`)
  }
})

test('from a trusted proxy, X-Forwarded-Host and X-Forwarded-For are honoured', async (t) => {
  for (const [TRUST_PROXY, proxy] of [['loopback', '127.0.0.1'], ['private,1', '10.0.0.7'], ['192.0.2.10', '192.0.2.10']] as const) {
    const app = await fromEnv(t, { TRUST_PROXY, ALLOWED_HOSTS: 'mcp.example.com', RATE_LIMIT_MAX: '2' })
    assert.ok(app !== undefined)
    // The public name the proxy forwards passes the Host guard, whatever Host it used upstream.
    const named = await app.inject({ method: 'GET', url: '/docs', remoteAddress: proxy, headers: { host: 'app:8080', 'x-forwarded-host': 'mcp.example.com', 'x-forwarded-for': '198.51.100.200' } })
    assert.equal(named.statusCode, 200, `${TRUST_PROXY}: ${named.body}`)
    const foreign = await app.inject({ method: 'GET', url: '/docs', remoteAddress: proxy, headers: { host: 'mcp.example.com', 'x-forwarded-host': 'rebind.evil.test', 'x-forwarded-for': '198.51.100.201' } })
    assert.equal(foreign.statusCode, 403, TRUST_PROXY)
    // Each forwarded client has its own rate limit (2 per window).
    const codes: number[] = []
    for (const client of ['198.51.100.1', '198.51.100.1', '198.51.100.1', '198.51.100.2']) {
      const res = await app.inject({ method: 'GET', url: '/docs', remoteAddress: proxy, headers: { host: 'mcp.example.com', 'x-forwarded-for': client } })
      codes.push(res.statusCode)
    }
    assert.deepEqual(codes, [200, 200, 429, 200], TRUST_PROXY)
  }
})

test('with a hop count, only that many proxies are believed: a client cannot add its own hops', async (t) => {
  const app = await fromEnv(t, { TRUST_PROXY: 'private,1', RATE_LIMIT_MAX: '1' })
  assert.ok(app !== undefined)
  // nginx (10.0.0.7) appended the client's real address (10.9.9.9, itself private) after the
  // client's own spoofed entries: the client is 10.9.9.9 every time.
  const codes: number[] = []
  for (const spoof of ['10.1.1.1', '10.1.1.2']) {
    const res = await app.inject({ method: 'GET', url: '/docs', remoteAddress: '10.0.0.7', headers: { 'x-forwarded-for': `${spoof}, 10.9.9.9` } })
    codes.push(res.statusCode)
  }
  assert.deepEqual(codes, [200, 429])
})

test('deploy/nginx.conf overwrites X-Forwarded-For, -Host and -Proto (a client cannot pass its own through)', () => {
  const conf = readFileSync(fileURLToPath(new URL('../deploy/nginx.conf', import.meta.url)), 'utf8')
  const set = (header: string): string[] => [...conf.matchAll(new RegExp(`^\\s*proxy_set_header\\s+${header}\\s+(\\S+);`, 'gim'))].map((m) => m[1] ?? '')
  assert.deepEqual(set('X-Forwarded-For'), ['$remote_addr'])
  assert.deepEqual(set('X-Forwarded-Host'), ['$host'])
  assert.deepEqual(set('X-Forwarded-Proto'), ['$scheme'])
  assert.deepEqual(set('Host'), ['$host'])
})

test('the server refuses to start with TRUST_PROXY=1: exit 1, one line that says what to set', () => {
  const entry = fileURLToPath(new URL('../src/server.ts', import.meta.url))
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry], { env: { ...process.env, PORT: '0', TRUST_PROXY: '1' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 1, r.stdout)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0] ?? '', /^Invalid configuration: TRUST_PROXY="1" trusts X-Forwarded-\* from any peer; name the proxies by address: TRUST_PROXY=loopback/)
})
