import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { buildApp, type App } from '../../src/app.js'
import { testConfig } from '../helper.js'

const ACCEPT = 'application/json, text/event-stream'
const JSON_CT = 'application/json'

interface Case {
  name: string
  method?: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH'
  url?: string
  headers?: Record<string, string>
  /** Raw body (string or bytes); objects are JSON-encoded. */
  body?: string | Buffer | object
  /** Use the test session's id unless `session` is given ('' = no header). */
  session?: string
  status: number
  /** Expected JSON-RPC error code, if the answer is a JSON-RPC error. */
  code?: number
  /** Expected `id` of the JSON-RPC error. */
  id?: unknown
  /** For tool results: expect isError true. */
  toolError?: boolean
  check?: (res: { headers: Record<string, unknown>, body: string }) => void
}

const rpc = (method: string, params?: unknown, id: unknown = 1) => ({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })
const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)

const cases: Case[] = [
  // Malformed JSON and non-JSON-RPC bodies
  { name: 'truncated JSON', body: '{"jsonrpc":"2.0",', status: 400, code: -32700, id: null },
  { name: 'empty body', body: '', status: 400, code: -32700, id: null },
  { name: 'just whitespace', body: '   \n ', status: 400, code: -32700, id: null },
  { name: 'trailing garbage after JSON', body: '{"jsonrpc":"2.0","id":1,"method":"ping"} xyz', status: 400, code: -32700, id: null },
  { name: 'single quotes', body: "{'jsonrpc':'2.0'}", status: 400, code: -32700, id: null },
  { name: 'NaN literal', body: '{"jsonrpc":"2.0","id":NaN,"method":"ping"}', status: 400, code: -32700, id: null },
  { name: 'invalid UTF-8 outside strings', body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), status: 400, code: -32700, id: null },
  { name: 'JSON null', body: 'null', status: 400, code: -32600, id: null },
  { name: 'JSON string', body: '"ping"', status: 400, code: -32600, id: null },
  { name: 'JSON number', body: '42', status: 400, code: -32600, id: null },
  { name: 'empty batch', body: '[]', status: 400, code: -32600, id: null },
  { name: 'batch of requests (not allowed)', body: [rpc('ping')], status: 400, code: -32600, id: null },
  { name: 'empty object', body: {}, status: 400, code: -32600, id: null },
  { name: 'wrong jsonrpc version', body: { jsonrpc: '1.0', id: 7, method: 'ping' }, status: 400, code: -32600, id: 7 },
  { name: 'jsonrpc missing', body: { id: 7, method: 'ping' }, status: 400, code: -32600, id: 7 },
  { name: 'method is a number', body: { jsonrpc: '2.0', id: 7, method: 5 }, status: 400, code: -32600, id: 7 },
  { name: 'method is empty', body: rpc(''), status: 400, code: -32600, id: 1 },
  { name: 'method name 300 chars long', body: rpc('x'.repeat(300)), status: 400, code: -32600, id: 1 },
  { name: 'id is an object', body: { jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }, status: 400, code: -32600, id: null },
  { name: 'id is null on a request', body: { jsonrpc: '2.0', id: null, method: 'ping' }, status: 400, code: -32600, id: null },
  { name: 'id is a float', body: { jsonrpc: '2.0', id: 1.5, method: 'ping' }, status: 400, code: -32600, id: null },
  { name: 'id is a boolean', body: { jsonrpc: '2.0', id: true, method: 'ping' }, status: 400, code: -32600, id: null },
  { name: 'huge string id (10 kB)', body: rpc('ping', undefined, 'i'.repeat(10_000)), status: 400, code: -32600, id: null },
  { name: 'params is an array', body: rpc('ping', [1, 2]), status: 400, code: -32600, id: 1 },
  { name: 'params is a string', body: rpc('ping', 'x'), status: 400, code: -32600, id: 1 },
  { name: 'result and error together', body: { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'x' } }, status: 400, code: -32600 },
  { name: 'method and result together', body: { jsonrpc: '2.0', id: 1, method: 'ping', result: {} }, status: 400, code: -32600 },
  { name: 'response without id', body: { jsonrpc: '2.0', result: {} }, status: 400, code: -32600, id: null },
  // Valid JSON-RPC, bad MCP
  { name: 'unknown method', body: rpc('tools/destroy_everything'), status: 200, code: -32601, id: 1 },
  { name: 'tools/call without a name', body: rpc('tools/call', {}), status: 200, code: -32602, id: 1 },
  { name: 'tools/call of an unknown tool', body: rpc('tools/call', { name: 'rm_rf' }), status: 200, code: -32602 },
  { name: 'tools/call with arguments as an array', body: rpc('tools/call', { name: 'echo', arguments: ['x'] }), status: 200, toolError: true },
  { name: 'tools/call with a wrongly typed argument', body: rpc('tools/call', { name: 'echo', arguments: { message: 5 } }), status: 200, toolError: true },
  { name: 'tools/call with a missing required argument', body: rpc('tools/call', { name: 'echo', arguments: {} }), status: 200, toolError: true },
  { name: 'tools/call with deeply nested arguments (depth bomb)', body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":${deep(5000)}}}}`, status: 400, code: -32600, id: null },
  { name: 'deeply nested params on ping', body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":${deep(20000)}}}`, status: 400, code: -32600, id: null },
  { name: 'prototype pollution attempt in arguments', body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x","__proto__":{"polluted":true}}}}', status: 200, check: () => { assert.equal(({} as Record<string, unknown>).polluted, undefined) } },
  { name: 'unknown time zone', body: rpc('tools/call', { name: 'current_time', arguments: { timezone: '../../etc/passwd' } }), status: 200, toolError: true },
  { name: 'resources/read of an unknown URI', body: rpc('resources/read', { uri: 'file:///etc/passwd' }), status: 200, code: -32002 },
  { name: 'resources/read without a URI', body: rpc('resources/read', {}), status: 200, code: -32602 },
  { name: 'prompts/get of an unknown prompt', body: rpc('prompts/get', { name: 'nope' }), status: 200, code: -32602 },
  { name: 'prompts/get without required arguments', body: rpc('prompts/get', { name: 'time_in' }), status: 200, code: -32602 },
  { name: 'prompts/get with a non-string argument', body: rpc('prompts/get', { name: 'time_in', arguments: { timezone: 5 } }), status: 200, code: -32602 },
  { name: 'logging/setLevel with an unknown level', body: rpc('logging/setLevel', { level: 'loud' }), status: 200, code: -32602 },
  { name: 'completion/complete with a bad ref', body: rpc('completion/complete', { ref: { type: 'ref/nothing' }, argument: { name: 'a', value: '' } }), status: 200, code: -32602 },
  { name: 'tools/list with a forged cursor', body: rpc('tools/list', { cursor: 'not-a-cursor!!' }), status: 200, code: -32602 },
  { name: 'tools/list with a numeric cursor', body: rpc('tools/list', { cursor: 12 }), status: 200, code: -32602 },
  { name: 'header injection inside a string id', body: rpc('ping', undefined, '1\r\nX-Evil: yes'), status: 200, check: (res) => { assert.equal(res.headers['x-evil'], undefined) } },
  { name: 'a response to a request we never sent', body: { jsonrpc: '2.0', id: 'srv-999', result: {} }, status: 202 },
  { name: 'an unknown notification', body: { jsonrpc: '2.0', method: 'notifications/whatever' }, status: 202 },
  { name: 'cancel of an unknown request', body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 12345 } }, status: 202 },
  // HTTP layer: content types, sizes, Accept, sessions, versions, methods
  { name: 'text/plain body', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(rpc('ping')), status: 415 },
  { name: 'form-encoded body', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1', status: 415 },
  { name: 'body over BODY_LIMIT (10 MB)', body: JSON.stringify(rpc('tools/call', { name: 'echo', arguments: { message: 'x'.repeat(10 * 1024 * 1024) } })), status: 413 },
  { name: 'no Accept header', headers: { accept: '' }, body: rpc('ping'), status: 406 },
  { name: 'Accept: application/json only', headers: { accept: 'application/json' }, body: rpc('ping'), status: 406 },
  { name: 'Accept: text/event-stream only', headers: { accept: 'text/event-stream' }, body: rpc('ping'), status: 406 },
  { name: 'no Mcp-Session-Id on a request', session: '', body: rpc('ping'), status: 400, code: -32600 },
  { name: 'unknown Mcp-Session-Id', session: 'no-such-session-123', body: rpc('ping'), status: 404, code: -32001 },
  { name: 'Mcp-Session-Id with spaces', session: 'a b c', body: rpc('ping'), status: 404, code: -32001 },
  { name: 'Mcp-Session-Id 5 kB long', session: 's'.repeat(5000), body: rpc('ping'), status: 404, code: -32001 },
  { name: 'unsupported MCP-Protocol-Version', headers: { 'mcp-protocol-version': '1999-01-01' }, body: rpc('ping'), status: 400, code: -32600 },
  { name: 'MCP-Protocol-Version garbage', headers: { 'mcp-protocol-version': '<script>' }, body: rpc('ping'), status: 400, code: -32600 },
  { name: 'PUT /mcp', method: 'PUT', body: rpc('ping'), status: 405, check: (res) => { assert.match(String(res.headers.allow), /POST/) } },
  { name: 'PATCH /mcp', method: 'PATCH', body: rpc('ping'), status: 405 },
  { name: 'DELETE without a session', method: 'DELETE', session: '', status: 400 },
  { name: 'DELETE of an unknown session', method: 'DELETE', session: 'nope-nope-nope', status: 404 },
  { name: 'GET /mcp asking for JSON', method: 'GET', headers: { accept: 'application/json' }, status: 406 },
  { name: 'GET /mcp with an unknown session', method: 'GET', headers: { accept: 'text/event-stream' }, session: 'nope-nope-nope', status: 404 },
  { name: 'foreign Origin', headers: { origin: 'https://evil.example' }, body: rpc('ping'), status: 403 },
  { name: 'foreign Host (DNS rebinding)', headers: { host: 'evil.example' }, body: rpc('ping'), status: 403 },
  { name: 'Origin "null"', headers: { origin: 'null' }, body: rpc('ping'), status: 403 },
  // HTTP+SSE transport
  { name: '/messages without sessionId', url: '/messages', body: rpc('ping'), session: '', status: 400 },
  { name: '/messages with an unknown sessionId', url: '/messages?sessionId=nope', body: rpc('ping'), session: '', status: 404 },
  { name: '/messages with a 1 kB sessionId', url: `/messages?sessionId=${'x'.repeat(1000)}`, body: rpc('ping'), session: '', status: 400 },
  { name: '/messages with text/plain', url: '/messages?sessionId=nope', headers: { 'content-type': 'text/plain' }, body: 'ping', session: '', status: 415 },
  // Broadcast
  { name: '/broadcast without a body', url: '/broadcast', headers: { 'content-type': JSON_CT }, body: '', session: '', status: 400 },
  { name: '/broadcast with a newline in the event name', url: '/broadcast', body: { event: 'a\nevent: forged', data: 1 }, session: '', status: 400 },
  { name: '/broadcast with a 100-char event name', url: '/broadcast', body: { event: 'e'.repeat(100) }, session: '', status: 400 },
  { name: '/broadcast with an object as event name', url: '/broadcast', body: { event: { a: 1 }, data: 1 }, session: '', status: 400 },
  { name: '/broadcast with an array body', url: '/broadcast', body: [{ event: 'x' }], session: '', status: 400 }
]

async function hostileApp (t: TestContext): Promise<{ app: App, logs: string[], session: string }> {
  const logs: string[] = []
  const sink = new Writable({ write (chunk, _enc, cb) { logs.push(String(chunk)); cb() } })
  const app = await buildApp({ ...testConfig({ logLevel: 'info', rateLimitMax: 0 }), logger: { level: 'info', stream: sink } })
  t.after(() => app.close())
  await app.ready()
  const init = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { accept: ACCEPT, 'content-type': JSON_CT },
    payload: rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'hostile', version: '1' } }, 0)
  })
  const session = String(init.headers['mcp-session-id'])
  assert.ok(session.length > 10)
  return { app, logs, session }
}

