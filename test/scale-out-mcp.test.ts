import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Type } from '@sinclair/typebox'
import { listen, type Setup } from './helper.js'
import type { App } from '../src/app.js'
import type { Config } from '../src/config.js'
import { missing, startRedis, type RedisServer } from './e2e/services.js'
import { openSse } from './sse-client.js'
import { ignore } from '../src/ignore.js'
import { kEngine } from '../src/mcp/engine.js'

/**
 * MCP across replicas (issue 16 findings 2, 4, 5, 7, 8, 9): two apps in this process on their
 * own ports, sharing one real redis-server.
 */

const skip = missing('redis-server')
const ACCEPT = 'application/json, text/event-stream'
const VERSION = '2025-11-25'

interface Replica { app: App, url: string }

/** Resources whose read needs the user's consent (asked by elicitation, answered by MRTR in the stateless era). */
const vault: Setup = (app) => {
  for (const name of ['public-notes', 'payroll']) {
    app.mcp.resource({
      uri: `vault://${name}`,
      name,
      read: async (uri, ctx) => {
        const consent = await ctx.request('elicitation/create', { message: `Show ${uri}?`, requestedSchema: { type: 'object', properties: {} } }, { key: 'consent' })
        if (consent.action !== 'accept') throw new Error('declined')
        return { contents: [{ uri, text: `contents of ${uri}` }] }
      }
    })
  }
}

async function replica (t: TestContext, redis: RedisServer, overrides: Partial<Config> = {}): Promise<Replica> {
  return await listen(t, { redisUrl: redis.url, fixtures: 'conformance', rateLimitMax: 0, ...overrides }, vault)
}

async function cluster (t: TestContext, overrides: Partial<Config> = {}) {
  const redis = await startRedis(t)
  const a = await replica(t, redis, overrides)
  const b = await replica(t, redis, overrides)
  return { redis, a, b }
}

function rawRedis (t: TestContext, redis: RedisServer): Redis {
  const r = new Redis(redis.url, { maxRetriesPerRequest: 2 })
  r.on('error', () => {})
  t.after(() => { r.disconnect() })
  return r
}

async function initialize (base: string, capabilities: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION, capabilities, clientInfo: { name: 'scale', version: '1' } } })
  })
  assert.equal(res.status, 200)
  const sid = res.headers.get('mcp-session-id') ?? ''
  await post(base, sid, { jsonrpc: '2.0', method: 'notifications/initialized' })
  return sid
}

const sessionHeaders = (sid: string): Record<string, string> => ({ 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': sid, 'mcp-protocol-version': VERSION })

async function post (base: string, sid: string, body: unknown): Promise<Response> {
  return await fetch(`${base}/mcp`, { method: 'POST', headers: sessionHeaders(sid), body: JSON.stringify(body) })
}

interface Message {
  id?: string | number,
  method?: string,
  params?: Record<string, unknown>,
  result?: Record<string, unknown>,
  error?: { code: number, message: string }
}

/** A tools/call whose answer is an SSE stream: resolves the server→client request it carries, then the final response. */
async function callStreaming (t: TestContext, base: string, sid: string, id: number, name: string, args: Record<string, unknown>) {
  const sse = await openSse(`${base}/mcp`, { method: 'POST', headers: sessionHeaders(sid), body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }) })
  t.after(() => sse.close())
  const next = async (): Promise<Message> => {
    for (;;) {
      const ev = await sse.next(10_000)
      if (ev === undefined) throw new Error('stream ended')
      if (ev.data !== '') return JSON.parse(ev.data) as Message
    }
  }
  const request = await next()
  return { request, response: async () => await next() }
}

/** A stateless (2026-07-28) POST. */
async function statelessCall (base: string, method: string, params: Record<string, unknown>): Promise<Message> {
  const res = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': '2026-07-28', 'mcp-method': method, 'mcp-name': String(method === 'resources/read' ? params.uri : params.name) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } } })
  })
  return await res.json() as Message
}

const accept = { consent: { action: 'accept', content: {} } }

