import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import type { LightMyRequestResponse } from 'fastify'
import type { App } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { openSse } from '../sse-client.js'
import { missing, startRedis } from '../e2e/services.js'
import { HEADERS, deep, hostile, raw, until, type World } from './world.js'
import { ignore } from '../../src/ignore.js'
import { injectSession } from '../helper.js'
import { kEngine } from '../../src/mcp/engine.js'

/**
 * Every finding of issue 13 (1–12) and the request-level findings of issue 16 (2, 4, 8), as an
 * attacker would send them, each asserting the exact status and JSON-RPC error the user sees.
 * Every test ends with World.assertClean(): no 5xx, no error-level log line.
 */

const V = '2026-07-28'
const budgets = (b: Partial<Config['budgets']>): Pick<Config, 'budgets'> => ({ budgets: { ...loadConfig({}).budgets, ...b } })

const initBody = (capabilities: unknown = {}, id: number = 0) => ({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'hostile', version: '1' } } })

const session = injectSession

const rpc = async (
  app: App, sid: string, body: Record<string, unknown>, headers: Record<string, string> = {}
): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': sid, ...headers }, payload: { jsonrpc: '2.0', ...body } })

function rpcError (res: LightMyRequestResponse, status: number, code: number, message?: RegExp): { code: number, message: string } {
  assert.equal(res.statusCode, status, res.body.slice(0, 300))
  const body = res.json<{ jsonrpc: string, error?: { code: number, message: string } }>()
  assert.equal(body.jsonrpc, '2.0')
  assert.equal(body.error?.code, code, res.body.slice(0, 300))
  if (message !== undefined) assert.match(body.error.message, message)
  assert.ok(res.body.length < 5000, `the error is short (${res.body.length} bytes): client strings are capped`)
  return body.error
}

/** A stateless (2026-07-28) request: headers and params with `_meta`. */
function stateless (method: string, params: Record<string, unknown>, name?: string, capabilities: Record<string, unknown> = {}) {
  return {
    headers: { ...HEADERS, 'mcp-protocol-version': V, 'mcp-method': method, ...(name === undefined ? {} : { 'mcp-name': name }) },
    params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': capabilities } }
  }
}

async function post (
  app: App, s: ReturnType<typeof stateless>, method: string, extra: Record<string, unknown> = {}
): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/mcp', headers: s.headers, payload: { jsonrpc: '2.0', id: 1, method, params: { ...s.params, ...extra } } })
}

/** A body whose `"@"` placeholder is replaced by raw JSON text (a nesting bomb). */
const bomb = (body: unknown, replacement: string): string => JSON.stringify(body).replace('"@"', replacement)

// ───────────────────────────── issue 13, finding 1: aliased paths, DNS rebinding

