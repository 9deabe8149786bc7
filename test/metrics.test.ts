import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { buildApp } from '../src/app.js'
import sseMcp from '../src/plugin.js'
import { Type } from '@sinclair/typebox'
import { BUDGETS, createMetrics } from '../plugins/metrics.js'
import { build, listen, testConfig } from './helper.js'
import { POLICY } from '../plugins/policy.js'
import { parsePrometheusText, sampleValue, type Family } from './prom-text.js'

type App = Awaited<ReturnType<typeof build>>

async function scrape (app: App, headers: Record<string, string> = {}): Promise<Map<string, Family>> {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers })
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  return parsePrometheusText(res.body)
}

const MCP_HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }

test('/metrics is valid Prometheus text with process, event-loop, HTTP, MCP and SSE metrics', async (t) => {
  const app = await build(t)
  await app.inject({ method: 'GET', url: '/health' })
  const families = await scrape(app)
  const expected: Array<[string, Family['type']]> = [
    ['process_cpu_user_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
    ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
    ['nodejs_heap_size_used_bytes', 'gauge'],
    ['http_requests_total', 'counter'],
    ['http_request_duration_seconds', 'histogram'],
    ['http_auth_failures_total', 'counter'],
    ['http_rate_limited_total', 'counter'],
    ['mcp_jsonrpc_requests_total', 'counter'],
    ['mcp_jsonrpc_request_duration_seconds', 'histogram'],
    ['mcp_tool_call_duration_seconds', 'histogram'],
    ['mcp_sessions', 'gauge'],
    ['sse_streams_open', 'gauge'],
    ['sse_events_sent_total', 'counter'],
    ['sse_events_replayed_total', 'counter'],
    ['sse_slow_consumers_dropped_total', 'counter'],
    ['sse_connections_rejected_total', 'counter']
  ]
  for (const [name, type] of expected) {
    const family = families.get(name)
    assert.ok(family, `${name} is exposed`)
    assert.equal(family.type, type, `${name} is a ${type}`)
    assert.ok(family.help, `${name} has HELP`)
  }
  assert.equal(sampleValue(families, 'sse_streams_open', { kind: 'public' }), 0)
})

test('the exposition check rejects malformed text (so it can catch a broken /metrics)', () => {
  const bad = [
    'no_newline 1',
    'a b\n',
    'm{l="unterminated} 1\n',
    '# TYPE c counter\nc -1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE g gauge\ng 1\n# TYPE k gauge\nk 1\ng{x="1"} 2\n',
    'dup 1\ndup 2\n',
    '# TYPE x wrong\nx 1\n'
  ]
  for (const text of bad) assert.throws(() => parsePrometheusText(text), Error, JSON.stringify(text))
  const good = parsePrometheusText('# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le="0.5",a="q\\"x"} 1\nh_bucket{le="+Inf",a="q\\"x"} 2\nh_sum{a="q\\"x"} 3\nh_count{a="q\\"x"} 2\n')
  assert.equal(sampleValue(good, 'h_count', { a: 'q"x' }), 2)
})

test('HTTP request counters move with traffic, labelled by route pattern and status, never the raw URL', async (t) => {
  const app = await build(t)
  const before = await scrape(app)
  const healthBefore = sampleValue(before, 'http_requests_total', { method: 'GET', route: '/health', status_code: '200' }) ?? 0
  for (let i = 0; i < 3; i++) await app.inject({ method: 'GET', url: `/health?probe=${i}` })
  for (let i = 0; i < 2; i++) await app.inject({ method: 'GET', url: `/no/such/page/${i}` })
  const after = await scrape(app)
  assert.equal(sampleValue(after, 'http_requests_total', { method: 'GET', route: '/health', status_code: '200' }), healthBefore + 3)
  assert.equal(sampleValue(after, 'http_requests_total', { method: 'GET', route: 'unmatched', status_code: '404' }), 2)
  assert.equal(sampleValue(after, 'http_request_duration_seconds_count', { method: 'GET', route: '/health', status_code: '200' }), healthBefore + 3)
  const routes = after.get('http_requests_total')?.samples.map((s) => s.labels.route ?? '') ?? []
  assert.ok(!routes.some((r) => r.includes('/no/such') || r.includes('?')), `no raw URLs in labels: ${routes.join(', ')}`)
})

test('401 answers count as auth failures and 429 answers as rate-limited', async (t) => {
  const app = await buildApp({ ...testConfig({ authTokens: ['metrics-test-token'] }), logger: false })
  t.after(() => app.close())
  // A stand-in for the rate limiter: whatever answers 429 is counted.
  app.get('/limited', { config: { policy: POLICY.client } }, async (_request, reply) => reply.code(429).header('Retry-After', '1').send({ statusCode: 429 }))
  await app.ready()
  const auth = { authorization: 'Bearer metrics-test-token' }
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: '/docs' })
  await app.inject({ method: 'GET', url: '/docs', headers: { authorization: 'Bearer wrong' } })
  await app.inject({ method: 'GET', url: '/limited', headers: auth })
  const families = await scrape(app, auth)
  assert.equal(sampleValue(families, 'http_auth_failures_total'), 2)
  assert.equal(sampleValue(families, 'http_rate_limited_total'), 1)
  assert.equal(sampleValue(families, 'http_requests_total', { route: '/docs', status_code: '401' }), 2)
})

