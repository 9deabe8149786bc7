import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { LightMyRequestResponse } from 'fastify'
import { build, listen } from './helper.js'
import { openSse } from './sse-client.js'
import { PROTOCOL_VERSIONS } from '../src/meta.js'
import type { App } from '../src/app.js'
import { kEngine } from '../src/mcp/engine.js'

// The stateless era (MCP 2026-07-28) on /mcp, through app.inject and, for streams, a real port.

const V = '2026-07-28'
const meta = (extra: Record<string, unknown> = {}) => ({
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientInfo': { name: 'test', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': { elicitation: {}, sampling: {} },
  ...extra
})

interface Call {
  id?: number | string,
  params?: Record<string, unknown>,
  headers?: Record<string, string | undefined>,
  meta?: Record<string, unknown> | null
}

/** A conformant stateless POST; `headers` override (undefined removes), `meta: null` drops _meta. */
function headersFor (
  method: string, params: Record<string, unknown> = {}, extra: Record<string, string | undefined> = {}
): Record<string, string> {
  const name = method === 'resources/read' ? params.uri : method === 'tools/call' || method === 'prompts/get' ? params.name : undefined
  const h: Record<string, string | undefined> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': V,
    'mcp-method': method,
    ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
    ...extra
  }
  return Object.fromEntries(Object.entries(h).filter((e): e is [string, string] => e[1] !== undefined))
}

/** A 2025 client's initialize, with no 2026 markers. */
async function initialize (app: App): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    payload: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'old', version: '1' } } }
  })
}

async function call (app: App, method: string, c: Call = {}): Promise<LightMyRequestResponse> {
  const params = { ...c.params, ...(c.meta === null ? {} : { _meta: meta(c.meta) }) }
  return await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: headersFor(method, c.params, c.headers),
    payload: { jsonrpc: '2.0', id: c.id ?? 1, method, params }
  })
}

test('a request with 2026 _meta is served statelessly: no session, resultType, caching hints, serverInfo', async (t) => {
  const app = await build(t)
  const res = await call(app, 'tools/list')
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['mcp-session-id'], undefined)
  const { result } = res.json()
  assert.equal(result.resultType, 'complete')
  assert.equal(result.ttlMs, 60_000)
  assert.equal(result.cacheScope, 'public')
  assert.equal(result._meta['io.modelcontextprotocol/serverInfo'].name, 'sse-mcp-server')
  assert.deepEqual(result.tools.map((x: { name: string }) => x.name).sort(), ['current_time', 'echo'])
  assert.equal(app[kEngine].sessions.size, 0)

  const discover = (await call(app, 'server/discover')).json().result
  assert.deepEqual(discover.supportedVersions, [...PROTOCOL_VERSIONS])
  assert.ok(discover.capabilities.tools.listChanged && discover.capabilities.resources.subscribe)
  assert.equal(typeof discover.ttlMs, 'number')

  const echo = (await call(app, 'tools/call', { params: { name: 'echo', arguments: { message: 'hi' } } })).json().result
  assert.deepEqual(echo.content, [{ type: 'text', text: 'hi' }])
  assert.equal(echo.resultType, 'complete')
  assert.equal(echo.ttlMs, undefined, 'tool results are not cacheable')
})

test('initialize without 2026 markers still opens a session (dual era on one endpoint)', async (t) => {
  const app = await build(t)
  const res = await initialize(app)
  assert.equal(res.statusCode, 200)
  assert.ok(res.headers['mcp-session-id'])
  assert.equal(res.json().result.protocolVersion, '2025-11-25')
  assert.equal(res.json().result.resultType, undefined, 'session-era results keep their 2025 shape')
})

test('a session request that claims 2026-07-28 is refused: sessions speak the 2025 versions', async (t) => {
  const app = await build(t)
  const init = await initialize(app)
  const res = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': String(init.headers['mcp-session-id']), 'mcp-protocol-version': V },
    payload: { jsonrpc: '2.0', id: 2, method: 'tools/list' }
  })
  assert.equal(res.statusCode, 400)
  assert.match(res.json().error.message, /stateless: send it without Mcp-Session-Id/)
})