test('one session, sampling started on A and elicitation on B at once: each answer (posted through either replica) completes its own call', { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await cluster(t)
  const sid = await initialize(a.url, { sampling: {}, elicitation: {} })
  const [sampling, elicitation] = await Promise.all([
    callStreaming(t, a.url, sid, 1, 'test_sampling', { prompt: 'hi' }),
    callStreaming(t, b.url, sid, 2, 'test_elicitation', { message: 'who?' })
  ])
  assert.equal(sampling.request.method, 'sampling/createMessage')
  assert.equal(elicitation.request.method, 'elicitation/create')
  assert.notEqual(sampling.request.id, elicitation.request.id, 'server→client ids are unique across replicas')
  // Each answer goes through the replica that did NOT send the request.
  assert.equal((await post(a.url, sid, { jsonrpc: '2.0', id: elicitation.request.id, result: { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } } })).status, 202)
  assert.equal((await post(b.url, sid, { jsonrpc: '2.0', id: sampling.request.id, result: { role: 'assistant', model: 'm', content: { type: 'text', text: 'sampled' } } })).status, 202)
  const s = await sampling.response()
  const e = await elicitation.response()
  assert.deepEqual(s.result?.content, [{ type: 'text', text: 'LLM response: sampled' }])
  assert.match(JSON.stringify(e.result?.content), /ada@example\.com/)
})

test('an answer for the right id but another session completes nothing', { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await cluster(t)
  const mine = await initialize(a.url, { elicitation: {} })
  const other = await initialize(b.url, { elicitation: {} })
  const call = await callStreaming(t, a.url, mine, 1, 'test_elicitation', { message: 'who?' })
  assert.equal((await post(b.url, other, { jsonrpc: '2.0', id: call.request.id, result: { action: 'decline' } })).status, 202)
  assert.equal((await post(a.url, other, { jsonrpc: '2.0', id: call.request.id, result: { action: 'decline' } })).status, 202)
  assert.equal((await post(b.url, mine, { jsonrpc: '2.0', id: call.request.id, result: { action: 'accept', content: { username: 'bo', email: 'bo@example.com' } } })).status, 202)
  assert.match(JSON.stringify((await call.response()).result?.content), /bo@example\.com/)
})

test('MRTR: consent for vault://public-notes (with a stray name) cannot read vault://payroll; answers without their state are not used; a state works once', { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await cluster(t)
  const r1 = await statelessCall(a.url, 'resources/read', { uri: 'vault://public-notes', name: 'x' })
  assert.equal(r1.result?.resultType, 'input_required')
  const state = r1.result?.requestState as string
  const stolen = await statelessCall(b.url, 'resources/read', { uri: 'vault://payroll', name: 'x', requestState: state, inputResponses: accept })
  assert.equal(stolen.error?.code, -32602, JSON.stringify(stolen))
  assert.match(stolen.error?.message ?? '', /different request/)

  // Answers without the state that asked for them are never used: consent is asked again.
  const bare = await statelessCall(b.url, 'resources/read', { uri: 'vault://payroll', inputResponses: accept })
  assert.equal(bare.result?.resultType, 'input_required', JSON.stringify(bare))
  assert.equal(bare.result?.contents, undefined)

  const ok = await statelessCall(b.url, 'resources/read', { uri: 'vault://public-notes', name: 'x', requestState: state, inputResponses: accept })
  assert.deepEqual(ok.result?.contents, [{ uri: 'vault://public-notes', text: 'contents of vault://public-notes' }])
  for (const base of [a.url, b.url]) {
    const replay = await statelessCall(base, 'resources/read', { uri: 'vault://public-notes', name: 'x', requestState: state, inputResponses: accept })
    assert.equal(replay.error?.code, -32602, JSON.stringify(replay))
    assert.match(replay.error?.message ?? '', /already used/)
  }
})

