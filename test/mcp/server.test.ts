import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Type } from '@sinclair/typebox'
import { McpServer, type McpServerOptions, type TransportContext } from '../../src/mcp/server.js'
import { MemorySessionStore } from '../../src/mcp/sessions/memory.js'
import type { SessionRecord } from '../../src/mcp/sessions/store.js'
import { ErrorCode, type JsonRpcMessage, type JsonRpcNotification, type JsonRpcRequest } from '../../src/mcp/jsonrpc.js'
import { LATEST_PROTOCOL_VERSION } from '../../src/meta.js'

/** McpServer alone: no Fastify, no HTTP — a session store, a notify function and a transport context. */

function server (opts: Partial<McpServerOptions> = {}) {
  const notified: Array<{ session: string, message: JsonRpcNotification }> = []
  const mcp = new McpServer({
    name: 'unit',
    version: '1.2.3',
    sessions: new MemorySessionStore(60_000),
    notify: async (session, message) => { notified.push({ session: session.id, message }) },
    ...opts
  })
  return { mcp, notified }
}

function context (sent: JsonRpcMessage[] = []): TransportContext {
  return { transport: 'streamable-http', identity: null, send: async (m) => { sent.push(m) } }
}

let nextId = 1
const req = (method: string, params?: Record<string, unknown>): JsonRpcRequest => ({ jsonrpc: '2.0', id: nextId++, method, params })

async function session (mcp: McpServer, params: Record<string, unknown> = {}): Promise<SessionRecord> {
  const { created } = await mcp.initialize(req('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' }, ...params }), context())
  assert.ok(created)
  return created
}

test('initialize creates a session, negotiates the version and reports server info and capabilities', async () => {
  const { mcp } = server()
  const { response, created } = await mcp.initialize(req('initialize', { protocolVersion: '2025-06-18', capabilities: {} }), context())
  assert.ok(created)
  assert.equal(created.transport, 'streamable-http')
  assert.equal(await mcp.sessions.get(created.id) !== undefined, true)
  assert.ok(response !== null && 'result' in response)
  assert.equal(response.result.protocolVersion, '2025-06-18')
  assert.deepEqual(response.result.serverInfo, { name: 'unit', version: '1.2.3' })
  assert.ok(typeof response.result.capabilities === 'object')
  assert.equal(mcp.negotiate('1999-01-01'), LATEST_PROTOCOL_VERSION, 'an unknown version negotiates to the latest session version')
})

test('initialize over the client-info budget is refused and creates nothing', async () => {
  const { mcp } = server({ clientInfoBytes: 100 })
  const { response, created } = await mcp.initialize(req('initialize', { capabilities: { experimental: { x: 'y'.repeat(200) } } }), context())
  assert.equal(created, undefined)
  assert.ok(response !== null && 'error' in response)
  assert.equal(response.error.code, ErrorCode.InvalidParams)
  assert.equal(mcp.sessions.size, 0)
})

test('tools: list, call with validated arguments, a bad argument is a tool error, an unknown method is -32601', async () => {
  const { mcp } = server()
  mcp.tool({
    name: 'add',
    inputSchema: Type.Object({ a: Type.Number(), b: Type.Number() }),
    handler: ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] })
  })
  const s = await session(mcp)
  const list = await mcp.request(req('tools/list'), s, context())
  assert.ok(list.response !== null && 'result' in list.response)
  assert.deepEqual((list.response.result.tools as Array<{ name: string }>).map((t) => t.name), ['add'])

  const ok = await mcp.request(req('tools/call', { name: 'add', arguments: { a: 2, b: 3 } }), s, context())
  assert.ok(ok.response !== null && 'result' in ok.response)
  assert.deepEqual(ok.response.result.content, [{ type: 'text', text: '5' }])

  const bad = await mcp.request(req('tools/call', { name: 'add', arguments: { a: 'two' } }), s, context())
  assert.ok(bad.response !== null && 'result' in bad.response)
  assert.equal(bad.response.result.isError, true)

  const unknown = await mcp.request(req('nope/nope'), s, context())
  assert.ok(unknown.response !== null && 'error' in unknown.response)
  assert.equal(unknown.response.error.code, ErrorCode.MethodNotFound)
})

test('a tool sends progress through the transport context, and cancel stops a running call without a response', async () => {
  const { mcp } = server()
  let release: () => void = () => undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  mcp.tool({
    name: 'slow',
    inputSchema: Type.Object({}),
    handler: async (_args, ctx) => {
      await ctx.progress(1, 2, 'half')
      await gate
      return { content: [{ type: 'text', text: 'done' }] }
    }
  })
  const s = await session(mcp)
  const sent: JsonRpcMessage[] = []
  const call = req('tools/call', { name: 'slow', arguments: {}, _meta: { progressToken: 'p1' } })
  const running = mcp.request(call, s, context(sent))
  await new Promise<void>((resolve) => { setImmediate(resolve) })
  assert.equal(mcp.inflight, 1)
  assert.equal(mcp.cancel(s.id, call.id, 'test'), true)
  release()
  const { response } = await running
  assert.equal(response, null, 'a cancelled request gets no response')
  assert.equal(mcp.inflight, 0)
  const progress = sent.find((m) => 'method' in m && m.method === 'notifications/progress')
  assert.ok(progress, 'progress went out on the request context')
})

test('a request id still running in the session cannot be reused', async () => {
  const { mcp } = server()
  let release: () => void = () => undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  mcp.tool({ name: 'wait', inputSchema: Type.Object({}), handler: async () => { await gate; return { content: [] } } })
  const s = await session(mcp)
  const first = req('tools/call', { name: 'wait', arguments: {} })
  const running = mcp.request(first, s, context())
  const again = await mcp.request({ ...first }, s, context())
  assert.ok(again.response !== null && 'error' in again.response)
  assert.equal(again.response.error.code, ErrorCode.InvalidRequest)
  release()
  await running
})

test('registering a tool tells initialized sessions that the list changed', async () => {
  const { mcp, notified } = server()
  const s = await session(mcp)
  await mcp.notification({ jsonrpc: '2.0', method: 'notifications/initialized' }, s)
  mcp.tool({ name: 'later', inputSchema: Type.Object({}), handler: () => ({ content: [] }) })
  const deadline = Date.now() + 2000
  while (notified.length === 0 && Date.now() < deadline) await new Promise<void>((resolve) => { setImmediate(resolve) })
  assert.deepEqual(notified, [{ session: s.id, message: { jsonrpc: '2.0', method: 'notifications/tools/list_changed' } }])
})
