import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Type } from '@sinclair/typebox'
import { Registry, type ListKind } from '../../src/mcp/registry.js'

/** Registry alone: definitions, listings, template matching and change events. */

const noop = () => ({ content: [] })

test('a tool is compiled at registration: its listing carries the JSON Schema, its validator checks arguments', async () => {
  const r = new Registry()
  r.addTool({ name: 'greet', title: 'Greet', inputSchema: Type.Object({ who: Type.String() }), handler: noop })
  const tool = r.tools.get('greet')
  assert.ok(tool)
  assert.equal(tool.listing.name, 'greet')
  assert.equal(tool.listing.title, 'Greet')
  assert.equal((tool.listing.inputSchema as { type: string }).type, 'object')
  assert.equal('description' in tool.listing, false, 'undefined fields are left out of the listing')
  assert.equal((await tool.input.validate({ who: 'x' })).ok, true)
  assert.equal((await tool.input.validate({ who: 1 })).ok, false)
})

test('a tool name outside 1-128 of A-Z a-z 0-9 _ - . and a non-object input schema are refused', () => {
  const r = new Registry()
  assert.throws(() => { r.addTool({ name: 'bad name', inputSchema: Type.Object({}), handler: noop }) }, /Invalid tool name/)
  assert.throws(() => { r.addTool({ name: 'x'.repeat(129), inputSchema: Type.Object({}), handler: noop }) }, /Invalid tool name/)
  assert.throws(() => { r.addTool({ name: 'str', inputSchema: Type.String(), handler: noop }) }, /must describe an object/)
  assert.equal(r.tools.size, 0)
})

test('listeners hear each list change; removing what is not there changes nothing', () => {
  const r = new Registry()
  const heard: ListKind[] = []
  r.onChange((kind) => heard.push(kind))
  r.addTool({ name: 't', inputSchema: Type.Object({}), handler: noop })
  r.addResource({ uri: 'mem://a', name: 'a', read: (uri) => ({ contents: [{ uri, text: '' }] }) })
  r.addPrompt({ name: 'p', get: () => ({ messages: [] }) })
  assert.equal(r.removeTool('t'), true)
  assert.equal(r.removeTool('t'), false)
  assert.equal(r.removeResource('mem://a'), true)
  assert.equal(r.removePrompt('p'), true)
  assert.deepEqual(heard, ['tools', 'resources', 'prompts', 'tools', 'resources', 'prompts'])
})

test('resource templates match one path segment per variable and decode it', () => {
  const r = new Registry()
  r.addResourceTemplate({ uriTemplate: 'notes://{folder}/{id}.txt', name: 'note', read: (uri) => ({ contents: [{ uri, text: '' }] }) })
  const m = r.matchTemplate('notes://work/a%20b.txt')
  assert.ok(m)
  assert.deepEqual(m.variables, { folder: 'work', id: 'a b' })
  assert.equal(r.matchTemplate('notes://work/deep/a.txt'), undefined, 'a variable does not span /')
  assert.equal(r.matchTemplate('notes://work/a.json'), undefined)
  assert.deepEqual(r.matchTemplate('notes://w/%E0%A4%A.txt')?.variables, { folder: 'w', id: '%E0%A4%A' }, 'a malformed escape is kept as is')
  assert.deepEqual(r.templateListings(), [{ uriTemplate: 'notes://{folder}/{id}.txt', name: 'note' }])
})

test('a prompt with an argsSchema lists its arguments from the schema and checks them', async () => {
  const r = new Registry()
  r.addPrompt({
    name: 'summarize',
    argsSchema: Type.Object({ text: Type.String({ description: 'what to summarize' }), style: Type.Optional(Type.String()) }),
    get: () => ({ messages: [] })
  })
  const listing = r.promptListing(r.prompts.get('summarize') ?? assert.fail('registered'))
  assert.deepEqual(listing.arguments, [{ name: 'text', description: 'what to summarize', required: true }, { name: 'style' }])
  const args = r.promptArgs('summarize')
  assert.ok(args)
  assert.equal((await args.validate({ text: 'x' })).ok, true)
  assert.equal((await args.validate({})).ok, false)
})