test(`hostile input: ${cases.length} bad requests each get the exact 4xx or JSON-RPC error, never a 500, and the server keeps answering`, async (t) => {
  assert.ok(cases.length >= 60, `${cases.length} cases`)
  const { app, logs, session } = await hostileApp(t)
  for (const c of cases) {
    await t.test(c.name, async () => {
      const headers: Record<string, string> = { accept: ACCEPT, 'content-type': JSON_CT, ...c.headers }
      if (headers.accept === '') delete headers.accept
      const sid = c.session ?? session
      if (sid !== '') headers['mcp-session-id'] = sid
      const payload = c.body === undefined ? undefined : typeof c.body === 'string' || Buffer.isBuffer(c.body) ? c.body : JSON.stringify(c.body)
      const res = await app.inject({ method: c.method ?? 'POST', url: c.url ?? '/mcp', headers, ...(payload === undefined ? {} : { payload }) })
      assert.equal(res.statusCode, c.status, res.body.slice(0, 300))
      if (c.code !== undefined) {
        const body = res.json()
        assert.equal(body.jsonrpc, '2.0')
        assert.equal(body.error?.code, c.code, res.body.slice(0, 300))
        if ('id' in c) assert.equal(body.id, c.id)
      }
      if (c.toolError) assert.equal(res.json().result?.isError, true, res.body.slice(0, 300))
      if (res.statusCode >= 400 && res.body.length > 0) assert.match(String(res.headers['content-type']), /json/, 'errors are JSON, never HTML')
      c.check?.({ headers: res.headers, body: res.body })
      const health = await app.inject({ method: 'GET', url: '/health' })
      assert.equal(health.statusCode, 200)
    })
  }
  const all = logs.join('')
  assert.doesNotMatch(all, /"stack"/, 'no stack trace was logged for client errors')
  assert.doesNotMatch(all, /"level":50/, 'no error-level line for client input')
})

