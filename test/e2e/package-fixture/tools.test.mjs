// tools.test.mjs — node --test, no port: connectInject speaks MCP over app.inject.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildApp } from 'sse-mcp-server'
import { connectInject } from 'sse-mcp-server/testing'

test('my tools answer', async (t) => {
  const app = await buildApp({ tools: ['./tools'], builtins: false, logger: false })
  t.after(() => app.close())
  const client = await connectInject(app)
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((tool) => tool.name).sort(), ['add', 'shout'])
  assert.deepEqual((await client.callTool('add', { a: 2, b: 3 })).content, [{ type: 'text', text: '5' }])
  assert.equal((await client.callTool('shout', { text: 42 })).isError, true)
  const motto = await client.readResource('memo://motto')
  assert.equal(motto.contents[0].text, 'Keep it small.')
  await client.close()
})