test('_meta, version and header validation: -32602, -32020, -32022 with HTTP 400 and the request id', async (t) => {
  const app = await build(t)
  const cases: Array<[string, LightMyRequestResponse, number]> = [
    ['no _meta', await call(app, 'server/discover', { id: 'a', meta: null }), -32602],
    ['no clientCapabilities', await call(app, 'tools/list', { id: 'a', meta: { 'io.modelcontextprotocol/clientCapabilities': undefined } }), -32602],
    ['bad logLevel', await call(app, 'tools/list', { id: 'a', meta: { 'io.modelcontextprotocol/logLevel': 'loud' } }), -32602],
    ['no version header', await call(app, 'tools/list', { id: 'a', headers: { 'mcp-protocol-version': undefined } }), -32020],
    ['version header differs', await call(app, 'tools/list', { id: 'a', meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } }), -32020],
    ['no Mcp-Method', await call(app, 'tools/list', { id: 'a', headers: { 'mcp-method': undefined } }), -32020],
    ['Mcp-Method differs in case', await call(app, 'tools/list', { id: 'a', headers: { 'mcp-method': 'TOOLS/LIST' } }), -32020],
    ['no Mcp-Name', await call(app, 'tools/call', { id: 'a', params: { name: 'echo', arguments: { message: 'x' } }, headers: { 'mcp-name': undefined } }), -32020],
    ['Mcp-Name differs', await call(app, 'tools/call', { id: 'a', params: { name: 'echo', arguments: { message: 'x' } }, headers: { 'mcp-name': 'current_time' } }), -32020],
    ['bad Base64 in Mcp-Name', await call(app, 'tools/call', { id: 'a', params: { name: 'echo', arguments: { message: 'x' } }, headers: { 'mcp-name': '=?base64?ZWNobw?=' } }), -32020]
  ]
  for (const [what, res, code] of cases) {
    assert.equal(res.statusCode, 400, what)
    assert.equal(res.json().error.code, code, what)
    assert.equal(res.json().id, 'a', what)
  }
  const unsupported = await call(app, 'tools/list', { meta: { 'io.modelcontextprotocol/protocolVersion': '1900-01-01' }, headers: { 'mcp-protocol-version': '1900-01-01' } })
  assert.equal(unsupported.statusCode, 400)
  assert.equal(unsupported.json().error.code, -32022)
  assert.deepEqual(unsupported.json().error.data, { supported: [...PROTOCOL_VERSIONS], requested: '1900-01-01' })
  const sessionVersion = await call(app, 'tools/list', { meta: { 'io.modelcontextprotocol/protocolVersion': '2025-11-25' }, headers: { 'mcp-protocol-version': '2025-11-25' } })
  assert.equal(sessionVersion.json().error.code, -32022)
  assert.match(sessionVersion.json().error.message, /initialize/)

  const b64 = await call(app, 'tools/call', { params: { name: 'echo', arguments: { message: 'x' } }, headers: { 'mcp-name': `=?base64?${Buffer.from('echo').toString('base64')}?=` } })
  assert.equal(b64.statusCode, 200, 'a Base64-encoded Mcp-Name is decoded before comparing')
})

test('x-mcp-header parameters must be mirrored into Mcp-Param-* headers (numbers compare numerically)', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const args = { region: 'eu-west-1', count: 42 }
  const send = async (headers: Record<string, string | undefined>) => await call(app, 'tools/call', { params: { name: 'test_header_params', arguments: args }, headers })
  assert.equal((await send({ 'mcp-param-region': 'eu-west-1', 'mcp-param-count': '42' })).statusCode, 200)
  assert.equal((await send({ 'mcp-param-region': 'eu-west-1', 'mcp-param-count': '42.0' })).statusCode, 200)
  assert.equal((await send({ 'mcp-param-region': `=?base64?${Buffer.from('eu-west-1').toString('base64')}?=`, 'mcp-param-count': '42' })).statusCode, 200)
  for (const headers of [{ 'mcp-param-count': '42' }, { 'mcp-param-region': 'us-east-1', 'mcp-param-count': '42' }, { 'mcp-param-region': 'eu-west-1', 'mcp-param-count': '41' }]) {
    const res = await send(headers)
    assert.equal(res.statusCode, 400, JSON.stringify(headers))
    assert.equal(res.json().error.code, -32020)
  }
})

test('methods the stateless era removed, and unknown ones, are 404 + -32601', async (t) => {
  const app = await build(t)
  for (const method of ['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe', 'no/such']) {
    const res = await call(app, method, { id: 7 })
    assert.equal(res.statusCode, 404, method)
    assert.deepEqual([res.json().id, res.json().error.code], [7, -32601], method)
  }
  const note = await app.inject({ method: 'POST', url: '/mcp', headers: headersFor('notifications/cancelled'), payload: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } } })
  assert.equal(note.statusCode, 202)
})

