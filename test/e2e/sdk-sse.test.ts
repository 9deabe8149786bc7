import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import { listen } from '../helper.js'
import { sseClient, until } from './sdk.js'
import { kEngine } from '../../src/mcp/engine.js'

test('the SDK SSE client (2024-11-05 transport) initializes, lists and calls tools', async (t) => {
  const { app, url } = await listen(t)
  const { client } = await sseClient(t, url)
  assert.equal(client.getServerVersion()?.name, 'sse-mcp-server')
  assert.equal(app.hub.stats().byKind['http+sse'], 1)
  const { tools } = await client.listTools()
  assert.ok(tools.some((x) => x.name === 'current_time'))
  const res = await client.callTool({ name: 'echo', arguments: { message: 'over the HTTP+SSE transport' } })
  assert.deepEqual(res.content, [{ type: 'text', text: 'over the HTTP+SSE transport' }])
  const { resources } = await client.listResources()
  assert.ok(resources.some((r) => r.uri === 'server://info'))
})

test('a server→client request works over the HTTP+SSE transport (sampling round-trip)', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const { client } = await sseClient(t, url, { capabilities: { sampling: {} } })
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({ role: 'assistant', content: { type: 'text', text: 'sse ok' }, model: 'm' }))
  const res = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'hi' } })
  assert.deepEqual(res.content, [{ type: 'text', text: 'LLM response: sse ok' }])
})

test('closing the HTTP+SSE stream ends its session: /messages then answers 404', async (t) => {
  const { app, url } = await listen(t)
  const { client, transport } = await sseClient(t, url)
  const endpoint = (transport as unknown as { _endpoint?: URL })._endpoint
  assert.ok(endpoint, 'the endpoint event named the POST URL')
  assert.match(endpoint.pathname + endpoint.search, /^\/messages\?sessionId=[A-Za-z0-9_-]+$/)
  await client.close()
  await until(() => app[kEngine].stats().sessions === 0, 5000, 'the session to end')
  const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }) })
  assert.equal(res.status, 404)
})