test('/metrics needs a token when auth is on', async (t) => {
  const app = await build(t, { authTokens: ['metrics-test-token'] })
  assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
  const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer metrics-test-token' } })
  assert.equal(ok.statusCode, 200)
})

test('METRICS_PUBLIC=true opens /metrics to a scraper without a token, and nothing else', async (t) => {
  const app = await build(t, { authTokens: ['metrics-test-token'], metricsPublic: true })
  assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200)
  assert.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 401)
  assert.equal((await app.inject({ method: 'POST', url: '/broadcast', payload: {} })).statusCode, 401)
})

test('Accept: application/json gives the JSON view with active_connections, total_requests, uptime and memory_usage', async (t) => {
  const app = await build(t)
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: '/health' })
  const res = await app.inject({ method: 'GET', url: '/metrics', headers: { accept: 'application/json' } })
  assert.equal(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  const body = res.json()
  assert.equal(body.active_connections, 0)
  assert.equal(body.total_requests, 2)
  assert.equal(typeof body.uptime, 'number')
  assert.ok(body.memory_usage.rss > 0 && body.memory_usage.heapUsed > 0)
  assert.equal(body.sessions, 0)
  assert.deepEqual(body.streams_by_kind, { public: 0, session: 0, request: 0, 'http+sse': 0, listen: 0 })
  assert.equal(body.requests_by_status['200'], 2)
  for (const key of ['events_sent', 'events_replayed', 'dropped_slow_consumers', 'rejected_over_capacity', 'auth_failures', 'rate_limited']) {
    assert.equal(body[key], 0, key)
  }
})