test('an unknown resource is -32602 with the URI in data (SEP-2164); the session era keeps -32002', async (t) => {
  const app = await build(t)
  const res = await call(app, 'resources/read', { params: { uri: 'test://nope' } })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(res.json().error, { code: -32602, message: 'Resource not found', data: { uri: 'test://nope' } })
})

test('MRTR: input_required with signed state; tampered, foreign or replayed-elsewhere state is refused', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const tool = (name: string, extra: Record<string, unknown> = {}) => ({ params: { name, arguments: {}, ...extra } })
  const r1 = (await call(app, 'tools/call', tool('test_input_required_result_multi_round'))).json().result
  assert.equal(r1.resultType, 'input_required')
  assert.deepEqual(Object.keys(r1.inputRequests), ['step1'])
  assert.equal(r1.inputRequests.step1.method, 'elicitation/create')
  assert.equal(r1.ttlMs, undefined, 'interim results carry no caching hints')
  const answer = (content: Record<string, unknown>) => ({ action: 'accept', content })
  const r2 = (await call(app, 'tools/call', tool('test_input_required_result_multi_round', { inputResponses: { step1: answer({ name: 'Ada' }) }, requestState: r1.requestState }))).json().result
  assert.deepEqual(Object.keys(r2.inputRequests), ['step2'])
  const r3 = (await call(app, 'tools/call', tool('test_input_required_result_multi_round', { inputResponses: { step2: answer({ color: 'red' }) }, requestState: r2.requestState }))).json().result
  assert.deepEqual(r3.content, [{ type: 'text', text: 'Ada likes red' }])
  assert.equal(r3.resultType, 'complete')

  const refused = async (extra: Record<string, unknown>, name = 'test_input_required_result_multi_round') => {
    const res = (await call(app, 'tools/call', tool(name, extra))).json()
    assert.equal(res.error?.code, -32602, JSON.stringify(res))
    return res.error.message as string
  }
  assert.match(await refused({ requestState: `${r2.requestState as string}x` }), /integrity/)
  assert.match(await refused({ requestState: 'garbage' }), /integrity/)
  assert.match(await refused({ requestState: r2.requestState }, 'test_input_required_result_elicitation'), /different request/)
  assert.match(await refused({ requestState: r2.requestState, inputResponses: { step2: answer({ color: 'red' }) } }), /already used/)
  const round1 = async (name: string) => (await call(app, 'tools/call', tool(name))).json().result.requestState as string
  assert.match(await refused({ requestState: await round1('test_input_required_result_multi_round'), inputResponses: { step1: 5 } }), /inputResponses\.step1/)
  assert.match(await refused({ requestState: await round1('test_input_required_result_multi_round'), inputResponses: null }), /inputResponses must be an object/)
  // Answers no state asked for are ignored (never used): the handler asks again.
  const asks = async (extra: Record<string, unknown>) => Object.keys((await call(app, 'tools/call', tool('test_input_required_result_multi_round', extra))).json().result.inputRequests)
  assert.deepEqual(await asks({ inputResponses: { step1: answer({ name: 'Ada' }) } }), ['step1'], 'without requestState')
  assert.deepEqual(await asks({ requestState: await round1('test_input_required_result_multi_round'), inputResponses: { step2: answer({ color: 'red' }) } }), ['step1'], 'a key the state did not ask')
  // A missing answer is asked again rather than failing.
  const again = (await call(app, 'tools/call', tool('test_input_required_result_elicitation', { requestState: await round1('test_input_required_result_elicitation'), inputResponses: {} }))).json().result
  assert.equal(again.resultType, 'input_required')
})

test('MRTR state is bound to the caller (auth on) and expires', async (t) => {
  const app = await build(t, { fixtures: 'conformance', authTokens: ['token-a', 'token-b'], stateTtlMs: 1000 })
  const as = (token: string, extra: Record<string, unknown> = {}) => call(app, 'tools/call', { params: { name: 'test_input_required_result_elicitation', arguments: {}, ...extra }, headers: { authorization: `Bearer ${token}` } })
  const r1 = (await as('token-a')).json().result
  const answer = { inputResponses: { user_name: { action: 'accept', content: { name: 'Bo' } } }, requestState: r1.requestState }
  assert.match((await as('token-b', answer)).json().error.message, /different caller/)
  assert.deepEqual((await as('token-a', answer)).json().result.content, [{ type: 'text', text: 'Hello, Bo!' }])
  await new Promise((resolve) => setTimeout(resolve, 1100))
  assert.match((await as('token-a', answer)).json().error.message, /expired/)
})

