import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyInstance } from 'fastify'
import { build } from './helper.js'
import { connectInject } from '../src/testing.js'

const NOTES = 'examples/notes/notes.mjs'

test('examples/notes as an MCP_TOOLS module: write, read, and delete after the user confirms', async (t) => {
  const app = await build(t, { tools: [NOTES] })
  const answers = [{ action: 'decline' }, { action: 'accept', content: { confirm: true } }]
  const asked: unknown[] = []
  const client = await connectInject(app, { onRequest: (_method, params) => { asked.push(params.message); return answers.shift() ?? {} } })
  t.after(() => client.close())
  assert.match(JSON.stringify(await client.callTool('write_note', { name: 'todo', text: 'buy milk' })), /Saved note:\/\/todo/)
  assert.deepEqual((await client.readResource('note://todo')).contents, [{ uri: 'note://todo', mimeType: 'text/plain', text: 'buy milk' }])
  assert.match(JSON.stringify(await client.callTool('delete_note', { name: 'todo' })), /Kept todo/)
  assert.match(JSON.stringify(await client.callTool('delete_note', { name: 'todo' })), /Deleted todo/)
  assert.deepEqual(asked, ['Delete the note "todo"?', 'Delete the note "todo"?'])
  await assert.rejects(client.readResource('note://todo'))
  assert.equal((await client.callTool('write_note', { name: 'bad name!', text: '' })).isError, true)
})

test('examples/notes/server.mjs: the plugin beside the app\'s own route; a subscriber hears of a change', async (t) => {
  // A JavaScript file (no types): imported by URL, as a user's app would run it.
  const serverModule: string = new URL('../examples/notes/server.mjs', import.meta.url).href
  const { createServer } = await import(serverModule) as { createServer: () => Promise<FastifyInstance> }
  const app = await createServer()
  app.log.level = 'silent'
  t.after(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const base = `http://127.0.0.1:${address.port}`
  assert.deepEqual(await (await fetch(`${base}/`)).json(), { hello: 'my own route' })
  const client = new Client({ name: 'notes-e2e', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL('/notes/mcp', base)))
  t.after(() => client.close())
  const updated = new Promise<string>((resolve) => {
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { resolve(n.params.uri) })
  })
  await client.callTool({ name: 'write_note', arguments: { name: 'a', text: 'one' } })
  await client.subscribeResource({ uri: 'note://a' })
  await client.callTool({ name: 'write_note', arguments: { name: 'a', text: 'two' } })
  assert.equal(await updated, 'note://a')
  const read = await client.readResource({ uri: 'note://a' })
  assert.equal((read.contents[0] as { text: string }).text, 'two')
})
