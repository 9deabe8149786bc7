import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import fc from 'fast-check'
import { classify } from '../../src/mcp/jsonrpc.js'
import { build, listen } from '../helper.js'
import { openSse } from '../sse-client.js'
import { HEADERS, hostile } from './world.js'

test('the JSON-RPC classifier never throws and only accepts well-formed messages (fast-check, 2,000 runs)', () => {
  const anyMessage = fc.oneof(
    fc.jsonValue(),
    fc.record({
      jsonrpc: fc.oneof(fc.constant('2.0'), fc.string()),
      id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.double(), fc.object()),
      method: fc.oneof(fc.string(), fc.integer()),
      params: fc.oneof(fc.object(), fc.array(fc.jsonValue()), fc.string())
    }, { requiredKeys: [] })
  )
  fc.assert(fc.property(anyMessage, (value) => {
    const c = classify(value)
    if (c.kind === 'invalid') return true
    const m = c.message as Record<string, unknown>
    assert.equal(m.jsonrpc, '2.0')
    if (c.kind === 'request') assert.ok(typeof m.id === 'string' || Number.isInteger(m.id))
    if ('params' in m) assert.ok(typeof m.params === 'object' && m.params !== null && !Array.isArray(m.params))
    return true
  }), { numRuns: 2000, seed: 42 })
})

test('POST /mcp answers arbitrary JSON bodies with a 2xx or 4xx, never a 500 (fast-check, 300 runs)', async (t) => {
  const app = await build(t, { rateLimitMax: 0 })
  const init = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
    payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } } }
  })
  const session = String(init.headers['mcp-session-id'])
  const methods = fc.constantFrom('ping', 'tools/list', 'tools/call', 'resources/read', 'prompts/get', 'completion/complete', 'logging/setLevel', 'resources/subscribe', 'x/unknown')
  const body = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.record({ jsonrpc: fc.constant('2.0'), id: fc.integer(), method: methods, params: fc.dictionary(fc.constantFrom('name', 'arguments', 'uri', 'cursor', 'level', 'ref', 'argument', '_meta'), fc.jsonValue()) })
      .map((v) => JSON.stringify(v)),
    fc.string().map((s) => `{"jsonrpc":"2.0","id":1,"method":${s}`)
  )
  await fc.assert(fc.asyncProperty(body, async (payload) => {
    const res = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'mcp-session-id': session },
      payload
    })
    assert.ok(res.statusCode < 500, `${res.statusCode} for ${payload.slice(0, 200)}: ${res.body.slice(0, 200)}`)
  }), { numRuns: 300, seed: 7 })
  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

test('stateless (2026-07-28) POSTs with arbitrary params, _meta, headers and MRTR fields never get a 500 (fast-check, 300 runs)', async (t) => {
  const app = await build(t, { rateLimitMax: 0, fixtures: 'conformance' })
  const methods = fc.constantFrom('server/discover', 'tools/list', 'tools/call', 'resources/read', 'prompts/get', 'completion/complete', 'subscriptions/listen', 'initialize', 'x/unknown')
  const tools = fc.constantFrom('echo', 'test_input_required_result_multi_round', 'test_header_params', 'test_missing_capability', 'nope')
  const meta = fc.oneof(
    fc.jsonValue(),
    fc.record({
      'io.modelcontextprotocol/protocolVersion': fc.oneof(fc.constant('2026-07-28'), fc.string()),
      'io.modelcontextprotocol/clientCapabilities': fc.oneof(fc.constant({ elicitation: {} }), fc.jsonValue()),
      'io.modelcontextprotocol/logLevel': fc.oneof(fc.constant('debug'), fc.jsonValue())
    }, { requiredKeys: ['io.modelcontextprotocol/protocolVersion'] })
  )
  const params = fc.record({
    name: fc.oneof(tools, fc.jsonValue()),
    arguments: fc.oneof(fc.constant({ region: 'x', count: 1 }), fc.jsonValue()),
    uri: fc.oneof(fc.constant('server://info'), fc.jsonValue()),
    notifications: fc.jsonValue(),
    inputResponses: fc.jsonValue(),
    requestState: fc.oneof(fc.string(), fc.jsonValue()),
    _meta: meta
  }, { requiredKeys: [] })
  const headerValue = fc.oneof(fc.constant('2026-07-28'), fc.string({ unit: 'grapheme-ascii', maxLength: 40 }).filter((v) => !/[\r\n]/.test(v)))
  await fc.assert(fc.asyncProperty(methods, params, headerValue, headerValue, async (method, p, version, name) => {
    const res = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'mcp-protocol-version': version, 'mcp-method': method, 'mcp-name': name, 'mcp-param-region': name },
      payload: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: p })
    })
    assert.ok(res.statusCode < 500, `${res.statusCode} for ${method} ${JSON.stringify(p).slice(0, 200)}: ${res.body.slice(0, 200)}`)
  }), { numRuns: 300, seed: 11 })
  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

