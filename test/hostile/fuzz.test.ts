import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import fc from 'fast-check'
import { classify } from '../../src/mcp/jsonrpc.js'
import { build, listen } from '../helper.js'
import { openSse } from '../sse-client.js'

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
