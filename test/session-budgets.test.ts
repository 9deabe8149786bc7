import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { request as httpRequest } from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { Type } from '@sinclair/typebox'
import type { LightMyRequestResponse } from 'fastify'
import { build, injectSession, listen, testConfig } from './helper.js'
import { openSse } from './sse-client.js'
import { buildApp, type App } from '../src/app.js'
import { redactUrl } from '../plugins/request-log.js'
import { kEngine } from '../src/mcp/engine.js'

// Sessions: budgets, ownership and lifecycle (issue 13 findings 2, 3, 4, 7, 10, 12).

const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }
const V = '2026-07-28'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
/** Heap used after full collections, in MB. */
function heapMb (): number {
  for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed / 1024 / 1024
}

async function initialize (app: App, capabilities: unknown = {}, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...HEADERS, ...headers },
    payload: typeof capabilities === 'string'
      ? capabilities
      : { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 't', version: '1' } } }
  })
}

const session = injectSession

const rpc = (app: App, sid: string, body: Record<string, unknown>): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': sid }, payload: { jsonrpc: '2.0', ...body } })

/** A stateless (2026-07-28) request's headers and `_meta`. */
function stateless (method: string, params: Record<string, unknown>, name?: string) {
  return {
    headers: { ...HEADERS, 'mcp-protocol-version': V, 'mcp-method': method, ...(name === undefined ? {} : { 'mcp-name': name }) },
    params: {
      ...params,
      _meta: { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': {} }
    }
  }
}

/** Waits (bounded) for a condition the server reaches asynchronously. */
async function until (ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)

/** An app whose pino lines are captured, to prove nothing is logged at error level. */
async function loggedApp (t: TestContext): Promise<{ app: App, lines: Array<{ level: number, msg?: string }> }> {
  const lines: Array<{ level: number, msg?: string }> = []
  const sink = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l)); cb() } })
  const app = await buildApp({ ...testConfig({ logLevel: 'info', rateLimitMax: 0 }), logger: { level: 'info', stream: sink } })
  t.after(() => app.close())
  await app.ready()
  return { app, lines }
}

test('initialize with 1 MB capabilities is refused with -32602 and creates no session; 200 of them keep no memory', async (t) => {
  const app = await build(t, { rateLimitMax: 0 })
  const big = { experimental: { blob: 'x'.repeat(1_000_000) } }
  const first = await initialize(app, big)
  assert.equal(first.statusCode, 200)
  assert.equal(first.json().error.code, -32602)
  assert.match(first.json().error.message, /MAX_CLIENT_INFO_BYTES/)
  assert.equal(first.headers['mcp-session-id'], undefined)
  assert.equal(app[kEngine].sessions.size, 0)

  const before = heapMb()
  for (let i = 0; i < 200; i++) {
    const res = await initialize(app, { experimental: { blob: `${i}`.padEnd(1_000_000, 'y') } })
    assert.equal(res.json().error?.code, -32602)
  }
  const grown = heapMb() - before
  t.diagnostic(`heap growth after 200 × 1 MB initialize: ${grown.toFixed(1)} MB`)
  assert.ok(grown < 8, `heap grew ${grown.toFixed(1)} MB`)
  assert.equal(app[kEngine].sessions.size, 0)
  // A normal client still gets in; its clientInfo fields are capped.
  const ok = await initialize(app, {}, {})
  assert.equal(ok.statusCode, 200)
  const long = await app.inject({ method: 'POST', url: '/mcp', headers: HEADERS, payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'n'.repeat(5000), version: '1' } } } })
  const record = await app[kEngine].sessions.get(String(long.headers['mcp-session-id']))
  assert.ok(record !== undefined && record.clientInfo !== null && record.clientInfo.name.length <= 256)
})

test('a client at both budgets (MAX_SESSIONS_PER_CLIENT sessions, each at MAX_CLIENT_INFO_BYTES) holds a bounded heap', async (t) => {
  const app = await build(t, { rateLimitMax: 0 })
  const { sessionsPerClient, clientInfoBytes } = app.config.budgets
  await session(app)
  const before = heapMb()
  let refused = 0
  for (let i = 0; i < sessionsPerClient + 20; i++) {
    const res = await initialize(app, { experimental: { blob: `${i}`.padEnd(clientInfoBytes - 200, 'c') } })
    if (res.statusCode === 429) refused++
  }
  const grown = heapMb() - before
  const perSession = grown * 1024 / (sessionsPerClient - 1)
  t.diagnostic(`${sessionsPerClient} sessions × ${clientInfoBytes} B capabilities: +${grown.toFixed(1)} MB (${perSession.toFixed(1)} KB per session), ${refused} refused`)
  assert.equal(refused, 21)
  assert.ok(grown < 10, `${grown.toFixed(1)} MB`)
})