test('MRTR after a Redis restart (no STATE_SECRET): round 1 on A, the retry on B and on a replica started after the restart', { skip, timeout: 60_000 }, async (t) => {
  const { redis, a, b } = await cluster(t)
  await redis.stop()
  await redis.start()
  const raw = rawRedis(t, redis)
  // The replicas re-offer their shared key when they reconnect.
  const deadline = Date.now() + 20_000
  while (await raw.exists('mcp:state-secret') === 0) {
    assert.ok(Date.now() < deadline, 'a replica re-offered the requestState key')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const c = await replica(t, redis)
  for (const retryOn of [b, c]) {
    const r1 = await statelessCall(a.url, 'resources/read', { uri: 'vault://payroll' })
    assert.equal(r1.result?.resultType, 'input_required', JSON.stringify(r1))
    const r2 = await statelessCall(retryOn.url, 'resources/read', { uri: 'vault://payroll', requestState: r1.result?.requestState, inputResponses: accept })
    assert.deepEqual(r2.result?.contents, [{ uri: 'vault://payroll', text: 'contents of vault://payroll' }], JSON.stringify(r2))
  }
  // And the other way round: state sealed by the newcomer verifies on A.
  const r1 = await statelessCall(c.url, 'resources/read', { uri: 'vault://payroll' })
  const r2 = await statelessCall(a.url, 'resources/read', { uri: 'vault://payroll', requestState: r1.result?.requestState, inputResponses: accept })
  assert.equal(r2.result?.resultType, 'complete', JSON.stringify(r2))
})

test('20 concurrent resources/subscribe of different URIs split between A and B: all 20 kept (sets per session, a URI index)', { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await cluster(t)
  const sid = await initialize(a.url)
  const uris = Array.from({ length: 20 }, (_, i) => `test://doc/${i}`)
  const answers = await Promise.all(uris.map(async (uri, i) => await (await post(i % 2 === 0 ? a.url : b.url, sid, { jsonrpc: '2.0', id: i + 1, method: 'resources/subscribe', params: { uri } })).json() as Message))
  for (const r of answers) assert.deepEqual(r.result, {})
  assert.deepEqual((await a.app[kEngine].sessions.subscriptionsOf(sid)).sort(), [...uris].sort())
  // Unsubscribes are atomic too, and logLevel/initialized are separate fields (no lost writes).
  await Promise.all(uris.slice(0, 10).map(async (uri, i) => await post(i % 2 === 0 ? b.url : a.url, sid, { jsonrpc: '2.0', id: 100 + i, method: 'resources/unsubscribe', params: { uri } })))
  await post(b.url, sid, { jsonrpc: '2.0', id: 200, method: 'logging/setLevel', params: { level: 'error' } })
  const after = await b.app[kEngine].sessions.get(sid)
  assert.deepEqual((await b.app[kEngine].sessions.subscriptionsOf(sid)).sort(), uris.slice(10).sort())
  assert.equal(after?.logLevel, 'error')
  assert.equal(after?.initialized, true)
  assert.deepEqual(await b.app[kEngine].sessions.subscribers('test://doc/15'), [sid])
  assert.deepEqual(await b.app[kEngine].sessions.subscribers('test://doc/5'), [])
  // DELETE drops the session's subscriptions from the URI index.
  assert.equal((await fetch(`${b.url}/mcp`, { method: 'DELETE', headers: sessionHeaders(sid) })).status, 204)
  assert.deepEqual(await a.app[kEngine].sessions.subscribers('test://doc/15'), [])
})

test('200 unawaited 1 MB responses and cancels of requests running nowhere: nothing is relayed between replicas', { skip, timeout: 120_000 }, async (t) => {
  const { redis, a, b } = await cluster(t)
  const sid = await initialize(a.url)
  const spy = rawRedis(t, redis)
  let relayed = 0
  let messages = 0
  spy.on('pmessage', (_pattern: string, channel: string, payload: string) => {
    if (channel.startsWith('mcp:control')) { relayed += Buffer.byteLength(payload); messages++ }
  })
  await spy.psubscribe('mcp:control*', 'hub:changes')
  const big = 'x'.repeat(1_000_000)
  for (let i = 0; i < 200; i += 10) {
    await Promise.all(Array.from({ length: 10 }, async (_, j) => {
      const res = await post(a.url, sid, { jsonrpc: '2.0', id: `srv-${i + j}`, result: { junk: big } })
      assert.equal(res.status, 202)
    }))
    // Cancels of requests running nowhere are not relayed either.
    await post(a.url, sid, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: i, reason: big.slice(0, 10_000) } })
  }
  // A marker published by the server after the flood (a change: its wake-up on the changes key's
  // channel, same connection): once the spy sees it, everything before it has been seen.
  const marker = new Promise<void>((resolve) => { spy.on('pmessage', (_p: string, channel: string) => { if (channel === 'hub:changes') resolve() }) })
  await a.app.mcp.resourceUpdated('test://marker')
  await marker
  t.diagnostic(`relayed on mcp:control*: ${relayed} bytes in ${messages} messages`)
  assert.equal(messages, 0, 'nothing crossed the control channels')
  assert.equal((await post(b.url, sid, { jsonrpc: '2.0', id: 1, method: 'ping' })).status, 200)
})

