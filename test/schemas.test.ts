import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Type } from '@sinclair/typebox'
import { z } from 'zod'
import { build, injectSession } from './helper.js'
import type { App } from '../src/app.js'
import { McpServer } from '../src/mcp/server.js'
import { MemorySessionStore } from '../src/mcp/sessions/memory.js'
import { kEngine } from '../src/mcp/engine.js'

// Every schema form is enforced: TypeBox, plain JSON Schema (Ajv), Standard Schema (zod 4).

const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }

const session = injectSession

/** The JSON-RPC response body, untyped JSON as `res.json()` gives it. */
async function rpc (app: App, sid: string, method: string, params: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': sid }, payload: { jsonrpc: '2.0', id: 1, method, params } })
  assert.equal(res.statusCode, 200)
  return res.json()
}

const call = async (app: App, sid: string, name: string, args: unknown) => {
  const body = await rpc(app, sid, 'tools/call', { name, arguments: args })
  assert.ok(body.result, `expected a result, got ${JSON.stringify(body)}`)
  return { isError: body.result.isError as boolean | undefined, text: body.result.content.map((c: { text?: string }) => c.text ?? '').join('\n'), result: body.result }
}

const echo = (args: unknown) => ({ content: [{ type: 'text' as const, text: `ran ${JSON.stringify(args)}` }] })

test('the conformance json_schema_2020_12_tool refuses {"name": 12345, "address": "not-an-object"} and names both paths', async (t) => {
  const app = await build(t, { fixtures: 'conformance' })
  const sid = await session(app)
  const bad = await call(app, sid, 'json_schema_2020_12_tool', { name: 12345, address: 'not-an-object' })
  assert.equal(bad.isError, true)
  assert.doesNotMatch(bad.text, /Received/)
  assert.match(bad.text, /\/name: must be string/)
  assert.match(bad.text, /\/address: must be object/)
  const good = await call(app, sid, 'json_schema_2020_12_tool', { name: 'Ada', email: 'ada@example.com' })
  assert.equal(good.isError, undefined)
  assert.match(good.text, /^Received: /)
})

test('a plain JSON Schema tool refuses bad arguments with the failing paths and runs with good ones', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.tool({
      name: 'plain',
      inputSchema: { type: 'object', properties: { n: { type: 'integer', minimum: 1 }, email: { type: 'string', format: 'email' } }, required: ['n'], additionalProperties: false },
      handler: echo
    })
  })
  const sid = await session(app)
  const bad = await call(app, sid, 'plain', { n: 0, email: 'nope', extra: true })
  assert.equal(bad.isError, true)
  assert.match(bad.text, /^Invalid arguments for tool plain: /)
  assert.match(bad.text, /\/n: must be >= 1/)
  assert.match(bad.text, /\/email: must match format "email"/)
  assert.match(bad.text, /\/extra: must NOT have additional properties/)
  const missing = await call(app, sid, 'plain', {})
  assert.match(missing.text, /\/n: must have required property 'n'/)
  const good = await call(app, sid, 'plain', { n: 3, email: 'a@b.example' })
  assert.equal(good.isError, undefined)
  assert.equal(good.text, 'ran {"n":3,"email":"a@b.example"}')
})

test('a draft-07 JSON Schema ($schema honoured) is enforced with draft-07 semantics', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.tool({
      name: 'd7',
      // draft-07 `items` as an array is a tuple; in 2020-12 it would be an invalid schema.
      inputSchema: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { pair: { type: 'array', items: [{ type: 'string' }, { type: 'number' }] } } },
      handler: echo
    })
  })
  const sid = await session(app)
  assert.equal((await call(app, sid, 'd7', { pair: [1, 'x'] })).isError, true)
  assert.equal((await call(app, sid, 'd7', { pair: ['x', 1] })).isError, undefined)
  const listed = await rpc(app, sid, 'tools/list', {})
  assert.equal(listed.result?.tools.find((x: { name: string }) => x.name === 'd7').inputSchema.$schema, 'http://json-schema.org/draft-07/schema#')
})

test('a TypeBox tool refuses bad arguments with the failing paths and runs with good ones', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.tool({
      name: 'tb',
      inputSchema: Type.Object({ a: Type.String(), b: Type.Number({ maximum: 5 }) }),
      handler: ({ a, b }) => ({ content: [{ type: 'text', text: `${a.toUpperCase()} ${b + 1}` }] })
    })
  })
  const sid = await session(app)
  const bad = await call(app, sid, 'tb', { a: 1, b: 9 })
  assert.equal(bad.isError, true)
  assert.match(bad.text, /\/a: Expected string/)
  assert.match(bad.text, /\/b: Expected number to be less or equal to 5/)
  assert.equal((await call(app, sid, 'tb', { a: 'x', b: 2 })).text, 'X 3')
})

