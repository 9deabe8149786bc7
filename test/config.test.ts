import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ConfigError, hostAllowed, loadConfig, originAllowed } from '../src/config.js'

test('an empty environment gives the documented defaults', () => {
  const c = loadConfig({})
  assert.equal(c.host, '127.0.0.1')
  assert.equal(c.port, 8080)
  assert.equal(c.logLevel, 'info')
  assert.deepEqual(c.authTokens, [])
  assert.equal(c.maxConnections, 1000)
  assert.equal(c.heartbeatIntervalMs, 15000)
  assert.equal(c.sessionIdleTimeoutMs, 1800000)
  assert.equal(c.replayBufferSize, 1000)
  assert.equal(c.bodyLimit, 1048576)
  assert.equal(c.redisUrl, undefined)
  assert.equal(c.tls, undefined)
  assert.equal(c.trustProxy, false)
  assert.equal(c.fixtures, undefined)
  assert.ok(c.allowedHosts.includes('localhost'))
})

test('values are converted and lists are split', () => {
  const c = loadConfig({ PORT: '9000', AUTH_TOKENS: 'a, b ,,c', ALLOWED_ORIGINS: 'https://app.example.com', TRUST_PROXY: 'loopback,1', MCP_FIXTURES: 'conformance' })
  assert.equal(c.port, 9000)
  assert.deepEqual(c.authTokens, ['a', 'b', 'c'])
  assert.deepEqual(c.allowedOrigins, ['https://app.example.com'])
  assert.deepEqual(c.trustProxy, { addresses: ['loopback'], hops: 1 })
  assert.equal(c.fixtures, 'conformance')
})

test('binding to all interfaces drops the default Host allow-list', () => {
  assert.deepEqual(loadConfig({ HOST: '0.0.0.0', AUTH_TOKENS: 'secret-token' }).allowedHosts, [])
})

for (const host of ['0.0.0.0', '::', '192.0.2.10', 'example.internal']) {
  test(`HOST=${host} with neither ALLOWED_HOSTS nor auth is refused with one line that says what to set`, () => {
    assert.throws(() => loadConfig({ HOST: host }), (err: unknown) =>
      err instanceof ConfigError && !err.message.includes('\n') &&
      err.message.startsWith(`Invalid configuration: HOST="${host}"`) && /set ALLOWED_HOSTS=?/.test(err.message) && err.message.includes('AUTH_TOKENS'))
  })
}

test('a non-loopback bind starts with a Host allow-list or with any kind of auth; loopback needs neither', () => {
  assert.deepEqual(loadConfig({ HOST: '0.0.0.0', ALLOWED_HOSTS: 'mcp.example.com,app1' }).allowedHosts, ['mcp.example.com', 'app1'])
  assert.deepEqual(loadConfig({ HOST: '0.0.0.0', ALLOWED_HOSTS: '*' }).allowedHosts, ['*'])
  assert.ok(loadConfig({ HOST: '::', OPERATOR_TOKENS: 'op-token' }))
  assert.ok(loadConfig({ HOST: '0.0.0.0', OAUTH_JWKS_URL: 'https://issuer.example/jwks' }).oauth)
  for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) assert.ok(loadConfig({ HOST: host }).allowedHosts.length > 0, host)
})

for (const [typo, real] of [['AUTH_TOKEN', 'AUTH_TOKENS'], ['OPERATOR_TOKEN', 'OPERATOR_TOKENS'], ['ALLOWED_HOST', 'ALLOWED_HOSTS'], ['ALLOWED_ORIGIN', 'ALLOWED_ORIGINS']] as const) {
  test(`${typo} (a misspelt ${real}) is refused with a one-line hint, not ignored`, () => {
    assert.throws(() => loadConfig({ HOST: '0.0.0.0', [typo]: 'http://localhost' }), (err: unknown) =>
      err instanceof ConfigError && !err.message.includes('\n') && err.message.includes(typo) && err.message.includes(`did you mean ${real}?`) && !err.message.includes('http://localhost'))
    assert.throws(() => loadConfig({ [typo]: 'http://localhost' }), ConfigError, 'on loopback too')
    assert.ok(loadConfig({ [typo]: 'http://localhost', [real]: 'http://localhost' }), `ignored when ${real} is set too`)
  })
}