test('a Prometheus scraper\'s Accept header gets the text format', async (t) => {
  const app = await build(t)
  const families = await scrape(app, { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' })
  assert.ok(families.has('http_requests_total'))
})

test('each app instance has its own registry', async (t) => {
  const a = await build(t)
  const b = await build(t)
  for (let i = 0; i < 4; i++) await a.inject({ method: 'GET', url: '/health' })
  const fromB = await scrape(b)
  assert.equal(sampleValue(fromB, 'http_requests_total', { route: '/health' }), undefined)
  const fromA = await scrape(a)
  assert.equal(sampleValue(fromA, 'http_requests_total', { route: '/health' }), 4)
})

test('hub and session figures are read at scrape time', async () => {
  const stats = { streams: 3, byKind: { public: 2, session: 1, request: 0, 'http+sse': 0, listen: 0 }, eventsSent: 10, eventsReplayed: 4, droppedSlowConsumers: 1, rejectedOverCapacity: 2 }
  const sessions = { n: 5 }
  const metrics = createMetrics({ hubStats: () => stats, sessions: () => sessions.n, startedAt: Date.now() })
  let families = parsePrometheusText(await metrics.text())
  assert.equal(sampleValue(families, 'sse_streams_open', { kind: 'public' }), 2)
  assert.equal(sampleValue(families, 'sse_streams_open', { kind: 'session' }), 1)
  assert.equal(sampleValue(families, 'mcp_sessions'), 5)
  assert.equal(sampleValue(families, 'sse_events_sent_total'), 10)
  assert.equal(sampleValue(families, 'sse_events_replayed_total'), 4)
  assert.equal(sampleValue(families, 'sse_slow_consumers_dropped_total'), 1)
  assert.equal(sampleValue(families, 'sse_connections_rejected_total'), 2)
  stats.eventsSent = 25
  stats.byKind.public = 0
  sessions.n = 1
  families = parsePrometheusText(await metrics.text())
  assert.equal(sampleValue(families, 'sse_events_sent_total'), 25)
  assert.equal(sampleValue(families, 'sse_streams_open', { kind: 'public' }), 0)
  assert.equal(sampleValue(families, 'mcp_sessions'), 1)
  const json = await metrics.json()
  assert.equal(json.active_connections, 3)
  assert.equal(json.events_sent, 25)
  metrics.registry.clear()
})

test('JSON-RPC outcomes and tool-call durations are recorded with bounded labels', async () => {
  const metrics = createMetrics({ hubStats: () => ({ streams: 0 }), sessions: () => 0, startedAt: Date.now() })
  metrics.recordRpc('tools/call', 'ok', 12)
  metrics.recordRpc('tools/call', 'error', 3, -32602)
  metrics.recordRpc('made/up', 'error', 1, -32601)
  for (let i = 0; i < 150; i++) metrics.recordRpc(`weird/${i}`, 'ok', 1)
  metrics.recordTool('current_time', 5, false)
  metrics.recordTool('current_time', 7, true)
  const families = parsePrometheusText(await metrics.text())
  assert.equal(sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'tools/call', outcome: 'ok' }), 1)
  assert.equal(sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'tools/call', outcome: 'error' }), 1)
  assert.equal(sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'unknown', outcome: 'error' }), 1)
  assert.ok((families.get('mcp_jsonrpc_requests_total')?.samples.length ?? 0) <= 103, 'label values are capped')
  assert.ok((sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'other' }) ?? 0) > 0)
  assert.equal(sampleValue(families, 'mcp_tool_call_duration_seconds_count', { tool: 'current_time', outcome: 'ok' }), 1)
  assert.equal(sampleValue(families, 'mcp_tool_call_duration_seconds_count', { tool: 'current_time', outcome: 'error' }), 1)
  const json = await metrics.json()
  assert.deepEqual(json.tool_calls.current_time?.calls, 2)
  assert.deepEqual(json.tool_calls.current_time?.errors, 1)
  metrics.registry.clear()
})

test('MCP traffic moves the JSON-RPC and tool-call metrics', async (t) => {
  const app = await build(t)
  const init = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: MCP_HEADERS,
    payload: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'metrics-test', version: '1.0.0' } } }
  })
  assert.equal(init.statusCode, 200, init.body)
  const session = String(init.headers['mcp-session-id'])
  const headers = { ...MCP_HEADERS, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }
  await app.inject({ method: 'POST', url: '/mcp', headers, payload: { jsonrpc: '2.0', method: 'notifications/initialized' } })
  const call = await app.inject({ method: 'POST', url: '/mcp', headers, payload: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'current_time', arguments: {} } } })
  assert.equal(call.statusCode, 200, call.body)
  await app.inject({ method: 'POST', url: '/mcp', headers, payload: { jsonrpc: '2.0', id: 3, method: 'no/such/method' } })

  const families = await scrape(app)
  assert.equal(sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'initialize', outcome: 'ok' }), 1)
  assert.equal(sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'tools/call', outcome: 'ok' }), 1)
  assert.equal(sampleValue(families, 'mcp_jsonrpc_requests_total', { method: 'unknown', outcome: 'error' }), 1)
  assert.equal(sampleValue(families, 'mcp_tool_call_duration_seconds_count', { tool: 'current_time', outcome: 'ok' }), 1)
  assert.equal(sampleValue(families, 'mcp_sessions'), 1)
  assert.equal(sampleValue(families, 'http_requests_total', { method: 'POST', route: '/mcp', status_code: '200' }), 3)
})