test('past MAX_SESSIONS_PER_CLIENT initialize gets 429 + Retry-After naming the budget; after DELETE a new one is accepted', async (t) => {
  const app = await build(t, { rateLimitMax: 0, budgets: { ...testConfig().budgets, sessionsPerClient: 3 } })
  const ids = [await session(app), await session(app), await session(app)]
  const over = await initialize(app)
  assert.equal(over.statusCode, 429)
  assert.ok(Number(over.headers['retry-after']) > 0)
  assert.equal(over.json().error.code, -32000)
  assert.match(over.json().error.message, /MAX_SESSIONS_PER_CLIENT/)
  assert.equal(over.headers['mcp-session-id'], undefined)
  assert.equal(app[kEngine].sessions.size, 3)

  const del = await app.inject({ method: 'DELETE', url: '/mcp', headers: { 'mcp-session-id': ids[0] } })
  assert.equal(del.statusCode, 204)
  assert.equal((await initialize(app)).statusCode, 200)
  assert.equal((await initialize(app)).statusCode, 429)
  // A refused initialize (bad params) gives its unit back.
  await app.inject({ method: 'DELETE', url: '/mcp', headers: { 'mcp-session-id': ids[1] } })
  assert.equal((await initialize(app, { blob: 'z'.repeat(100_000) })).json().error.code, -32602)
  assert.equal((await initialize(app)).statusCode, 200)
})

test('the session budget spans both transports: GET /sse over it is 429, and a closed HTTP+SSE stream gives its unit back', async (t) => {
  const { app, url } = await listen(t, { rateLimitMax: 0, budgets: { ...testConfig().budgets, sessionsPerClient: 2 } })
  const a = await session(app)
  const httpSse = await openSse(`${url}/sse`)
  assert.equal(httpSse.res.status, 200)
  assert.equal((await httpSse.next())?.event, 'endpoint')
  const refused = await fetch(`${url}/sse`, { headers: { accept: 'text/event-stream' } })
  assert.equal(refused.status, 429)
  assert.ok(Number(refused.headers.get('retry-after')) > 0)
  assert.equal((await initialize(app)).statusCode, 429)
  await httpSse.close()
  await until(() => app[kEngine].ledger.size === 1)
  assert.equal((await initialize(app)).statusCode, 200)
  assert.ok(a.length > 10)
})

test('a session id works only on the transport that created it (404 across)', async (t) => {
  const { app, url } = await listen(t, { rateLimitMax: 0 })
  const sid = await session(app)
  const cross = await app.inject({
    method: 'POST',
    url: `/messages?sessionId=${encodeURIComponent(sid)}`,
    headers: { 'content-type': 'application/json' },
    payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x'.repeat(100_000), arguments: {} } }
  })
  assert.equal(cross.statusCode, 404)
  assert.equal(cross.json().error.code, -32001)

  const httpSse = await openSse(`${url}/sse`)
  t.after(() => httpSse.close())
  const endpoint = await httpSse.next()
  const httpSseId = new URL(String(endpoint?.data), url).searchParams.get('sessionId') ?? ''
  assert.ok(httpSseId.length > 10)
  const onMcp = await rpc(app, httpSseId, { id: 1, method: 'ping' })
  assert.equal(onMcp.statusCode, 404)
  const stream = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-session-id': httpSseId } })
  assert.equal(stream.status, 404)
  assert.equal((await app.inject({ method: 'DELETE', url: '/mcp', headers: { 'mcp-session-id': httpSseId } })).statusCode, 404)
})

