import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'
import { loadConfig } from '../src/config.js'
import { RpcError } from '../src/mcp/jsonrpc.js'
import { MemoryNonceStore, RequestStateCodec, askedAnswers, requestBinding } from '../src/mcp/mrtr.js'

/** MRTR requestState: binding to the real target, single use, size budget (issue 16 finding 4, issue 13). */

const V = '2026-07-28'
const codec = (maxBytes = 65_536): RequestStateCodec => new RequestStateCodec(
  Buffer.alloc(32, 1), { ttlMs: 60_000, maxBytes, nonces: new MemoryNonceStore() }
)

test('the binding is the real target: a stray name does not stand in for a resource URI, nor a uri for a tool name', () => {
  const read = (params: Record<string, unknown>) => requestBinding('resources/read', params)
  assert.notEqual(read({ uri: 'vault://public-notes', name: 'x' }), read({ uri: 'vault://payroll', name: 'x' }))
  assert.equal(read({ uri: 'vault://a', name: 'x' }), read({ uri: 'vault://a', name: 'y' }), 'name is not part of a read')
  const tool = (params: Record<string, unknown>) => requestBinding('tools/call', params)
  assert.notEqual(tool({ name: 'a', uri: 'u' }), tool({ name: 'b', uri: 'u' }))
  assert.notEqual(tool({ name: 'a', arguments: { n: 1 } }), tool({ name: 'a', arguments: { n: 2 } }))
  assert.equal(tool({ name: 'a', arguments: { x: 1, y: 2 } }), tool({ name: 'a', arguments: { y: 2, x: 1 } }), 'key order does not matter')
})

test('the binding digest refuses absurd nesting with -32602 instead of overflowing the stack', () => {
  let deep: unknown = 1
  for (let i = 0; i < 20_000; i++) deep = [deep]
  assert.throws(() => requestBinding('tools/call', { name: 'a', arguments: { deep } }), (err: unknown) => err instanceof RpcError && err.code === -32602)
})

test('a state is redeemed once; answers are used only for the keys it asked', async () => {
  const c = codec()
  const b = requestBinding('tools/call', { name: 't' })
  const token = c.seal({ b, p: null, e: Date.now() + 60_000, r: {}, k: ['q'] })
  const state = await c.redeem(token, b, null)
  assert.deepEqual(askedAnswers({ q: { action: 'accept' }, other: { action: 'accept' } }, state), { q: { action: 'accept' } })
  assert.equal(askedAnswers({ q: { action: 'accept' } }, undefined), undefined, 'no state: no answers')
  await assert.rejects(c.redeem(token, b, null), /already used/)
})

test('requestState larger than MAX_STATE_BYTES is never issued and never accepted', async () => {
  const c = codec(2048)
  const b = requestBinding('tools/call', { name: 't' })
  assert.throws(() => c.seal({ b, p: null, e: Date.now() + 60_000, r: { q: { text: 'x'.repeat(4000) } }, k: [] }), /MAX_STATE_BYTES/)
  await assert.rejects(c.redeem('x'.repeat(3000), b, null), /larger than MAX_STATE_BYTES/)
})

test('the in-memory nonce store forgets expired nonces and refuses when full rather than forgetting live ones', async () => {
  const store = new MemoryNonceStore(2, 2)
  assert.equal(await store.consume('a', 1000, undefined, 0), true)
  assert.equal(await store.consume('a', 1000, undefined, 10), false)
  assert.equal(await store.consume('b', 1000, undefined, 20), true)
  await assert.rejects(store.consume('c', 1000, undefined, 30), /too many/)
  assert.equal(await store.consume('c', 1000, undefined, 2000), true, 'expired ones make room')
  assert.equal(store.size, 1)
})

test('over HTTP: answers that would make the next requestState exceed MAX_STATE_BYTES are -32602 naming the budget', async (t) => {
  const app = await build(t, { fixtures: 'conformance', budgets: { ...loadConfig({}).budgets, stateBytes: 4096 } })
  const post = async (params: Record<string, unknown>) => (await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'test_input_required_result_multi_round' },
    payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_input_required_result_multi_round', arguments: {}, ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } } }
  })).json<{ result?: Record<string, unknown>, error?: { code: number, message: string } }>()
  const r1 = await post({})
  const r2 = await post({ requestState: r1.result?.requestState, inputResponses: { step1: { action: 'accept', content: { name: 'A'.repeat(5000) } } } })
  assert.equal(r2.error?.code, -32602, JSON.stringify(r2).slice(0, 300))
  assert.match(r2.error?.message ?? '', /MAX_STATE_BYTES/)
})

test('the codec opens what it sealed, and refuses a tampered, foreign, expired, misbound or other caller\'s state', () => {
  const c = codec()
  const b = requestBinding('tools/call', { name: 't' })
  const now = Date.now()
  const token = c.seal({ b, p: 'alice', e: now + 60_000, r: { q: { action: 'accept' } }, k: ['q'] })
  const state = c.open(token, b, 'alice', now)
  assert.deepEqual(state.r, { q: { action: 'accept' } })
  assert.deepEqual(state.k, ['q'])
  assert.equal(typeof state.n, 'string')
  const dot = token.lastIndexOf('.')
  const body = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8')) as Record<string, unknown>
  const forged = Buffer.from(JSON.stringify({ ...body, p: 'mallory' })).toString('base64url') + token.slice(dot)
  assert.throws(() => c.open(forged, b, 'mallory', now), /integrity check failed/)
  const other = new RequestStateCodec(Buffer.alloc(32, 2), { ttlMs: 60_000, maxBytes: 65_536, nonces: new MemoryNonceStore() })
  assert.throws(() => other.open(token, b, 'alice', now), /integrity check failed/, 'another secret')
  assert.throws(() => c.open(token, b, 'alice', now + 120_000), /expired/)
  assert.throws(() => c.open(token, requestBinding('tools/call', { name: 'u' }), 'alice', now), /different request/)
  assert.throws(() => c.open(token, b, 'bob', now), /different caller/)
  assert.throws(() => c.open(42, b, 'alice', now), /must be the string/)
})