test('garbage Last-Event-ID on GET /mcp is ignored: the stream opens fresh', async (t) => {
  const { url } = await listen(t)
  for (const bad of ['garbage', 'p-', 'p-99999999999999999999', '-1', 'p--1', '../../x', 'p-1\r\nx']) {
    const s = await openSse(`${url}/mcp`, { headers: { 'last-event-id': bad.replace(/[\r\n]/g, '') } })
    assert.equal(s.res.status, 200)
    assert.equal((await s.next())?.event, 'welcome')
    await s.close()
  }
})

test('a slowloris client sending a partial body does not hold up anyone else', async (t) => {
  const { url } = await listen(t)
  const { port } = new URL(url)
  const slow = connect(Number(port), '127.0.0.1')
  t.after(() => slow.destroy())
  slow.write('POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{"jsonrpc":')
  const drip = setInterval(() => slow.write(' '), 100)
  t.after(() => clearInterval(drip))
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${url}/health`)
    assert.equal(res.status, 200)
  }
})

// ───────────── depth and size generators (issue 13 acceptance 4): every body route, both eras

/** How a bomb nests: arrays, objects, or both alternating. */
function nest (depth: number, kind: 'array' | 'object' | 'mixed'): string {
  if (kind === 'array') return '['.repeat(depth) + '1' + ']'.repeat(depth)
  if (kind === 'object') return '{"k":'.repeat(depth) + '1' + '}'.repeat(depth)
  const open: string[] = []
  const close: string[] = []
  for (let i = 0; i < depth; i++) {
    open.push(i % 2 === 0 ? '[' : '{"k":')
    close.push(i % 2 === 0 ? ']' : '}')
  }
  return open.join('') + '1' + close.reverse().join('')
}

/** Something hostile to put where `"@"` stands: deep nesting, a huge string, many keys, or a plain value. */
const payloadArb = fc.oneof(
  fc.record({
    what: fc.constant('deep' as const),
    depth: fc.oneof(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 60, max: 70 }), fc.integer({ min: 1_000, max: 100_000 })),
    kind: fc.constantFrom('array' as const, 'object' as const, 'mixed' as const)
  }),
  fc.record({ what: fc.constant('string' as const), bytes: fc.oneof(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 500_000, max: 2_000_000 })) }),
  fc.record({ what: fc.constant('keys' as const), keys: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 5_000, max: 30_000 })) }),
  fc.record({ what: fc.constant('value' as const), value: fc.jsonValue() })
)
type Payload = typeof payloadArb extends fc.Arbitrary<infer P> ? P : never

function payloadText (p: Payload): string {
  if (p.what === 'deep') return nest(p.depth, p.kind)
  if (p.what === 'string') return JSON.stringify('s'.repeat(p.bytes))
  if (p.what === 'keys') return '{' + Array.from({ length: p.keys }, (_, i) => `"k${i}":${i}`).join(',') + '}'
  return JSON.stringify(p.value)
}

/** Where in a message the payload goes. */
const SLOTS = ['params', 'arguments', '_meta', 'capabilities', 'inputResponses', 'requestState', 'id', 'method'] as const
const slotArb = fc.constantFrom(...SLOTS)
const methodArb = fc.oneof(
  fc.constantFrom('initialize', 'ping', 'tools/call', 'tools/list', 'resources/read', 'resources/subscribe', 'prompts/get', 'subscriptions/listen', 'server/discover'),
  fc.integer({ min: 100, max: 100_000 }).map((n) => 'm'.repeat(n))
)

function messageText (method: string, slot: typeof SLOTS[number], payload: string, stateless: boolean): string {
  const meta = stateless ? { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } : undefined
  const params: Record<string, unknown> = { name: 'echo', arguments: { message: 'x' }, uri: 'server://info', protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'f', version: '1' }, ...(meta === undefined ? {} : { _meta: meta }) }
  if (slot === 'params') return JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: '@' }).replace('"@"', () => payload)
  if (slot === 'id') return JSON.stringify({ jsonrpc: '2.0', id: '@', method, params }).replace('"@"', () => payload)
  if (slot === 'method') return JSON.stringify({ jsonrpc: '2.0', id: 1, method: '@', params }).replace('"@"', () => payload)
  if (slot === 'arguments' || slot === 'capabilities' || slot === 'inputResponses' || slot === 'requestState') {
    return JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, [slot]: '@' } }).replace('"@"', () => payload)
  }
  return JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: { ...meta, '@k': '@' } } }).replace('"@"', () => payload)
}

test('depth and size fuzz: /mcp (session and stateless), /messages and /broadcast answer 2xx/4xx, never 5xx, no error log line (fast-check, seeded)', { timeout: 120_000 }, async (t) => {
  const w = await hostile(t, { fixtures: 'conformance' }, { listen: true })
  const init = await w.app.inject({ method: 'POST', url: '/mcp', headers: HEADERS, payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } } } })
  const sid = String(init.headers['mcp-session-id'])
  const httpSse = await openSse(`${w.url}/sse`)
  t.after(() => httpSse.close())
  const httpSseId = new URL(String((await httpSse.next())?.data), w.url).searchParams.get('sessionId') ?? ''
  assert.ok(httpSseId.length > 10)

  const targets = {
    session: { url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': sid }, expected: [200, 202, 400, 413] },
    stateless: { url: '/mcp', headers: { ...HEADERS, 'mcp-protocol-version': '2026-07-28' }, expected: [200, 202, 400, 404, 413] },
    httpSse: { url: `/messages?sessionId=${httpSseId}`, headers: HEADERS, expected: [202, 400, 413] },
    broadcast: { url: '/broadcast', headers: { 'content-type': 'application/json' }, expected: [202, 400, 413] }
  } as const
  const seed = Number(process.env.FUZZ_SEED ?? 13_016)
  const RUNS = 1500
  t.diagnostic(`fast-check seed ${seed} (FUZZ_SEED=… to replay)`)
  const seen: Record<string, Set<number>> = {}
  const started = performance.now()
  const targetArb = fc.constantFrom(...(Object.keys(targets) as Array<keyof typeof targets>))
  await fc.assert(fc.asyncProperty(targetArb, methodArb, slotArb, payloadArb, async (target, method, slot, p) => {
    const spec = targets[target]
    const payload = payloadText(p)
    const body = target === 'broadcast'
      ? JSON.stringify({ event: 'fuzz', data: '@' }).replace('"@"', () => payload)
      : messageText(method, slot, payload, target === 'stateless')
    const headers: Record<string, string> = { ...spec.headers }
    if (target === 'stateless') headers['mcp-method'] = method.length > 100 ? 'x' : method
    const res = await w.app.inject({ method: 'POST', url: spec.url, headers, payload: body })
    ;(seen[target] ??= new Set()).add(res.statusCode)
    const where = `${target} ${method.slice(0, 40)} ${slot} ${JSON.stringify(p).slice(0, 120)}`
    assert.ok((spec.expected as readonly number[]).includes(res.statusCode), `${res.statusCode} for ${where}: ${res.body.slice(0, 200)}`)
    if (res.statusCode >= 400 && res.body.length > 0) assert.match(String(res.headers['content-type']), /json/, where)
  }), { numRuns: RUNS, seed, endOnFailure: true })
  const ms = performance.now() - started
  t.diagnostic(`${RUNS} runs in ${(ms / 1000).toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, [...v].sort()])))}`)
  assert.ok(ms < 20_000, `bounded: ${ms.toFixed(0)} ms`)
  assert.equal((await w.app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  await httpSse.close()
  w.assertClean()
})