test('a Streamable session filled with maximal messages then DELETEd gives its memory back', async (t) => {
  const size = 100_000
  // Rings as large as the config allows, so the test measures what a session owns, not the ring bound.
  const budgets = { ...testConfig().budgets, replayBufferBytes: 64 * 1024 * 1024, replayClientBytes: 256 * 1024 * 1024 }
  const { app, url } = await listen(t, { rateLimitMax: 0, budgets }, (a) => {
    a.mcp.tool({
      name: 'flood',
      inputSchema: Type.Object({ n: Type.Number() }),
      handler: async ({ n }, ctx) => {
        for (let i = 0; i < n; i++) await ctx.log('info', `${i}`.padEnd(size, 'f'))
        return { content: [{ type: 'text', text: 'done' }] }
      }
    })
  })
  const warm = await session(app)
  await app.inject({ method: 'DELETE', url: '/mcp', headers: { 'mcp-session-id': warm } })
  const before = heapMb()
  const sid = await session(app)
  // Three request streams (each a resumable ring of its own) and the session stream.
  for (let c = 0; c < 3; c++) {
    const res = await fetch(`${url}/mcp`, { method: 'POST', headers: { ...HEADERS, 'mcp-session-id': sid }, body: JSON.stringify({ jsonrpc: '2.0', id: c + 1, method: 'tools/call', params: { name: 'flood', arguments: { n: 100 } } }) })
    assert.match(String(res.headers.get('content-type')), /event-stream/)
    // The hub may drop this reader as a slow consumer; what was published stays in the ring either way.
    await res.text().catch(() => '')
    await until(() => app[kEngine].server.inflight === 0)
  }
  for (let i = 0; i < 100; i++) await app.hub.publish(`s:${sid}:g`, { event: 'message', data: `${i}`.padEnd(size, 'g') })
  const full = heapMb() - before
  assert.ok(full > 20, `the rings hold ${full.toFixed(1)} MB`)
  assert.equal((await app.inject({ method: 'DELETE', url: '/mcp', headers: { 'mcp-session-id': sid } })).statusCode, 204)
  const left = heapMb() - before
  t.diagnostic(`rings filled: +${full.toFixed(1)} MB; after DELETE: +${left.toFixed(1)} MB`)
  assert.ok(left < 5, `${left.toFixed(1)} MB stayed after DELETE`)
})