test('an open public SSE stream shows in sse_streams_open and active_connections', async (t) => {
  const { app, url } = await listen(t)
  const controller = new AbortController()
  t.after(() => controller.abort())
  const res = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream' }, signal: controller.signal })
  assert.equal(res.status, 200)
  const reader = res.body?.getReader()
  assert.ok(reader)
  await reader.read() // the stream is open once its first bytes arrive
  const families = await scrape(app)
  assert.equal(sampleValue(families, 'sse_streams_open', { kind: 'public' }), 1)
  const json = (await app.inject({ method: 'GET', url: '/metrics', headers: { accept: 'application/json' } })).json()
  assert.equal(json.active_connections, 1)
  await reader.cancel()
})

test('the stream-kind help names every kind, listen included', async (t) => {
  const app = await build(t)
  const families = await scrape(app)
  const help = families.get('sse_streams_open')?.help ?? ''
  for (const kind of ['public', 'session', 'request', 'http+sse', 'listen']) assert.ok(help.includes(kind), kind)
  assert.equal(sampleValue(families, 'sse_streams_open', { kind: 'listen' }), 0)
})

test('hub drops, evicted notices and gap reads are mirrored at scrape time', async () => {
  const stats = { streams: 0, droppedDeadSockets: 3, evictedNotices: 2, gapReads: 5 }
  const metrics = createMetrics({
    hubStats: () => stats, sessions: () => 0, startedAt: Date.now(), auth: () => ({ lockouts: 4, untracked: 1 }), replayBytes: () => 1234
  })
  const families = parsePrometheusText(await metrics.text())
  assert.equal(sampleValue(families, 'sse_dead_sockets_dropped_total'), 3)
  assert.equal(sampleValue(families, 'sse_evicted_notices_total'), 2)
  assert.equal(sampleValue(families, 'sse_gap_reads_total'), 5)
  assert.equal(sampleValue(families, 'http_auth_lockouts_total'), 4)
  assert.equal(sampleValue(families, 'http_auth_failures_untracked_total'), 1)
  assert.equal(sampleValue(families, 'sse_replay_bytes'), 1234)
  for (const budget of BUDGETS) assert.equal(sampleValue(families, 'mcp_budget_refusals_total', { budget }), 0, budget)
  metrics.registry.clear()
})