test('13.1 aliased paths with a foreign Origin/Host are refused with 403 on every route, over raw sockets', async (t) => {
  const w = await hostile(t, {}, { listen: true })
  const init = JSON.stringify(initBody())
  const local = `127.0.0.1:${w.port}`
  const attempts: Array<[string, string, Record<string, string>, string]> = []
  for (const target of ['/%6Dcp', '/m%63p', '/mc%70', `http://x${'/mcp'}`, `http://evil.example:${w.port}/%6Dcp`]) {
    attempts.push(['POST', target, { Host: 'evil.example', Origin: 'http://evil.example', 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, init])
    attempts.push(['POST', target, { Host: local, Origin: 'http://evil.example', 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, init])
  }
  // Absolute-form with a foreign authority and a local Host header: the authority wins.
  attempts.push(['POST', 'http://evil.example/mcp', { Host: local, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, init])
  for (const target of ['/%73se', '/s%73e', 'http://evil.example/sse']) attempts.push(['GET', target, { Host: 'evil.example', Accept: 'text/event-stream' }, ''])
  for (const target of ['/%62roadcast', '/broadcas%74', 'http://evil.example/broadcast']) {
    attempts.push(['POST', target, { Host: 'evil.example', Origin: 'http://evil.example', 'Content-Type': 'application/json' }, '{"event":"phish","data":"x"}'])
  }
  for (const target of ['/%64ocs', '/docs', '/%6Detrics', '/metrics', '/messages?sessionId=x', '/%6Dessages?sessionId=x']) {
    attempts.push([target.includes('essages') ? 'POST' : 'GET', target, { Host: 'evil.example', Origin: 'http://evil.example' }, ''])
  }
  for (const [method, target, headers, body] of attempts) {
    const res = await raw(w.port, method, target, headers, body)
    assert.equal(res.status, 403, `${method} ${target} ${JSON.stringify(headers)}: ${res.body.slice(0, 200)}`)
    assert.match(res.body, /not allowed/)
  }
  assert.equal(w.app[kEngine].sessions.size, 0, 'no session was created')
  assert.equal(w.app.hub.stats().streams, 0, 'no stream was opened')
  // The same aliases from the same origin are served (the guard is by route, not by refusing odd spellings).
  const ok = await raw(w.port, 'POST', '/%6Dcp', { Host: local, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, init)
  assert.equal(ok.status, 200)
  w.assertClean()
})

// ───────────────────────────── finding 2: unbounded memory per session

test('13.2 initialize with 1 MB capabilities: 200 + -32602 naming MAX_CLIENT_INFO_BYTES, no session', async (t) => {
  const w = await hostile(t)
  const res = await w.app.inject({ method: 'POST', url: '/mcp', headers: HEADERS, payload: initBody({ experimental: { blob: 'x'.repeat(1_000_000) } }) })
  rpcError(res, 200, -32602, /MAX_CLIENT_INFO_BYTES/)
  assert.equal(res.headers['mcp-session-id'], undefined)
  assert.equal(w.app[kEngine].sessions.size, 0)
  w.assertClean()
})

test('13.2 sessions per client are capped: past MAX_SESSIONS_PER_CLIENT initialize is 429 + Retry-After', async (t) => {
  const w = await hostile(t, budgets({ sessionsPerClient: 3 }))
  for (let i = 0; i < 3; i++) await session(w.app)
  const res = await w.app.inject({ method: 'POST', url: '/mcp', headers: HEADERS, payload: initBody() })
  assert.equal(res.statusCode, 429, res.body)
  assert.ok(res.headers['retry-after'] !== undefined)
  assert.match(res.body, /MAX_SESSIONS_PER_CLIENT/)
  w.assertClean()
})

test('13.2 resources/subscribe with a 100 KB URI: -32602 naming MAX_URI_BYTES, the URI not echoed whole', async (t) => {
  const w = await hostile(t)
  const sid = await session(w.app)
  const res = await rpc(w.app, sid, { id: 1, method: 'resources/subscribe', params: { uri: `file:///${'u'.repeat(100_000)}` } })
  rpcError(res, 200, -32602, /MAX_URI_BYTES/)
  w.assertClean()
})

test('13.2 a 1 MB subscriptions/listen filter: 400 + -32602 naming MAX_LISTEN_FILTER_BYTES, no listen stream', async (t) => {
  const w = await hostile(t)
  const uris = Array.from({ length: 500 }, (_, i) => `file:///${i}/`.padEnd(2000, 'u'))
  const s = stateless('subscriptions/listen', { notifications: { resourceSubscriptions: uris } })
  rpcError(await post(w.app, s, 'subscriptions/listen'), 400, -32602, /MAX_LISTEN_FILTER_BYTES/)
  assert.equal(w.app.hub.stats().byKind.listen, 0)
  w.assertClean()
})

// ───────────────────────────── finding 3: cross-transport session ids, echoed 1 MB names

test('13.3 a Streamable HTTP session id on POST /messages is 404, and an HTTP+SSE one on /mcp is 404', async (t) => {
  const w = await hostile(t, {}, { listen: true })
  const sid = await session(w.app)
  const cross = await w.app.inject({ method: 'POST', url: `/messages?sessionId=${sid}`, headers: HEADERS, payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'n'.repeat(1_000_000) } } })
  assert.equal(cross.statusCode, 404, cross.body.slice(0, 200))
  assert.ok(cross.body.length < 5000)
  const httpSse = await openSse(`${w.url}/sse`)
  t.after(() => httpSse.close())
  const endpoint = await httpSse.next()
  assert.equal(endpoint?.event, 'endpoint')
  const httpSseId = new URL(String(endpoint?.data), w.url).searchParams.get('sessionId') ?? ''
  rpcError(await rpc(w.app, httpSseId, { id: 1, method: 'ping' }), 404, -32001)
  await httpSse.close()
  w.assertClean()
})

test('13.3 an unknown tool whose name is 1 MB: -32602 with the name capped', async (t) => {
  const w = await hostile(t)
  const sid = await session(w.app)
  const err = rpcError(await rpc(w.app, sid, { id: 1, method: 'tools/call', params: { name: 'n'.repeat(1_000_000), arguments: {} } }), 200, -32602, /Unknown tool/)
  assert.ok(err.message.length < 300, err.message.slice(0, 300))
  w.assertClean()
})

// ───────────────────────────── finding 4: phantom streams

test('13.4 80 streams aborted right after the request (GET /sse, GET /mcp) with MAX_CONNECTIONS=10 leave nothing; a new stream is accepted', async (t) => {
  const w = await hostile(t, { maxConnections: 10 }, { listen: true })
  const sid = await session(w.app)
  const targets = [
    ['/sse', ''],
    ['/mcp', ''],
    ['/mcp', `Mcp-Session-Id: ${sid}\r\n`]
  ] as const
  for (let i = 0; i < 80; i++) {
    const [path, extra] = targets[i % targets.length] ?? targets[0]
    await new Promise<void>((resolve) => {
      const s = connect(w.port, '127.0.0.1', () => {
        s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${w.port}\r\nAccept: text/event-stream\r\n${extra}\r\n`)
        // Half the sockets go at once, half at the first byte of the answer.
        if (i % 2 === 0) { s.destroy(); resolve() }
      })
      s.on('data', () => { s.destroy(); resolve() })
      s.on('error', () => resolve())
      s.on('close', () => resolve())
    })
  }
  await until(() => w.app.hub.stats().streams === 0)
  for (const path of ['/mcp', '/sse']) {
    const s = await openSse(`${w.url}${path}`)
    assert.equal(s.res.status, 200, path)
    await s.close()
  }
  await until(() => w.app.hub.stats().streams === 0)
  w.assertClean()
})

// ───────────────────────────── finding 5: one client takes every stream slot

test('13.5 one IP opening streams stops at MAX_STREAMS_PER_CLIENT with 429 + Retry-After; others still fit', async (t) => {
  const w = await hostile(t, { maxConnections: 50, ...budgets({ streamsPerClient: 5 }) }, { listen: true })
  const open = []
  for (let i = 0; i < 5; i++) {
    const s = await openSse(`${w.url}/mcp`)
    assert.equal(s.res.status, 200)
    open.push(s)
  }
  const over = await fetch(`${w.url}/mcp`, { headers: { accept: 'text/event-stream' } })
  assert.equal(over.status, 429)
  assert.ok(over.headers.get('retry-after') !== null)
  assert.match(await over.text(), /MAX_STREAMS_PER_CLIENT/)
  const httpSse = await fetch(`${w.url}/sse`, { headers: { accept: 'text/event-stream' } })
  assert.equal(httpSse.status, 429, 'the budget spans both transports')
  await httpSse.body?.cancel()
  await open.pop()?.close()
  await until(() => w.app.hub.stats().streams === 4)
  const again = await openSse(`${w.url}/mcp`)
  assert.equal(again.res.status, 200, 'a slot freed is a slot reusable')
  open.push(again)
  for (const s of open) await s.close()
  w.assertClean()
})

// ───────────────────────────── finding 6: broadcast by any client

test('13.6 a client token on /broadcast is 403; an operator broadcast over MAX_BROADCAST_BYTES is 413', async (t) => {
  const w = await hostile(t, { authTokens: ['tokA', 'tokB'], operatorTokens: ['op-token'] })
  const send = async (token: string, data: unknown) => await w.app.inject({ method: 'POST', url: '/broadcast', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, payload: { event: 'phish', data } })
  const client = await send('tokB', 'click here')
  assert.equal(client.statusCode, 403)
  assert.match(client.body, /operator/)
  const big = await send('op-token', 'x'.repeat(200_000))
  assert.equal(big.statusCode, 413)
  assert.match(big.body, /MAX_BROADCAST_BYTES/)
  assert.equal((await send('op-token', 'maintenance at 5')).statusCode, 202)
  const none = await w.app.inject({ method: 'POST', url: '/broadcast', headers: { 'content-type': 'application/json' }, payload: { event: 'x' } })
  assert.equal(none.statusCode, 401)
  w.assertClean()
})

// ───────────────────────────── finding 7: depth bombs

async function depthBombs (w: World): Promise<void> {
  const call = stateless('tools/call', { name: 'echo' }, 'echo', { elicitation: {} })
  const mrtr = stateless('tools/call', { name: 'test_input_required_result_request_state' }, 'test_input_required_result_request_state', { elicitation: {} })
  const bodies: Array<{ name: string, url?: string, headers: Record<string, string>, text: string, status: number, codes?: number[] }> = [
    { name: 'stateless tools/call arguments 20,000 deep', headers: call.headers, text: bomb({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { ...call.params, arguments: { message: '@' } } }, deep(20_000)), status: 400, codes: [-32600] },
    { name: 'MRTR inputResponses 6,000 deep', headers: mrtr.headers, text: bomb({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { ...mrtr.params, arguments: {}, inputResponses: '@' } }, deep(6_000)), status: 400, codes: [-32600] },
    { name: 'initialize capabilities 30,000 deep', headers: HEADERS, text: bomb(initBody('@'), deep(30_000)), status: 400, codes: [-32600] },
    { name: '/broadcast data 5,000 deep', url: '/broadcast', headers: { 'content-type': 'application/json' }, text: bomb({ event: 'x', data: '@' }, deep(5_000)), status: 400 }
  ]
  for (const b of bodies) {
    const res = await w.app.inject({ method: 'POST', url: b.url ?? '/mcp', headers: b.headers, payload: b.text })
    assert.equal(res.statusCode, b.status, `${b.name}: ${res.body.slice(0, 200)}`)
    if (b.codes !== undefined) {
      const body = res.json<{ id: unknown, error: { code: number } }>()
      assert.ok(b.codes.includes(body.error.code), `${b.name}: ${body.error.code}`)
      assert.equal(body.id, null)
    } else {
      assert.match(res.body, /deep|depth|nest/i, b.name)
    }
  }
  assert.equal(w.app[kEngine].sessions.size, 0)
}

test('13.7 depth bombs (arguments 20,000, broadcast 5,000, inputResponses 6,000, capabilities 30,000 deep) are 400s', async (t) => {
  const w = await hostile(t, { fixtures: 'conformance' })
  await depthBombs(w)
  w.assertClean()
})

test('13.7 the same depth bombs with REDIS_URL are 400s', { skip: missing('redis-server'), timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t)
  const w = await hostile(t, { fixtures: 'conformance', redisUrl: redis.url })
  await depthBombs(w)
  w.assertClean()
})

// ───────────────────────────── finding 8: failed authentication rate limited

test('13.8 12 wrong tokens with RATE_LIMIT_MAX=5 and AUTH_FAILURE_MAX=5 turn into 429 + Retry-After', async (t) => {
  const w = await hostile(t, { authTokens: ['right-token'], rateLimitMax: 5, authFailureMax: 5 })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    const res = await w.app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, authorization: `Bearer guess-${i}` }, payload: initBody() })
    statuses.push(res.statusCode)
    if (res.statusCode === 429) assert.ok(res.headers['retry-after'] !== undefined)
  }
  assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401])
  assert.ok(statuses.slice(5).every((s) => s === 429), statuses.join(','))
  w.assertClean()
})

// ───────────────────────────── finding 9: JWT without exp

test('13.9 a validly signed JWT without exp is 401 invalid_token; with exp it passes', async (t) => {
  const resource = 'http://127.0.0.1:8080/mcp'
  const dir = mkdtempSync(join(tmpdir(), 'hostile-jwt-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const file = join(dir, 'key.pem')
  writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }))
  const oauth = { resource, issuer: undefined, jwksUrl: undefined, publicKeyFile: file, authorizationServers: [], scopesSupported: [] }
  const w = await hostile(t, { oauth })
  const sign = async (exp: boolean) => {
    const jwt = new SignJWT({ scope: 'tools:read' }).setProtectedHeader({ alg: 'ES384' }).setSubject('u').setAudience(resource).setIssuedAt()
    if (exp) jwt.setExpirationTime('5m')
    return await jwt.sign(privateKey)
  }
  const noExp = await w.app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, authorization: `Bearer ${await sign(false)}` }, payload: initBody() })
  assert.equal(noExp.statusCode, 401)
  assert.match(String(noExp.headers['www-authenticate']), /invalid_token/)
  const ok = await w.app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, authorization: `Bearer ${await sign(true)}` }, payload: initBody() })
  assert.equal(ok.statusCode, 200)
  w.assertClean()
})

// ───────────────────────────── finding 10: a listening client keeps its session

test('13.10 a session with an open GET /mcp stream outlives SESSION_IDLE_TIMEOUT_MS; a silent one idles out (404)', async (t) => {
  const w = await hostile(t, { sessionIdleTimeoutMs: 1000 }, { listen: true })
  const kept = await session(w.app)
  const idle = await session(w.app)
  const stream = await openSse(`${w.url}/mcp`, { headers: { 'mcp-session-id': kept } })
  t.after(() => stream.close())
  assert.equal(stream.res.status, 200)
  // The event: the silent session is evicted. Then one more timeout passes for the kept one.
  await until(() => w.app[kEngine].sessions.size === 1, 10_000)
  rpcError(await rpc(w.app, idle, { id: 1, method: 'ping' }), 404, -32001)
  const evictedAt = Date.now()
  await until(() => Date.now() - evictedAt > 1200, 3000)
  const res = await rpc(w.app, kept, { id: 2, method: 'ping' })
  assert.equal(res.statusCode, 200, res.body)
  await stream.close()
  w.assertClean()
})

// ───────────────────────────── finding 11: CPU per subscription

test('13.11 300 subscriptions to 100 KB URIs of equal length (budgets raised) take bounded time; the 301st is -32602', async (t) => {
  const w = await hostile(t, budgets({ uriBytes: 128 * 1024, subscriptionsPerSession: 300 }))
  const sid = await session(w.app)
  const started = performance.now()
  for (let i = 0; i < 300; i++) {
    const res = await rpc(w.app, sid, { id: i, method: 'resources/subscribe', params: { uri: `file:///${String(i).padStart(4, '0')}/${'u'.repeat(100_000)}` } })
    assert.deepEqual(res.json().result, {}, res.body.slice(0, 200))
  }
  const ms = performance.now() - started
  t.diagnostic(`300 × 100 KB subscriptions: ${ms.toFixed(0)} ms`)
  assert.ok(ms < 15_000, `${ms.toFixed(0)} ms`)
  rpcError(await rpc(w.app, sid, { id: 301, method: 'resources/subscribe', params: { uri: `file:///x/${'u'.repeat(100_000)}` } }), 200, -32602, /MAX_SUBSCRIPTIONS_PER_SESSION/)
  w.assertClean()
})

// ───────────────────────────── finding 12: smaller ones

test('13.12 the HTTP+SSE sessionId never reaches the logs', async (t) => {
  const w = await hostile(t, {}, { listen: true })
  const httpSse = await openSse(`${w.url}/sse`)
  t.after(() => httpSse.close())
  const endpoint = await httpSse.next()
  const sid = new URL(String(endpoint?.data), w.url).searchParams.get('sessionId') ?? ''
  assert.ok(sid.length > 10)
  for (const body of [{ jsonrpc: '2.0', id: 0, method: 'initialize', params: initBody().params }, { jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'nope' }]) {
    const res = await fetch(`${w.url}/messages?sessionId=${sid}`, { method: 'POST', headers: HEADERS, body: JSON.stringify(body) })
    assert.equal(res.status, 202)
  }
  await httpSse.close()
  await until(() => w.app.hub.stats().streams === 0)
  const urls = w.lines.filter((l) => typeof l.url === 'string').map((l) => String(l.url))
  assert.ok(urls.some((u) => u.startsWith('/messages?sessionId=')), 'the requests were logged')
  assert.deepEqual(urls.filter((u) => u.includes(sid)), [], 'the sessionId is not in any logged URL')
  w.assertClean()
})

test('13.12 stateless requests are capped per client: past MAX_INFLIGHT_PER_CLIENT → 429 + -32000', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  const { Type } = await import('@sinclair/typebox')
  const w = await hostile(t, budgets({ inflightPerClient: 1 }), {
    setup: (app) => { app.mcp.tool({ name: 'wait', inputSchema: Type.Object({}), handler: async () => { started(); await gate; return { content: [{ type: 'text', text: 'done' }] } } }) }
  })
  const s = stateless('tools/call', { name: 'wait', arguments: {} }, 'wait')
  const first = post(w.app, s, 'tools/call')
  await running
  rpcError(await post(w.app, s, 'tools/call'), 429, -32000, /MAX_INFLIGHT_PER_CLIENT/)
  release()
  assert.equal((await first).statusCode, 200)
  w.assertClean()
})

// ───────────────────────────── issue 16, finding 2: an answer for an id of another session

test('16.2 an answer posted in another session does not complete the call; the right session\'s answer does', async (t) => {
  const w = await hostile(t, { fixtures: 'conformance' }, { listen: true })
  const elicitCaps = { elicitation: {} }
  const init = async () => {
    const res = await w.app.inject({ method: 'POST', url: '/mcp', headers: HEADERS, payload: initBody(elicitCaps) })
    return String(res.headers['mcp-session-id'])
  }
  const a = await init()
  const b = await init()
  const h = (sid: string) => ({ ...HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })
  const call = await openSse(`${w.url}/mcp`, { method: 'POST', headers: { ...h(a), 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'test_elicitation', arguments: { message: 'who?' } } }) })
  t.after(() => { call.close().catch(ignore('the call stream may already be gone')) })
  let request: { id: string | number, method: string } | undefined
  while (request === undefined) {
    const ev = await call.next()
    assert.ok(ev !== undefined, 'the call stream ended before asking')
    if (ev.data === '') continue
    const msg = JSON.parse(ev.data) as { id?: string | number, method?: string }
    if (msg.method === 'elicitation/create' && msg.id !== undefined) request = { id: msg.id, method: msg.method }
  }
  const answer = (content: Record<string, unknown>) => ({ jsonrpc: '2.0', id: request?.id, result: { action: 'accept', content } })
  const foreign = await w.app.inject({ method: 'POST', url: '/mcp', headers: h(b), payload: answer({ username: 'mallory' }) })
  assert.equal(foreign.statusCode, 202)
  const own = await w.app.inject({ method: 'POST', url: '/mcp', headers: h(a), payload: answer({ username: 'alice' }) })
  assert.equal(own.statusCode, 202)
  let result: string | undefined
  while (result === undefined) {
    const ev = await call.next()
    assert.ok(ev !== undefined)
    if (ev.data === '') continue
    const msg = JSON.parse(ev.data) as { id?: number, result?: unknown }
    if (msg.id === 7) result = JSON.stringify(msg.result)
  }
  assert.match(result, /alice/)
  assert.doesNotMatch(result, /mallory/)
  // The request stream ends with the response; abort our side without waiting on the reader.
  call.close().catch(ignore('the call stream may already be gone'))
  w.assertClean()
})

// ───────────────────────────── issue 16, finding 4: MRTR consent reused

test('16.4 MRTR: a requestState for one URI is refused for another; answers without state are not used; a state is single use', async (t) => {
  const w = await hostile(t, {}, {
    setup: (app) => {
      for (const uri of ['vault://public-notes', 'vault://payroll']) {
        app.mcp.resource({
          uri,
          name: uri.slice(8),
          read: async (u, ctx) => {
            const r = await ctx.request('elicitation/create', { message: `Read ${u}?`, requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } } } }, { key: 'consent' })
            return { contents: [{ uri: u, text: `consented=${JSON.stringify(r)}` }] }
          }
        })
      }
    }
  })
  const read = async (uri: string, extra: Record<string, unknown> = {}) => {
    const s = stateless('resources/read', { uri, name: 'same' }, uri, { elicitation: {} })
    return await post(w.app, s, 'resources/read', extra)
  }
  const first = await read('vault://public-notes')
  assert.equal(first.statusCode, 200, first.body)
  const state = first.json<{ result: { requestState?: string } }>().result.requestState
  assert.ok(typeof state === 'string', first.body.slice(0, 300))
  const answers = { consent: { action: 'accept', content: { ok: true } } }
  // The consent for public-notes, replayed on payroll with the same extra `name`.
  rpcError(await read('vault://payroll', { requestState: state, inputResponses: answers }), 200, -32602)
  // Answers without a state that asked for them: ignored, the server asks again.
  const bare = await read('vault://payroll', { inputResponses: answers })
  assert.equal(bare.statusCode, 200)
  assert.ok('requestState' in bare.json<{ result: Record<string, unknown> }>().result, 'asked again')
  // The right URI with its state: served once; the same state again is refused.
  const ok = await read('vault://public-notes', { requestState: state, inputResponses: answers })
  assert.match(ok.body, /consented=/, ok.body.slice(0, 300))
  rpcError(await read('vault://public-notes', { requestState: state, inputResponses: answers }), 200, -32602)
  w.assertClean()
})

// ───────────────────────────── issue 16, finding 8: unawaited responses

test('16.8 1 MB JSON-RPC responses nobody awaits are 202 and kept nowhere (in memory and with Redis)', { skip: missing('redis-server'), timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t)
  for (const redisUrl of [undefined, redis.url]) {
    const w = await hostile(t, { redisUrl })
    const sid = await session(w.app)
    const blob = 'r'.repeat(1_000_000)
    for (let i = 0; i < 20; i++) {
      const res = await rpc(w.app, sid, { id: `srv-${i}`, result: { blob } })
      assert.equal(res.statusCode, 202, res.body.slice(0, 200))
      const err = await rpc(w.app, sid, { id: `srv-x${i}`, error: { code: 1, message: blob } })
      assert.equal(err.statusCode, 202)
    }
    // Over BODY_LIMIT: 413, not a relay.
    const over = await rpc(w.app, sid, { id: 'srv-big', result: { blob: blob + blob } })
    assert.equal(over.statusCode, 413)
    assert.equal((await rpc(w.app, sid, { id: 99, method: 'ping' })).statusCode, 200)
    w.assertClean()
  }
})