test('a subscriptions/listen filter over MAX_LISTEN_FILTER_BYTES (1 MB) is refused with -32602 and opens nothing', async (t) => {
  const { app, url } = await listen(t, { rateLimitMax: 0 })
  const uris = Array.from({ length: 500 }, (_, i) => `file:///${i}/`.padEnd(2000, 'u'))
  const { headers, params } = stateless('subscriptions/listen', { notifications: { resourceSubscriptions: uris } })
  const controller = new AbortController()
  t.after(() => controller.abort())
  const res = await fetch(`${url}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscriptions/listen', params }), signal: controller.signal })
  assert.equal(res.status, 400)
  const body = await res.json() as { error: { code: number, message: string } }
  assert.equal(body.error.code, -32602)
  assert.match(body.error.message, /MAX_LISTEN_FILTER_BYTES/)
  assert.equal(app.hub.stats().byKind.listen, 0)
})

test('depth bombs (stateless arguments 20,000 deep, MRTR inputResponses 6,000 deep, capabilities 30,000 deep) are 400s, no 5xx, no error log line', async (t) => {
  const { app, lines } = await loggedApp(t)
  const s = stateless('tools/call', { name: 'echo' }, 'echo')
  const bodies = [
    { headers: s.headers, text: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { ...s.params, arguments: { message: '@' } } }).replace('"@"', deep(20_000)) },
    { headers: s.headers, text: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { ...s.params, arguments: { message: 'x' }, inputResponses: '@' } }).replace('"@"', deep(6_000)) },
    { headers: HEADERS, text: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: '@', clientInfo: { name: 't', version: '1' } } }).replace('"@"', deep(30_000)) }
  ]
  for (const b of bodies) {
    const res = await app.inject({ method: 'POST', url: '/mcp', headers: b.headers, payload: b.text })
    assert.equal(res.statusCode, 400, res.body.slice(0, 200))
    const code = res.json().error.code
    assert.ok(code === -32600 || code === -32700, String(code))
    assert.equal(res.json().id, null)
  }
  assert.equal(app[kEngine].sessions.size, 0)
  assert.deepEqual(lines.filter((l) => l.level >= 50), [])
})

test('an open GET /mcp stream keeps its session alive past SESSION_IDLE_TIMEOUT_MS; without one it idles out', async (t) => {
  const { app, url } = await listen(t, { rateLimitMax: 0, sessionIdleTimeoutMs: 1000 })
  const kept = await session(app)
  const idle = await session(app)
  const stream = await openSse(`${url}/mcp`, { headers: { 'mcp-session-id': kept } })
  t.after(() => stream.close())
  assert.equal(stream.res.status, 200)
  // The behaviour under test is time passing: 3 idle timeouts.
  await new Promise((resolve) => setTimeout(resolve, 3000))
  assert.equal((await rpc(app, kept, { id: 1, method: 'ping' })).statusCode, 200)
  assert.equal((await rpc(app, idle, { id: 1, method: 'ping' })).statusCode, 404)
})

test('a POST /mcp tools/call whose client disconnects aborts the handler\'s signal (real port)', async (t) => {
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  let aborted: (reason: unknown) => void = () => {}
  const abortedP = new Promise<unknown>((resolve) => { aborted = resolve })
  const { app, url } = await listen(t, { rateLimitMax: 0 }, (a) => {
    a.mcp.tool({
      name: 'hang',
      inputSchema: Type.Object({}),
      handler: async (_args, ctx) => await new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => { aborted(ctx.signal.reason); resolve({ content: [] }) })
        started()
      })
    })
  })
  const sid = await session(app)
  const req = httpRequest(`${url}/mcp`, { method: 'POST', headers: { ...HEADERS, 'mcp-session-id': sid } })
  req.on('error', () => {})
  req.end(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'hang', arguments: {} } }))
  await running
  req.destroy()
  const reason = await Promise.race([abortedP, new Promise((resolve) => setTimeout(() => resolve('timeout'), 5000))])
  assert.equal(reason, 'client disconnected')
  await until(() => app[kEngine].server.inflight === 0)
})

test('when an HTTP+SSE /sse stream closes, the calls in flight of its session are aborted', async (t) => {
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  let aborted: () => void = () => {}
  const abortedP = new Promise<string>((resolve) => { aborted = () => resolve('aborted') })
  const { app, url } = await listen(t, { rateLimitMax: 0 }, (a) => {
    a.mcp.tool({
      name: 'hang',
      inputSchema: Type.Object({}),
      handler: async (_args, ctx) => await new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => { aborted(); resolve({ content: [] }) })
        started()
      })
    })
  })
  const httpSse = await openSse(`${url}/sse`)
  const endpoint = new URL(String((await httpSse.next())?.data), url)
  const post = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'hang', arguments: {} } }) })
  assert.equal(post.status, 202)
  await running
  await httpSse.close()
  assert.equal(await Promise.race([abortedP, new Promise((resolve) => setTimeout(() => resolve('timeout'), 5000))]), 'aborted')
  await until(() => app[kEngine].sessions.size === 0)
})

test('past MAX_INFLIGHT_PER_CLIENT concurrent stateless requests a client gets 429 + -32000', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  const app = await build(t, { rateLimitMax: 0, budgets: { ...testConfig().budgets, inflightPerClient: 1 } }, (a) => {
    a.mcp.tool({ name: 'wait', inputSchema: Type.Object({}), handler: async () => { started(); await gate; return { content: [{ type: 'text', text: 'done' }] } } })
  })
  const s = stateless('tools/call', { name: 'wait', arguments: {} }, 'wait')
  const send = (id: number) => app.inject({ method: 'POST', url: '/mcp', headers: s.headers, payload: { jsonrpc: '2.0', id, method: 'tools/call', params: s.params } })
  const first = send(1)
  await running
  const second = await send(2)
  assert.equal(second.statusCode, 429)
  assert.equal(second.json().error.code, -32000)
  assert.match(second.json().error.message, /MAX_INFLIGHT_PER_CLIENT/)
  release()
  assert.equal((await first).json().result.content[0].text, 'done')
  assert.equal((await send(3)).statusCode, 200)
})

test('error messages never echo a client string whole', async (t) => {
  const app = await build(t, { rateLimitMax: 0 })
  const sid = await session(app)
  const huge = 'n'.repeat(500_000)
  const cases = [
    { id: 1, method: 'tools/call', params: { name: huge, arguments: {} } },
    { id: 2, method: 'prompts/get', params: { name: huge } },
    { id: 3, method: huge },
    { id: 4, method: 'resources/read', params: { uri: `file:///${huge}` } }
  ]
  for (const c of cases) {
    const res = await rpc(app, sid, c)
    assert.ok(res.body.length < 5000, `${c.id}: ${res.body.length} bytes`)
    assert.ok(res.json().error !== undefined)
  }
})

test('the HTTP+SSE sessionId never reaches the request log URL', () => {
  assert.equal(redactUrl('/messages?sessionId=abc123&x=1'), '/messages?sessionId=[redacted]&x=1')
})