for (const [env, variable] of [
  [{ PORT: 'abc' }, 'PORT'],
  [{ PORT: '70000' }, 'PORT'],
  [{ MAX_CONNECTIONS: '-1' }, 'MAX_CONNECTIONS'],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
  [{ TLS_CERT_FILE: '/tmp/cert.pem' }, 'TLS_KEY_FILE'],
  [{ ALLOWED_ORIGINS: 'not an origin' }, 'ALLOWED_ORIGINS'],
  [{ MCP_FIXTURES: 'everything' }, 'MCP_FIXTURES'],
  [{ STATE_SECRET: 'too-short' }, 'STATE_SECRET'],
  [{ CACHE_TTL_MS: '-5' }, 'CACHE_TTL_MS'],
  [{ REDIS_SENTINELS: '10.0.0.5' }, 'REDIS_SENTINELS'],
  [{ REDIS_SENTINELS: '10.0.0.5:26379,10.0.0.6:99999' }, 'REDIS_SENTINELS'],
  [{ REDIS_SENTINELS: '10.0.0.5:26379', REDIS_URL: 'redis://x' }, 'REDIS_SENTINELS'],
  [{ REDIS_SENTINELS: '10.0.0.5:26379', REDIS_SENTINEL_NAME: 'my master' }, 'REDIS_SENTINEL_NAME'],
  [{ REDIS_SENTINEL_PASSWORD: 'secret' }, 'REDIS_SENTINEL_PASSWORD']
] as const) {
  test(`a bad ${variable} is a ConfigError naming it`, () => {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.message.includes(variable))
  })
}

test('REDIS_SENTINELS: host:port list (IPv6 in brackets), master name mymaster by default, password optional', () => {
  const c = loadConfig({ REDIS_SENTINELS: 'sentinel-1:26379, 10.0.0.6:26380,[::1]:26381' })
  assert.deepEqual(c.redisSentinel, {
    sentinels: [{ host: 'sentinel-1', port: 26379 }, { host: '10.0.0.6', port: 26380 }, { host: '::1', port: 26381 }],
    name: 'mymaster',
    password: undefined
  })
  assert.equal(c.redisUrl, undefined)
  assert.equal(loadConfig({ REDIS_SENTINELS: 'h:1', REDIS_SENTINEL_NAME: 'cache', REDIS_SENTINEL_PASSWORD: 'pw' }).redisSentinel?.password, 'pw')
  assert.equal(loadConfig({}).redisSentinel, undefined)
  assert.throws(() => loadConfig({ REDIS_SENTINELS: 'h:1', REDIS_URL: 'redis://x' }), /REDIS_SENTINELS.*and REDIS_URL are exclusive/)
  // Sentinel is Redis: a fixed STATE_SECRET is allowed with it as with REDIS_URL.
  assert.equal(loadConfig({ REDIS_SENTINELS: 'h:1', STATE_SECRET: 'x'.repeat(32) }).stateSecret, 'x'.repeat(32))
})

test('a malformed STATE_SECRET is reported without echoing it', () => {
  assert.throws(() => loadConfig({ STATE_SECRET: 'hunter2-hunter2' }), (err: unknown) => err instanceof ConfigError && err.message.includes('<redacted>') && !err.message.includes('hunter2'))
})

test('the server exits 1 with one clear line and no stack trace on a bad value', () => {
  const entry = fileURLToPath(new URL('../src/server.ts', import.meta.url))
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry], { env: { ...process.env, PORT: 'abc' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 1)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0] ?? '', /^Invalid configuration: PORT="abc"/)
  assert.doesNotMatch(r.stderr, /\bat .*\(/)
})

test('origin matching: an entry without a port matches any port, * matches all', () => {
  assert.ok(originAllowed('http://localhost:5173', ['http://localhost']))
  assert.ok(!originAllowed('http://localhost.evil.com', ['http://localhost']))
  assert.ok(!originAllowed('https://localhost:1', ['http://localhost']))
  assert.ok(originAllowed('https://a.example:8443', ['https://a.example:8443']))
  assert.ok(!originAllowed('https://a.example:9443', ['https://a.example:8443']))
  assert.ok(originAllowed('null', ['*']))
  assert.ok(!originAllowed('null', ['http://localhost']))
})

test('host matching strips the port and handles IPv6', () => {
  assert.ok(hostAllowed('localhost:8080', ['localhost']))
  assert.ok(hostAllowed('[::1]:8080', ['[::1]']))
  assert.ok(!hostAllowed('evil.example', ['localhost']))
  assert.ok(hostAllowed('anything', []))
  assert.ok(!hostAllowed(undefined, ['localhost']))
})