test('a zod (Standard Schema) tool refuses bad arguments, runs with good ones, gets parsed values and lists JSON Schema', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.tool({
      name: 'zod',
      inputSchema: z.object({ city: z.string().min(2), days: z.number().int().default(1) }),
      // The argument type is inferred from the zod schema: days is a number (defaulted).
      handler: ({ city, days }) => ({ content: [{ type: 'text', text: `${city.toUpperCase()} x${days.toFixed(0)}` }] })
    })
  })
  const sid = await session(app)
  const bad = await call(app, sid, 'zod', { city: 'x', days: 1.5 })
  assert.equal(bad.isError, true)
  assert.match(bad.text, /\/city: Too small/)
  assert.match(bad.text, /\/days: Invalid input: expected int/)
  assert.equal((await call(app, sid, 'zod', { city: 'Oslo' })).text, 'OSLO x1')
  const listed = await rpc(app, sid, 'tools/list', {})
  const schema = listed.result?.tools.find((x: { name: string }) => x.name === 'zod').inputSchema
  assert.equal(schema.type, 'object')
  assert.deepEqual(schema.required, ['city'])
  assert.deepEqual(schema.properties.city, { type: 'string', minLength: 2 })
})

test('arguments that are not an object are refused as a tool error', async (t) => {
  const app = await build(t, {}, (a) => { a.mcp.tool({ name: 'plain', inputSchema: { type: 'object' }, handler: echo }) })
  const sid = await session(app)
  const bad = await call(app, sid, 'plain', [1, 2])
  assert.equal(bad.isError, true)
  assert.match(bad.text, /arguments must be an object/)
})

test('an error text names at most 5 paths and stays under ~1 KB, however hostile the arguments', async (t) => {
  const properties = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`p${i}`, { type: 'string' }]))
  const app = await build(t, {}, (a) => { a.mcp.tool({ name: 'many', inputSchema: { type: 'object', properties }, handler: echo }) })
  const sid = await session(app)
  const args = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`p${i}`, i]))
  const bad = await call(app, sid, 'many', args)
  assert.equal(bad.isError, true)
  assert.equal(bad.text.match(/\/p\d+: must be string/g)?.length, 5)
  assert.match(bad.text, /\(and more\)/)
  assert.ok(bad.text.length <= 1100, `${bad.text.length} chars`)
  const long = await call(app, sid, 'many', { ['k'.repeat(5000)]: 1, p0: 1 })
  assert.ok(long.text.length <= 1100)
})

test('a schema that cannot be compiled fails registration with an error naming the tool', () => {
  const server = new McpServer({ name: 't', version: '1', sessions: new MemorySessionStore(60_000), notify: async () => {} })
  assert.throws(() => { server.tool({ name: 'broken', inputSchema: { type: 'object', properties: { a: { type: 'no-such-type' } } }, handler: echo }) }, /Tool broken inputSchema: cannot compile the schema/)
  assert.throws(() => { server.tool({ name: 'badref', inputSchema: { type: 'object', properties: { a: { $ref: '#/$defs/missing' } } }, handler: echo }) }, /Tool badref inputSchema: cannot compile the schema: .*missing/)
  assert.throws(() => { server.tool({ name: 'draft3', inputSchema: { $schema: 'http://json-schema.org/draft-03/schema#', type: 'object' }, handler: echo }) }, /Tool draft3 inputSchema: cannot compile the schema: unsupported \$schema/)
  assert.throws(() => { server.tool({ name: 'notobject', inputSchema: z.string(), handler: echo }) }, /Tool notobject inputSchema: the schema must describe an object/)
  assert.throws(() => { server.tool({ name: 'out', inputSchema: Type.Object({}), outputSchema: { type: 'object', properties: { x: { minimum: 'one' } } }, handler: echo }) }, /Tool out outputSchema: cannot compile the schema/)
  assert.equal(server.registry.tools.size, 0)
})

test('a tool whose result breaks its outputSchema answers with a tool error and logs a warning for its author', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  const app = await build(t, {}, (a) => {
    a[kEngine].server.registry.tools.clear()
    const out = { type: 'object', properties: { temp: { type: 'number' } }, required: ['temp'] }
    a.mcp.tool({ name: 'nostructured', inputSchema: Type.Object({}), outputSchema: out, handler: () => ({ content: [{ type: 'text', text: 'hi' }] }) })
    a.mcp.tool({ name: 'wrong', inputSchema: Type.Object({}), outputSchema: out, handler: () => ({ content: [], structuredContent: { temp: 'hot' } }) })
    a.mcp.tool({ name: 'right', inputSchema: Type.Object({}), outputSchema: z.object({ temp: z.number() }), handler: () => ({ content: [], structuredContent: { temp: 21.5 } }) })
    a.log.warn = (fields: Record<string, unknown>) => { warnings.push(fields) }
  })
  const sid = await session(app)
  const none = await call(app, sid, 'nostructured', {})
  assert.equal(none.isError, true)
  assert.match(none.text, /Tool nostructured returned a result that does not match its outputSchema: \/: structuredContent is missing/)
  const wrong = await call(app, sid, 'wrong', {})
  assert.equal(wrong.isError, true)
  assert.match(wrong.text, /\/temp: must be number/)
  assert.equal(wrong.result.structuredContent, undefined)
  assert.deepEqual(warnings.map((w) => w.tool), ['nostructured', 'wrong'])
  // A valid structured result with no text block gets one mirroring it.
  const right = await call(app, sid, 'right', {})
  assert.equal(right.isError, undefined)
  assert.deepEqual(right.result.structuredContent, { temp: 21.5 })
  assert.deepEqual(right.result.content, [{ type: 'text', text: '{"temp":21.5}' }])
  const listed = await rpc(app, sid, 'tools/list', {})
  assert.deepEqual(listed.result?.tools.find((x: { name: string }) => x.name === 'right').outputSchema.properties, { temp: { type: 'number' } })
})

