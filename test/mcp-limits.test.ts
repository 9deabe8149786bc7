import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Type } from '@sinclair/typebox'
import { build, injectSession } from './helper.js'

const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }

const session = injectSession

test('a tool running past TOOL_TIMEOUT_MS is answered with a tool error and its signal is aborted', async (t) => {
  let aborted = false
  const app = await build(t, { toolTimeoutMs: 150 }, (a) => {
    a.mcp.tool({
      name: 'hang',
      inputSchema: Type.Object({}),
      handler: async (_args, ctx) => await new Promise((resolve) => ctx.signal.addEventListener('abort', () => { aborted = true; resolve({ content: [] }) }))
    })
  })
  const sid = await session(app)
  const res = await app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': sid }, payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'hang', arguments: {} } } })
  assert.equal(res.statusCode, 200)
  const body = res.json()
  assert.equal(body.result.isError, true)
  assert.match(body.result.content[0].text, /timed out after 150 ms/)
  assert.ok(aborted)
})

test('past MAX_INFLIGHT_PER_SESSION concurrent calls a session gets JSON-RPC -32000; others are unaffected', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const app = await build(t, { maxInflightPerSession: 1 }, (a) => {
    a.mcp.tool({ name: 'wait', inputSchema: Type.Object({}), handler: async () => { await gate; return { content: [{ type: 'text', text: 'done' }] } } })
  })
  const sid = await session(app)
  const other = await session(app)
  const call = (s: string, id: number) => app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': s }, payload: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'wait', arguments: {} } } })
  const first = call(sid, 1)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const second = await call(sid, 2)
  assert.equal(second.json().error.code, -32000)
  const otherCall = call(other, 3)
  release()
  assert.equal((await first).json().result.content[0].text, 'done')
  assert.equal((await otherCall).json().result.content[0].text, 'done')
})
