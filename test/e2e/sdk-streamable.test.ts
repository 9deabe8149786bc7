import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Type } from '@sinclair/typebox'
import {
  CreateMessageRequestSchema, LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema, type LoggingMessageNotification, type Progress
} from '@modelcontextprotocol/sdk/types.js'
import { listen } from '../helper.js'
import { streamableClient, until } from './sdk.js'

test('the SDK client initializes over Streamable HTTP and gets a session and our capabilities', async (t) => {
  const { url } = await listen(t)
  const { client, transport } = await streamableClient(t, url)
  assert.match(transport.sessionId ?? '', /^[A-Za-z0-9_-]{20,}$/)
  assert.equal(client.getServerVersion()?.name, 'sse-mcp-server')
  const caps = client.getServerCapabilities()
  assert.ok(caps?.tools && caps.resources?.subscribe && caps.prompts && caps.logging)
})

test('the SDK client lists tools and calls current_time and echo', async (t) => {
  const { url } = await listen(t)
  const { client } = await streamableClient(t, url)
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((x) => x.name).sort(), ['current_time', 'echo'])
  const time = await client.callTool({ name: 'current_time', arguments: { timezone: 'Asia/Tokyo' } })
  assert.equal(time.isError, undefined)
  assert.equal((time.structuredContent as { timezone: string }).timezone, 'Asia/Tokyo')
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'héllo 👋' } })
  assert.deepEqual(echo.content, [{ type: 'text', text: 'héllo 👋' }])
})

test('an unknown time zone is a tool error that says so', async (t) => {
  const { url } = await listen(t)
  const { client } = await streamableClient(t, url)
  const res = await client.callTool({ name: 'current_time', arguments: { timezone: 'Mars/Olympus_Mons' } })
  assert.equal(res.isError, true)
  assert.match((res.content as Array<{ text: string }>)[0]?.text ?? '', /Unknown time zone "Mars\/Olympus_Mons"/)
})

test('progress notifications reach the SDK client while a tool runs', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const { client } = await streamableClient(t, url)
  const seen: Progress[] = []
  const res = await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, { onprogress: (p) => seen.push(p) })
  assert.equal(res.isError, undefined)
  assert.deepEqual(seen.map((p) => p.progress), [0, 50, 100])
  assert.ok(seen.every((p) => p.total === 100))
})

test('log messages respect the level the client sets', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const { client } = await streamableClient(t, url)
  const logs: LoggingMessageNotification['params'][] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params) })
  await client.setLoggingLevel('debug')
  await client.callTool({ name: 'test_tool_with_logging', arguments: {} })
  assert.deepEqual(logs.map((l) => l.data), ['Tool execution started', 'Tool processing data', 'Tool execution completed'])
  logs.length = 0
  await client.setLoggingLevel('error')
  await client.callTool({ name: 'test_tool_with_logging', arguments: {} })
  assert.equal(logs.length, 0, 'info messages are filtered out at level error')
})

test('cancelling a call from the SDK aborts the tool handler', async (t) => {
  let aborted = false
  let started = false
  const { url } = await listen(t, {}, (app) => {
    app.mcp.tool({
      name: 'wait_forever',
      inputSchema: Type.Object({}),
      handler: async (_args, ctx) => {
        started = true
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { aborted = true; resolve() }, { once: true }))
        return { content: [{ type: 'text', text: 'should not be sent' }] }
      }
    })
  })
  const { client } = await streamableClient(t, url)
  const controller = new AbortController()
  const call = client.callTool({ name: 'wait_forever', arguments: {} }, undefined, { signal: controller.signal })
  await until(() => started, 5000, 'the tool to start')
  controller.abort('user pressed stop')
  await assert.rejects(call)
  await until(() => aborted, 5000, 'the handler to see the abort')
})

test('sampling: a tool asks the SDK client to sample and gets its answer', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const { client } = await streamableClient(t, url, { capabilities: { sampling: {} } })
  const prompts: string[] = []
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    const content = req.params.messages[0]?.content as { type: string, text: string }
    prompts.push(content.text)
    return { role: 'assistant', content: { type: 'text', text: 'forty-two' }, model: 'test-model', stopReason: 'endTurn' }
  })
  const res = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'What is the answer?' } })
  assert.deepEqual(prompts, ['What is the answer?'])
  assert.deepEqual(res.content, [{ type: 'text', text: 'LLM response: forty-two' }])
})

test('sampling without the client capability is a tool error, not a hang', async (t) => {
  const { url } = await listen(t, { fixtures: 'conformance' })
  const { client } = await streamableClient(t, url)
  const res = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'x' } })
  assert.equal(res.isError, true)
  assert.match((res.content as Array<{ text: string }>)[0]?.text ?? '', /does not support sampling/)
})

test('a subscribed resource update reaches the SDK client on its standalone stream', async (t) => {
  const { app, url } = await listen(t, { fixtures: 'conformance' })
  const { client } = await streamableClient(t, url)
  const updates: string[] = []
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updates.push(n.params.uri) })
  await client.subscribeResource({ uri: 'test://watched-resource' })
  await until(() => app.hub.stats().byKind.session === 1, 5000, 'the SDK to open its GET stream')
  await app.mcp.resourceUpdated('test://watched-resource')
  await app.mcp.resourceUpdated('test://static-text')
  await until(() => updates.length > 0, 5000, 'resources/updated')
  assert.deepEqual(updates, ['test://watched-resource'])
  await client.unsubscribeResource({ uri: 'test://watched-resource' })
  await app.mcp.resourceUpdated('test://watched-resource')
  await client.ping()
  assert.equal(updates.length, 1, 'no update after unsubscribe')
})

test('registering a tool at run time sends tools/list_changed and the new tool is callable', async (t) => {
  const { app, url } = await listen(t)
  const { client } = await streamableClient(t, url)
  let changed = 0
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++ })
  await until(() => app.hub.stats().byKind.session === 1, 5000, 'the SDK to open its GET stream')
  app.mcp.tool({
    name: 'add',
    description: 'Adds two numbers',
    inputSchema: Type.Object({ a: Type.Number(), b: Type.Number() }),
    handler: ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] })
  })
  await until(() => changed === 1, 5000, 'tools/list_changed')
  const { tools } = await client.listTools()
  assert.ok(tools.some((x) => x.name === 'add'))
  assert.deepEqual((await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } })).content, [{ type: 'text', text: '42' }])
  const bad = await client.callTool({ name: 'add', arguments: { a: 'two' } })
  assert.equal(bad.isError, true, 'arguments are validated against the TypeBox schema')
})

test('a broadcast reaches an SDK session as notifications/message from logger "broadcast"', async (t) => {
  const { app, url } = await listen(t)
  const { client } = await streamableClient(t, url)
  const logs: LoggingMessageNotification['params'][] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params) })
  await until(() => app.hub.stats().byKind.session === 1, 5000, 'the SDK to open its GET stream')
  await app.hub.broadcast('deploy', { version: '2.0' })
  await until(() => logs.length === 1, 5000, 'the broadcast')
  assert.deepEqual(logs[0], { level: 'info', logger: 'broadcast', data: { event: 'deploy', data: { version: '2.0' } } })
})

test('after DELETE the session is gone: the SDK client gets 404', async (t) => {
  const { url } = await listen(t)
  const { client, transport } = await streamableClient(t, url)
  const id = transport.sessionId
  await transport.terminateSession()
  const res = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': id ?? '' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })
  })
  assert.equal(res.status, 404)
  await client.close()
})