test('prompt arguments: strings only, required ones present, argsSchema enforced — each refusal is -32602', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.prompt({
      name: 'greet',
      argsSchema: z.object({ name: z.string().min(1).describe('who'), tone: z.enum(['warm', 'cold']).optional() }),
      get: (args) => ({ messages: [{ role: 'user', content: { type: 'text', text: `hello ${args.name} (${args.tone ?? 'plain'})` } }] })
    })
  })
  const sid = await session(app)
  const listed = await rpc(app, sid, 'prompts/list', {})
  assert.deepEqual(listed.result?.prompts.find((p: { name: string }) => p.name === 'greet').arguments, [{ name: 'name', description: 'who', required: true }, { name: 'tone' }])
  assert.equal((await rpc(app, sid, 'prompts/get', { name: 'greet', arguments: { name: 5 } })).error?.code, -32602)
  assert.equal((await rpc(app, sid, 'prompts/get', { name: 'greet', arguments: 'x' })).error?.code, -32602)
  const badTone = await rpc(app, sid, 'prompts/get', { name: 'greet', arguments: { name: 'a', tone: 'hot' } })
  assert.equal(badTone.error?.code, -32602)
  assert.match(badTone.error?.message ?? '', /Invalid arguments for prompt greet: \/tone: /)
  assert.equal((await rpc(app, sid, 'prompts/get', { name: 'greet', arguments: {} })).error?.code, -32602)
  const unknown = await rpc(app, sid, 'prompts/get', { name: 'x'.repeat(10_000) })
  assert.equal(unknown.error?.code, -32602)
  assert.ok((unknown.error?.message.length ?? 0) < 300)
  const good = await rpc(app, sid, 'prompts/get', { name: 'greet', arguments: { name: 'Ada', tone: 'warm' } })
  assert.equal(good.result?.messages[0].content.text, 'hello Ada (warm)')
})

test('resource template variables are checked by variablesSchema and a malformed escape is not an internal error', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.resourceTemplate({
      uriTemplate: 'test://items/{id}',
      name: 'item',
      variablesSchema: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]+$' } }, required: ['id'] },
      read: (uri, v) => ({ contents: [{ uri, text: `item ${v.id}` }] })
    })
  })
  const sid = await session(app)
  const bad = await rpc(app, sid, 'resources/read', { uri: 'test://items/abc' })
  assert.equal(bad.error?.code, -32602)
  assert.match(bad.error?.message ?? '', /\/id: must match pattern/)
  assert.equal((await rpc(app, sid, 'resources/read', { uri: 'test://items/%E0%A4%A' })).error?.code, -32602)
  assert.equal((await rpc(app, sid, 'resources/read', { uri: 'test://items/42' })).result?.contents[0].text, 'item 42')
})

test('completion arguments: value must be a string, context arguments strings, names looked up safely', async (t) => {
  const app = await build(t, {}, (a) => {
    a.mcp.prompt({ name: 'p', arguments: [{ name: 'lang' }], complete: { lang: (v) => ['python', 'perl'].filter((x) => x.startsWith(v)) }, get: () => ({ messages: [] }) })
  })
  const sid = await session(app)
  const ref = { type: 'ref/prompt', name: 'p' }
  assert.deepEqual((await rpc(app, sid, 'completion/complete', { ref, argument: { name: 'lang', value: 'py' } })).result?.completion.values, ['python'])
  assert.equal((await rpc(app, sid, 'completion/complete', { ref, argument: { name: 'lang', value: 7 } })).error?.code, -32602)
  assert.equal((await rpc(app, sid, 'completion/complete', { ref, argument: { name: 'lang' } })).error?.code, -32602)
  assert.equal((await rpc(app, sid, 'completion/complete', { ref, argument: { name: 'lang', value: '' }, context: { arguments: { a: 1 } } })).error?.code, -32602)
  // An inherited property name is no completer (it was an internal error before).
  assert.deepEqual((await rpc(app, sid, 'completion/complete', { ref, argument: { name: 'constructor', value: 'x' } })).result?.completion.values, [])
})
