import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { build } from './helper.js'
import { connectInject } from '../src/testing.js'
import sseMcp, { buildApp, RpcError, ErrorCode } from '../src/index.js'

test('connectInject lists and calls the service tools without a port', async (t) => {
  const app = await build(t)
  const client = await connectInject(app)
  t.after(() => client.close())
  const { tools } = await client.listTools()
  assert.ok(tools.some((tool) => tool.name === 'echo'))
  const result = await client.callTool('echo', { message: 'hello' })
  assert.equal(result.isError, undefined)
  assert.match(JSON.stringify(result.content), /hello/)
  assert.equal(app.server.listening, false)
})

test('connectInject keeps progress and log notifications and answers elicitation', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const asked: string[] = []
  const client = await connectInject(app, {
    onRequest: (method, params) => {
      asked.push(`${method}: ${String(params.message)}`)
      return { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } }
    }
  })
  t.after(() => client.close())
  const progress = await client.callTool('test_tool_with_progress')
  assert.match(JSON.stringify(progress.content), /executed successfully/)
  assert.deepEqual(client.notifications.filter((n) => n.method === 'notifications/progress').map((n) => n.params?.progress), [0, 50, 100])
  await client.request('logging/setLevel', { level: 'info' })
  await client.callTool('test_tool_with_logging')
  assert.equal(client.notifications.filter((n) => n.method === 'notifications/message').length, 3)
  const elicited = await client.callTool('test_elicitation', { message: 'Who are you?' })
  assert.deepEqual(asked, ['elicitation/create: Who are you?'])
  assert.match(JSON.stringify(elicited.content), /ada/)
})

test('connectInject: a bad argument is an isError result, an unknown method rejects with an RpcError', async (t) => {
  const app = await build(t)
  const client = await connectInject(app)
  t.after(() => client.close())
  const bad = await client.callTool('echo', { message: 42 })
  assert.equal(bad.isError, true)
  await assert.rejects(client.request('no/such/method'), (err: unknown) => err instanceof RpcError && err.code === ErrorCode.MethodNotFound)
})

test('connectInject reads resources and prompts, and close() ends the session', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const client = await connectInject(app)
  const read = await client.readResource('test://template/7/data')
  assert.match(JSON.stringify(read.contents), /Data for ID: 7/)
  const prompt = await client.getPrompt('test_prompt_with_arguments', { arg1: 'a', arg2: 'b' })
  assert.ok(prompt.messages.length > 0)
  await client.close()
  await assert.rejects(client.listTools(), /Session not found/)
})

test('buildApp() with no arguments is the service with its built-in tools', async (t) => {
  const app = await buildApp({ logger: false })
  t.after(() => app.close())
  const client = await connectInject(app)
  const { tools } = await client.listTools()
  assert.ok(tools.some((tool) => tool.name === 'current_time'))
  await client.close()
})

test('the plugin under a prefix in a host app: no built-ins by default, the host route and JSON parser unchanged', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  app.post('/own', async (request) => ({ got: request.body }))
  app.get('/health', async () => 'host health')
  await app.register(sseMcp, { prefix: '/api', rateLimitMax: 0 })
  app.mcp.tool({
    name: 'add',
    inputSchema: Type.Object({ a: Type.Number(), b: Type.Number() }),
    handler: ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] })
  })
  await app.ready()
  const client = await connectInject(app, { path: '/api/mcp' })
  t.after(() => client.close())
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((tool) => tool.name), ['add'])
  assert.deepEqual((await client.callTool('add', { a: 2, b: 3 })).content, [{ type: 'text', text: '5' }])
  const own = await app.inject({ method: 'POST', url: '/own', payload: { x: 1 } })
  assert.deepEqual(own.json(), { got: { x: 1 } })
  assert.equal((await app.inject('/health')).body, 'host health')
  assert.equal((await app.inject('/api/health')).json().status, 'ok')
  // The host's own routes declare no policy, and nothing refuses them (Host/Origin guard, auth).
  const foreign = await app.inject({ method: 'POST', url: '/own', headers: { origin: 'https://evil.example', host: 'evil.example' }, payload: {} })
  assert.equal(foreign.statusCode, 200)
  const guarded = await app.inject({ method: 'POST', url: '/api/mcp', headers: { host: 'evil.example', accept: 'application/json, text/event-stream' }, payload: {} })
  assert.equal(guarded.statusCode, 403)
})

test('the docs page under a prefix points its console and examples at the prefixed routes', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(sseMcp, { prefix: '/api', rateLimitMax: 0 })
  await app.ready()
  const res = await app.inject({ url: '/api/docs', headers: { host: '127.0.0.1:3000' } })
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /"mcpPath":"\/api\/mcp"/)
  assert.match(res.body, /"broadcastPath":"\/api\/broadcast"/)
  assert.match(res.body, /http:\/\/127\.0\.0\.1:3000\/api\/mcp/)
  assert.doesNotMatch(res.body, /http:\/\/127\.0\.0\.1:3000\/mcp\b/)
})

test('connectInject callTool takes the SDK\'s shape { name, arguments, _meta } and sends the caller\'s progress token', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const client = await connectInject(app)
  t.after(() => client.close())
  const sdkShape = await client.callTool({ name: 'echo', arguments: { message: 'as the SDK' } })
  assert.match(JSON.stringify(sdkShape.content), /as the SDK/)
  await client.callTool({ name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'mine-1' } })
  await client.callTool('test_tool_with_progress', {}, { _meta: { progressToken: 7 } })
  const tokens = client.notifications.filter((n) => n.method === 'notifications/progress').map((n) => n.params?.progressToken)
  assert.deepEqual(tokens, ['mine-1', 'mine-1', 'mine-1', 7, 7, 7])
})

test('ctx.elicit asks in form mode, types and checks accepted content against a TypeBox schema; ctx.sample asks the model', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(sseMcp)
  const Answer = Type.Object({ name: Type.String() })
  app.mcp.tool({
    name: 'who',
    inputSchema: Type.Object({}),
    handler: async (_args, ctx) => {
      const answer = await ctx.elicit('Who are you?', Answer)
      const sampled = await ctx.sample({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 })
      return { content: [{ type: 'text', text: `${answer.action}:${answer.content?.name ?? '-'}:${sampled.model}` }] }
    }
  })
  await app.ready()
  t.after(() => app.close())
  const asked: Array<Record<string, unknown>> = []
  let reply: Record<string, unknown> = { action: 'accept', content: { name: 'Ada' } }
  const client = await connectInject(app, {
    onRequest: (method, params) => {
      asked.push({ method, ...params })
      return method === 'sampling/createMessage' ? { role: 'assistant', content: { type: 'text', text: 'hello' }, model: 'm1' } : reply
    }
  })
  t.after(() => client.close())
  assert.deepEqual((await client.callTool('who')).content, [{ type: 'text', text: 'accept:Ada:m1' }])
  assert.deepEqual(asked[0], { method: 'elicitation/create', message: 'Who are you?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } })
  assert.equal(asked[1]?.method, 'sampling/createMessage')
  reply = { action: 'accept', content: { name: 42 } }
  // An answer that does not match is the handler's RpcError (unless the handler catches it).
  await assert.rejects(client.callTool('who'), (err: Error) => err instanceof RpcError && err.code === ErrorCode.InvalidParams &&
    /^The client's elicitation answer does not match requestedSchema: \/name Expected string$/.test(err.message))
})