test('an ended session is 404 for every method', async (t) => {
  const { app, session } = await hostileApp(t)
  const headers = { accept: ACCEPT, 'content-type': JSON_CT, 'mcp-session-id': session }
  assert.equal((await app.inject({ method: 'DELETE', url: '/mcp', headers })).statusCode, 204)
  assert.equal((await app.inject({ method: 'POST', url: '/mcp', headers, payload: rpc('ping') })).statusCode, 404)
  assert.equal((await app.inject({ method: 'DELETE', url: '/mcp', headers })).statusCode, 404)
  assert.equal((await app.inject({ method: 'GET', url: '/mcp', headers: { ...headers, accept: 'text/event-stream' } })).statusCode, 404)
})

test('a session belongs to the token that created it: another token gets 404', async (t) => {
  const app = await buildApp({ ...testConfig({ authTokens: ['alice-token', 'bob-token'] }), logger: false })
  t.after(() => app.close())
  const init = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { accept: ACCEPT, 'content-type': JSON_CT, authorization: 'Bearer alice-token' },
    payload: rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'a', version: '1' } }, 0)
  })
  const sid = String(init.headers['mcp-session-id'])
  const as = (token: string) => app.inject({ method: 'POST', url: '/mcp', headers: { accept: ACCEPT, 'content-type': JSON_CT, authorization: `Bearer ${token}`, 'mcp-session-id': sid }, payload: rpc('ping') })
  assert.equal((await as('alice-token')).statusCode, 200)
  assert.equal((await as('bob-token')).statusCode, 404)
})
