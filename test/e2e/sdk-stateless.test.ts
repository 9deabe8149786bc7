import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { Client as SdkV1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as SdkV1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { listen } from '../helper.js'
import { until } from './sdk.js'
import { kEngine } from '../../src/mcp/engine.js'

// The official SDK v2 client (@modelcontextprotocol/client) in its "modern" mode (our stateless era), on a real port:
// it probes with server/discover, stays stateless (2026-07-28), fulfils MRTR input requests
// through its own handlers and receives change notifications on subscriptions/listen.

async function sdkV2Client (
  t: TestContext, url: string, capabilities: Record<string, object> = { elicitation: { form: {} } }
): Promise<Client> {
  const client = new Client({ name: 'v2-test', version: '1.0.0' }, { capabilities, versionNegotiation: { mode: 'auto' } })
  client.setRequestHandler('elicitation/create', async (request) => {
    const props = Object.keys((request.params as { requestedSchema?: { properties?: object } }).requestedSchema?.properties ?? {})
    return { action: 'accept', content: Object.fromEntries(props.map((p) => [p, p === 'name' ? 'Ada' : 'blue'])) }
  })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)))
  t.after(async () => { await client.close() })
  return client
}

test('SDK v2 client (versionNegotiation auto) selects the 2026-07-28 era: discover, list, call, no session', async (t) => {
  const { url, app } = await listen(t)
  const client = await sdkV2Client(t, url)
  assert.equal(client.getProtocolEra(), 'modern')
  const discover = client.getDiscoverResult()
  assert.ok(discover?.supportedVersions.includes('2026-07-28'))
  assert.ok(discover?.supportedVersions.includes('2025-11-25'), 'a dual-era server lists the session-based versions too')
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((x) => x.name).sort(), ['current_time', 'echo'])
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'stateless 👋' } })
  assert.deepEqual(echo.content, [{ type: 'text', text: 'stateless 👋' }])
  assert.equal(app[kEngine].sessions.size, 0, 'stateless: no session was created')
})

test('SDK v2 client fulfils MRTR input requests (one round and two rounds) with its own elicitation handler', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const client = await sdkV2Client(t, url)
  const one = await client.callTool({ name: 'test_input_required_result_elicitation', arguments: {} })
  assert.deepEqual(one.content, [{ type: 'text', text: 'Hello, Ada!' }])
  const two = await client.callTool({ name: 'test_input_required_result_multi_round', arguments: {} })
  assert.deepEqual(two.content, [{ type: 'text', text: 'Ada likes blue' }])
  const state = await client.callTool({ name: 'test_input_required_result_request_state', arguments: {} })
  assert.match((state.content as Array<{ text: string }>)[0]?.text ?? '', /^state-ok/)
})

test('SDK v2 client: a tool needing sampling it did not declare fails with -32021', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const client = await sdkV2Client(t, url)
  await assert.rejects(client.callTool({ name: 'test_missing_capability', arguments: {} }), (err: Error & { code?: number }) => {
    assert.equal(err.code, -32021, err.message)
    return true
  })
})

test('SDK v2 client listen(): list changes arrive on the subscriptions/listen stream, only those it asked for', async (t) => {
  const { url, app } = await listen(t, { fixtures: 'conformance' })
  const client = await sdkV2Client(t, url)
  const seen: string[] = []
  client.setNotificationHandler('notifications/tools/list_changed', () => { seen.push('tools') })
  client.setNotificationHandler('notifications/prompts/list_changed', () => { seen.push('prompts') })
  const sub = await client.listen({ toolsListChanged: true })
  assert.equal(sub.honoredFilter.toolsListChanged, true)
  await until(() => app.hub.stats().byKind.listen === 1)
  await client.callTool({ name: 'test_trigger_prompt_change', arguments: {} })
  await client.callTool({ name: 'test_trigger_tool_change', arguments: {} })
  await until(() => seen.length > 0)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(seen, ['tools'])
  await sub.close()
  await until(() => app.hub.stats().byKind.listen === 0)
})

test('the same endpoint still serves a 2025 client: SDK 1.x initializes a session next to a v2 stateless client', async (t) => {
  const { url, app } = await listen(t)
  const v2 = await sdkV2Client(t, url)
  const v1 = new SdkV1Client({ name: 'v1', version: '1.0.0' })
  const transport = new SdkV1Transport(new URL(`${url}/mcp`))
  await v1.connect(transport)
  t.after(async () => { await v1.close() })
  assert.equal(v1.getServerVersion()?.name, 'sse-mcp-server')
  assert.ok(transport.sessionId)
  assert.equal(app[kEngine].sessions.size, 1)
  const [a, b] = await Promise.all([
    v2.callTool({ name: 'echo', arguments: { message: 'v2' } }),
    v1.callTool({ name: 'echo', arguments: { message: 'v1' } })
  ])
  assert.deepEqual([a.content, b.content], [[{ type: 'text', text: 'v2' }], [{ type: 'text', text: 'v1' }]])
})
