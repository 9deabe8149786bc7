import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  accepts, acceptsPost, checkStatelessHeaders, readMessage, decodeHeaderValue, eraOf, header, headerMismatch, headerParams,
  httpSseEndpoint, mirroredName, newHttpSseSession, publicResume, refusalStatus, REQUEST_STREAM_RETRY_MS, sessionGetTarget,
  sessionVersionError, statelessStatus
} from '../../src/mcp/http.js'
import { ErrorCode, RpcError, type JsonRpcRequest } from '../../src/mcp/jsonrpc.js'
import { isSessionId } from '../../src/mcp/sessions/store.js'

const V = '2026-07-28'
const meta = { protocolVersion: V, clientCapabilities: {} } as const
const call = (name: string, args: Record<string, unknown> = {}): JsonRpcRequest =>
  ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } })
const b64 = (s: string): string => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`

test('header: absent, single, and repeated values joined', () => {
  assert.equal(header({}, 'x'), undefined)
  assert.equal(header({ x: 'a' }, 'x'), 'a')
  assert.equal(header({ x: ['a', 'b'] }, 'x'), 'a, b')
})

test('eraOf: a session header, initialize or a response is the session era; 2026-07-28 without a session is stateless', () => {
  const init: JsonRpcRequest = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18' } }
  assert.equal(eraOf(init, {}), 'session')
  assert.equal(eraOf({ jsonrpc: '2.0', id: 1, result: {} }, { 'mcp-protocol-version': V }), 'session')
  assert.equal(eraOf(call('x'), { 'mcp-protocol-version': V }), 'stateless')
  assert.equal(eraOf(call('x'), { 'mcp-protocol-version': V, 'mcp-session-id': 'abc' }), 'session')
  assert.equal(eraOf(call('x'), { 'mcp-protocol-version': '2025-06-18' }), 'session')
  assert.equal(eraOf(call('x'), { 'mcp-protocol-version': '1999-01-01' }), 'stateless', 'an unknown version is answered statelessly')
  const withMeta: JsonRpcRequest = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': V } } }
  assert.equal(eraOf(withMeta, {}), 'stateless')
  assert.equal(eraOf({ jsonrpc: '2.0', id: 2, method: 'server/discover' }, {}), 'stateless')
})

test('sessionVersionError: only a version without sessions is refused', () => {
  assert.equal(sessionVersionError(undefined), undefined)
  assert.equal(sessionVersionError('2025-03-26'), undefined)
  assert.match(sessionVersionError(V) ?? '', /Unsupported MCP-Protocol-Version for a session: 2026-07-28/)
  assert.ok((sessionVersionError('x'.repeat(500)) ?? '').length < 300, 'the client string is capped')
})

test('accepts: exact types, wildcards and parameters; a POST needs JSON and SSE', () => {
  assert.equal(accepts(undefined, 'text/event-stream'), false)
  assert.equal(accepts('text/event-stream', 'text/event-stream'), true)
  assert.equal(accepts('application/json;q=0.9, TEXT/*', 'text/event-stream'), true)
  assert.equal(accepts('*/*', 'application/json'), true)
  assert.equal(accepts('text/html', 'text/event-stream'), false)
  assert.equal(acceptsPost('application/json, text/event-stream'), true)
  assert.equal(acceptsPost('application/json'), false)
  assert.equal(acceptsPost(undefined), false)
})

test('status mapping: stateless errors and refusals', () => {
  assert.equal(statelessStatus(ErrorCode.MethodNotFound), 404)
  assert.equal(statelessStatus(ErrorCode.HeaderMismatch), 400)
  assert.equal(statelessStatus(ErrorCode.UnsupportedProtocolVersion), 400)
  assert.equal(statelessStatus(ErrorCode.MissingRequiredClientCapability), 400)
  assert.equal(statelessStatus(ErrorCode.InternalError), 200)
  assert.equal(refusalStatus(ErrorCode.InvalidParams), 400)
  assert.equal(refusalStatus(ErrorCode.MethodNotFound), 404)
})

test('decodeHeaderValue: plain ASCII, the Base64 sentinel, and malformed values', () => {
  assert.equal(decodeHeaderValue('plain value'), 'plain value')
  assert.equal(decodeHeaderValue(b64('héllo ✓')), 'héllo ✓')
  assert.equal(decodeHeaderValue('=?base64?not base64!?='), undefined)
  assert.equal(decodeHeaderValue('caf\u00e9'), undefined, 'non-ASCII outside the sentinel')
  assert.equal(decodeHeaderValue(`=?base64?${Buffer.from([0xff, 0xfe]).toString('base64')}?=`), undefined, 'bytes that are not UTF-8')
})

test('headerParams: x-mcp-header properties at any depth, cached per schema', () => {
  const schema = {
    type: 'object',
    properties: {
      region: { type: 'string', 'x-mcp-header': 'Region' },
      nested: { type: 'object', properties: { n: { type: 'number', 'x-mcp-header': 'N' } } },
      plain: { type: 'string' }
    }
  }
  const found = headerParams(schema)
  assert.deepEqual(found, [{ header: 'Region', path: ['region'] }, { header: 'N', path: ['nested', 'n'] }])
  assert.equal(headerParams(schema), found)
  assert.deepEqual(headerParams(null), [])
})

test('headerMismatch: method, name and mirrored params', () => {
  const schema = { properties: { region: { type: 'string', 'x-mcp-header': 'Region' }, n: { type: 'number', 'x-mcp-header': 'N' } } }
  const msg = call('héllo', { region: 'eu', n: 3 })
  assert.equal(mirroredName(msg), 'héllo')
  const ok = { 'mcp-method': 'tools/call', 'mcp-name': b64('héllo'), 'mcp-param-region': 'eu', 'mcp-param-n': '3.0' }
  assert.equal(headerMismatch(ok, msg, schema), undefined)
  assert.match(headerMismatch({}, msg, schema) ?? '', /Mcp-Method header is required/)
  assert.match(headerMismatch({ ...ok, 'mcp-method': 'tools/list' }, msg, schema) ?? '', /does not match body method/)
  assert.match(headerMismatch({ ...ok, 'mcp-name': 'other' }, msg, schema) ?? '', /Mcp-Name header value 'other' does not match/)
  assert.match(headerMismatch({ ...ok, 'mcp-param-region': 'us' }, msg, schema) ?? '', /Mcp-Param-Region header value does not match argument region/)
  const { 'mcp-param-n': _n, ...noN } = ok
  assert.match(headerMismatch(noN, msg, schema) ?? '', /Mcp-Param-N header is required/)
  assert.equal(headerMismatch(noN, call('héllo', { region: 'eu' }), schema), undefined, 'an absent argument needs no header')
})

test('checkStatelessHeaders: version header required and equal to _meta, then the mirrors', () => {
  const msg: JsonRpcRequest = { jsonrpc: '2.0', id: 1, method: 'tools/list' }
  const code = (fn: () => void): number | undefined => {
    try { fn() } catch (err) { return err instanceof RpcError ? err.code : -1 }
    return undefined
  }
  assert.equal(code(() => { checkStatelessHeaders({ 'mcp-method': 'tools/list' }, msg, meta) }), ErrorCode.HeaderMismatch)
  assert.equal(code(() => { checkStatelessHeaders({ 'mcp-protocol-version': '2025-06-18', 'mcp-method': 'tools/list' }, msg, meta) }), ErrorCode.HeaderMismatch)
  assert.equal(code(() => {
    checkStatelessHeaders({ 'mcp-protocol-version': '2025-06-18', 'mcp-method': 'tools/list' }, msg, { ...meta, protocolVersion: '2025-06-18' })
  }), ErrorCode.UnsupportedProtocolVersion)
  assert.equal(code(() => { checkStatelessHeaders({ 'mcp-protocol-version': V }, msg, meta) }), ErrorCode.HeaderMismatch)
  assert.equal(code(() => { checkStatelessHeaders({ 'mcp-protocol-version': V, 'mcp-method': 'tools/list' }, msg, meta) }), undefined)
})

test('an HTTP+SSE session record and its endpoint', () => {
  const s = newHttpSseSession('alice', 1000)
  assert.ok(isSessionId(s.id))
  assert.equal(s.protocolVersion, '2024-11-05')
  assert.equal(s.identity, 'alice')
  assert.equal(s.initialized, false)
  assert.equal(s.createdAt, 1000)
  assert.equal(httpSseEndpoint('a b'), '/messages?sessionId=a%20b')
  assert.equal(httpSseEndpoint('x', '/api'), '/api/messages?sessionId=x')
})

test('a session GET resumes the stream its Last-Event-ID names; anything else opens the standalone stream', () => {
  assert.deepEqual(sessionGetTarget(undefined), { part: 'g', kind: 'session', retryMs: undefined, afterSeq: undefined, afterEpoch: undefined })
  assert.deepEqual(sessionGetTarget({ streamPart: 'g', epoch: 'e1', seq: 4 }), { part: 'g', kind: 'session', retryMs: undefined, afterSeq: 4, afterEpoch: 'e1' })
  assert.deepEqual(sessionGetTarget({ streamPart: 'r0a1', epoch: 'e1', seq: 2 }),
    { part: 'r0a1', kind: 'request', retryMs: REQUEST_STREAM_RETRY_MS, afterSeq: 2, afterEpoch: 'e1' })
  assert.deepEqual(sessionGetTarget({ streamPart: 'p', seq: 9 }), { part: 'g', kind: 'session', retryMs: undefined, afterSeq: undefined, afterEpoch: undefined },
    'an id of another stream replays nothing')
  assert.deepEqual(publicResume({ streamPart: 'p', epoch: 'e', seq: 3 }), { afterSeq: 3, afterEpoch: 'e' })
  assert.deepEqual(publicResume({ streamPart: 'g', seq: 3 }), { afterSeq: undefined, afterEpoch: undefined })
})

test('readMessage: not JSON is -32700, over a limit or not JSON-RPC is -32600, a message is classified', () => {
  const limits = { maxDepth: 4, maxKeys: 100, maxStringBytes: 1000 }
  const bad = readMessage('{nope', limits)
  assert.equal(bad.ok, false)
  assert.equal(!bad.ok && bad.error.error.code, ErrorCode.ParseError)
  assert.equal(readMessage(undefined, limits).ok, false, 'a body Fastify did not keep as text')
  const deep = readMessage('{"a":{"b":{"c":{"d":{"e":{}}}}}}', limits)
  assert.equal(!deep.ok && deep.error.error.code, ErrorCode.InvalidRequest)
  const notRpc = readMessage('{"hello":1}', limits)
  assert.equal(!notRpc.ok && notRpc.error.error.code, ErrorCode.InvalidRequest)
  assert.deepEqual(notRpc.value, { hello: 1 }, 'the parsed value is kept for the request log')
  const ok = readMessage('{"jsonrpc":"2.0","id":1,"method":"ping"}', limits)
  assert.equal(ok.ok && ok.classified.kind, 'request')
})