test('logs reach a stateless request only when its _meta sets a logLevel', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const quiet = await call(app, 'tools/call', { params: { name: 'test_logging_tool', arguments: {} } })
  assert.match(String(quiet.headers['content-type']), /application\/json/)
  assert.deepEqual(quiet.json().result.content, [{ type: 'text', text: 'Logging complete' }])
  const { url } = await listen(t, { fixtures: 'conformance' })
  const body = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'test_logging_tool', arguments: {}, _meta: meta({ 'io.modelcontextprotocol/logLevel': 'info' }) } })
  const sse = await openSse(`${url}/mcp`, { method: 'POST', headers: headersFor('tools/call', { name: 'test_logging_tool' }), body })
  const messages: Array<{ method?: string, id?: number }> = []
  for (let ev = await sse.next(); ev !== undefined; ev = await sse.next()) messages.push(JSON.parse(ev.data))
  assert.deepEqual(messages.map((m) => m.method ?? `response ${String(m.id)}`), ['notifications/message', 'notifications/message', 'notifications/message', 'response 9'])
})

test('closing a stateless request stream cancels the request', async (t) => {
  const { url, app } = await listen(t, { fixtures: 'conformance' })
  const params = { name: 'test_sleep', arguments: { ms: 20_000 }, _meta: meta({ progressToken: 'p' }) }
  const res = await fetch(`${url}/mcp`, { method: 'POST', headers: headersFor('tools/call', params), body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params }), signal: AbortSignal.timeout(300) })
  // test_sleep reports progress, so the answer is a stream; the client closes it mid-call.
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
  await assert.rejects(res.text())
  const deadline = Date.now() + 3000
  while (app[kEngine].server.inflight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(app[kEngine].server.inflight, 0, 'the handler was aborted when the client went away')
})

test('subscriptions/listen: ack first, then only the notifications the filter asked for, tagged; graceful end', async (t) => {
  const { url, app } = await listen(t)
  const filter = { resourceSubscriptions: ['server://info'], toolsListChanged: true, 'dev.sse-mcp-server/broadcasts': true }
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'sub-1', method: 'subscriptions/listen', params: { _meta: meta(), notifications: filter } })
  const sse = await openSse(`${url}/mcp`, { method: 'POST', headers: headersFor('subscriptions/listen'), body })
  t.after(() => sse.close())
  assert.equal(sse.res.status, 200)
  assert.equal(sse.res.headers.get('mcp-session-id'), null)
  const ack = JSON.parse((await sse.next())?.data ?? '')
  assert.equal(ack.method, 'notifications/subscriptions/acknowledged')
  assert.deepEqual(ack.params, { _meta: { 'io.modelcontextprotocol/subscriptionId': 'sub-1' }, notifications: filter })
  assert.equal(app.hub.stats().byKind.listen, 1)

  app.mcp.prompt({ name: 'p1', get: () => ({ messages: [] }) }) // prompts: not asked for
  await app.mcp.resourceUpdated('other://x') // not subscribed
  await app.mcp.resourceUpdated('server://info')
  app.mcp.tool({ name: 'late', inputSchema: { type: 'object', properties: {} } as never, handler: () => ({ content: [] }) })
  const broadcast = await app.inject({ method: 'POST', url: '/broadcast', payload: { event: 'deploy', data: { v: 2 } } })
  assert.equal(broadcast.statusCode, 202)

  const got = []
  for (let i = 0; i < 3; i++) got.push(JSON.parse((await sse.next())?.data ?? ''))
  assert.deepEqual(got.map((m) => [m.method, m.params._meta['io.modelcontextprotocol/subscriptionId']]), [
    ['notifications/resources/updated', 'sub-1'],
    ['notifications/tools/list_changed', 'sub-1'],
    ['notifications/message', 'sub-1']
  ])
  assert.equal(got[0].params.uri, 'server://info')
  assert.deepEqual(got[2].params.data, { event: 'deploy', data: { v: 2 } })

  await app[kEngine].listeners.endAll()
  const end = JSON.parse((await sse.next())?.data ?? '')
  assert.deepEqual(end, { jsonrpc: '2.0', id: 'sub-1', result: { resultType: 'complete', _meta: { 'io.modelcontextprotocol/subscriptionId': 'sub-1' } } })
  assert.equal(await sse.next(), undefined, 'the stream closes after the result')
})

test('subscriptions/listen without a filter object is -32602', async (t) => {
  const app = await build(t)
  const res = await call(app, 'subscriptions/listen', { params: { notifications: 'all' } })
  assert.equal(res.statusCode, 400)
  assert.equal(res.json().error.code, -32602)
})