test('run-time registration with REDIS_URL is refused with a clear error (no list_changed); start-up registrations are on every replica', { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await cluster(t)
  const sid = await initialize(b.url)
  assert.throws(() => { a.app.mcp.tool({ name: 'late', inputSchema: Type.Object({}), handler: () => ({ content: [] }) }) }, /register them at start-up on every replica/)
  assert.throws(() => a.app.mcp.removeTool('echo'), /register them at start-up/)
  assert.throws(() => { a.app.mcp.prompt({ name: 'late', get: () => ({ messages: [] }) }) }, /register them at start-up/)
  // The conformance trigger (which registers at run time) answers with a tool error saying so.
  const trigger = await (await post(a.url, sid, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_trigger_tool_change', arguments: {} } })).json() as Message
  assert.equal(trigger.result?.isError, true)
  assert.match(JSON.stringify(trigger.result?.content), /start-up/)
  for (const r of [a, b]) {
    const list = await (await post(r.url, sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' })).json() as { result: { tools: Array<{ name: string }> } }
    const names = list.result.tools.map((x) => x.name)
    assert.ok(names.includes('echo') && !names.includes('late') && !names.includes('test_dynamic_tool'), names.join(','))
    const read = await (await post(r.url, sid, { jsonrpc: '2.0', id: 3, method: 'resources/list' })).json() as { result: { resources: Array<{ uri: string }> } }
    assert.ok(read.result.resources.some((x) => x.uri === 'vault://payroll'), 'registered before ready: on every replica')
  }
})

test('a cancel posted on B stops the request running on A (relayed to A alone)', { skip, timeout: 60_000 }, async (t) => {
  const { redis, a, b } = await cluster(t)
  const sid = await initialize(a.url)
  const spy = rawRedis(t, redis)
  const channels: string[] = []
  spy.on('pmessage', (_p: string, channel: string) => { channels.push(channel) })
  await spy.psubscribe('mcp:control*')
  const cmd = rawRedis(t, redis)
  const running = post(a.url, sid, { jsonrpc: '2.0', id: 'long', method: 'tools/call', params: { name: 'test_sleep', arguments: { ms: 20_000 } } })
  const deadline = Date.now() + 5000
  while (await cmd.exists(`mcp:run:${sid}:long`) === 0) {
    assert.ok(Date.now() < deadline, 'the running request is recorded')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const started = Date.now()
  assert.equal((await post(b.url, sid, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'long', reason: 'user' } })).status, 202)
  while (a.app[kEngine].server.inflight > 0) {
    assert.ok(Date.now() - started < 5000, 'cancelled within 5 s')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  running.catch(ignore('awaited below; only marks the rejection handled'))
  assert.equal(channels.length, 1)
  assert.match(channels[0] ?? '', /^mcp:control:/, 'sent on the running replica\'s own channel')
})