test('each budget refusal moves mcp_budget_refusals_total{budget} (provoked over HTTP)', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  const { app, url } = await listen(t, {
    rateLimitMax: 0,
    fixtures: 'conformance',
    budgets: {
      ...testConfig().budgets,
      sessionsPerClient: 1,
      streamsPerClient: 1,
      inflightPerClient: 1,
      clientInfoBytes: 256,
      subscriptionsPerSession: 1,
      uriBytes: 64,
      listenFilterBytes: 256,
      broadcastBytes: 64,
      stateBytes: 4096
    }
  }, (a) => {
    a.mcp.tool({ name: 'wait', inputSchema: Type.Object({}), handler: async () => { started(); await gate; return { content: [{ type: 'text', text: 'done' }] } } })
  })
  const V = '2026-07-28'
  const meta = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } }
  const statelessCall = (method: string, params: Record<string, unknown>, name?: string) => app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, 'mcp-protocol-version': V, 'mcp-method': method, ...(name === undefined ? {} : { 'mcp-name': name }) },
    payload: { jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: meta } }
  })
  const init = (capabilities: unknown) => app.inject({ method: 'POST', url: '/mcp', headers: MCP_HEADERS, payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'm', version: '1' } } } })
  const value = async (budget: string) => sampleValue(await scrape(app), 'mcp_budget_refusals_total', { budget })

  // client_info_bytes, then sessions_per_client
  assert.equal((await init({ experimental: { blob: 'x'.repeat(1000) } })).json().error.code, -32602)
  assert.equal(await value('client_info_bytes'), 1)
  const first = await init({})
  const sid = String(first.headers['mcp-session-id'])
  assert.equal((await init({})).statusCode, 429)
  assert.equal(await value('sessions_per_client'), 1)
  // uri_bytes, subscriptions_per_session
  const sub = (uri: string) => app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, payload: { jsonrpc: '2.0', id: 2, method: 'resources/subscribe', params: { uri } } })
  assert.equal((await sub(`file:///${'u'.repeat(100)}`)).json().error.code, -32602)
  assert.equal(await value('uri_bytes'), 1)
  assert.deepEqual((await sub('file:///a')).json().result, {})
  assert.equal((await sub('file:///b')).json().error.code, -32602)
  assert.equal(await value('subscriptions_per_session'), 1)
  // listen_filter_bytes
  assert.equal((await statelessCall('subscriptions/listen', { notifications: { resourceSubscriptions: Array.from({ length: 10 }, (_, i) => `file:///${i}`.padEnd(60, 'x')) } })).statusCode, 400)
  assert.equal(await value('listen_filter_bytes'), 1)
  // broadcast_bytes
  assert.equal((await app.inject({ method: 'POST', url: '/broadcast', payload: { event: 'x', data: 'y'.repeat(100) } })).statusCode, 413)
  assert.equal(await value('broadcast_bytes'), 1)
  // state_bytes
  const r1 = (await statelessCall('tools/call', { name: 'test_input_required_result_multi_round', arguments: {} }, 'test_input_required_result_multi_round')).json()
  const r2 = (await statelessCall('tools/call', { name: 'test_input_required_result_multi_round', arguments: {}, requestState: r1.result.requestState, inputResponses: { step1: { action: 'accept', content: { name: 'A'.repeat(5000) } } } }, 'test_input_required_result_multi_round')).json()
  assert.equal(r2.error?.code, -32602, JSON.stringify(r2).slice(0, 200))
  assert.equal(await value('state_bytes'), 1)
  // inflight_per_client
  const call = statelessCall('tools/call', { name: 'wait', arguments: {} }, 'wait')
  await running
  assert.equal((await statelessCall('tools/call', { name: 'wait', arguments: {} }, 'wait')).statusCode, 429)
  release()
  await call
  assert.equal(await value('inflight_per_client'), 1)
  // streams_per_client
  const controller = new AbortController()
  t.after(() => controller.abort())
  const open = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream' }, signal: controller.signal })
  assert.equal(open.status, 200)
  const over = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream' } })
  assert.equal(over.status, 429)
  await over.body?.cancel()
  assert.equal(await value('streams_per_client'), 1)
  controller.abort()
  // Every budget is a series, and the JSON view has them too.
  const families = await scrape(app)
  for (const budget of BUDGETS) assert.equal(sampleValue(families, 'mcp_budget_refusals_total', { budget }), 1, budget)
  const json = (await app.inject({ method: 'GET', url: '/metrics', headers: { accept: 'application/json' } })).json()
  assert.equal(json.budget_refusals.state_bytes, 1)
})

test('auth lockouts are counted (http_auth_lockouts_total) apart from 401s', async (t) => {
  const app = await build(t, { authTokens: ['good-token'], authFailureMax: 2, metricsPublic: true })
  for (let i = 0; i < 4; i++) await app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer bad-${i}` }, payload: {} })
  const families = await scrape(app)
  assert.equal(sampleValue(families, 'http_auth_failures_total'), 2)
  assert.equal(sampleValue(families, 'http_auth_lockouts_total'), 2)
})

test('sse_replay_bytes shows what the in-memory replay log holds', async (t) => {
  const app = await build(t)
  assert.equal(sampleValue(await scrape(app), 'sse_replay_bytes'), 0)
  await app.inject({ method: 'POST', url: '/broadcast', payload: { event: 'note', data: 'z'.repeat(1000) } })
  assert.ok((sampleValue(await scrape(app), 'sse_replay_bytes') ?? 0) > 1000)
})

test('budget refusals are counted by budget name under a plugin prefix (/x/broadcast over MAX_BROADCAST_BYTES)', async (t) => {
  const host = Fastify({ logger: false })
  t.after(() => host.close())
  await host.register(sseMcp, { prefix: '/x', rateLimitMax: 0, budgets: { ...testConfig().budgets, broadcastBytes: 64 } })
  await host.ready()
  const res = await host.inject({ method: 'POST', url: '/x/broadcast', payload: { event: 'x', data: 'y'.repeat(100) } })
  assert.equal(res.statusCode, 413)
  const metrics = await host.inject({ method: 'GET', url: '/x/metrics' })
  assert.equal(metrics.statusCode, 200, metrics.body)
  assert.equal(sampleValue(parsePrometheusText(metrics.body), 'mcp_budget_refusals_total', { budget: 'broadcast_bytes' }), 1)
})
