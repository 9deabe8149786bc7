import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { build } from './helper.js'
import { connectInject } from '../src/testing.js'
import { ToolModuleError } from '../src/tools/loader.js'
import { SERVER_ENTRY, ROOT } from './e2e/process.js'

async function moduleDir (t: { after: (fn: () => Promise<void>) => void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-tools-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text)
  return dir
}

const TOOL = (name: string): string => `{ name: '${name}', inputSchema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
  handler: ({ n }) => ({ content: [{ type: 'text', text: '${name}:' + n }] }) }`

test('MCP_TOOLS: a directory of modules — a function, one definition, an array — all register, in name order', async (t) => {
  const dir = await moduleDir(t, {
    'a-fn.mjs': `export default async (mcp, app) => { mcp.tool(${TOOL('from_fn')}); app.log.debug('hello') }`,
    'b-one.js': `export default ${TOOL('from_one')}`,
    'c-array.mjs': `export default [${TOOL('from_array')},
      { uri: 'mem://x', name: 'x', read: (uri) => ({ contents: [{ uri, text: 'x!' }] }) },
      { uriTemplate: 'mem://t/{id}', name: 't', read: (uri, { id }) => ({ contents: [{ uri, text: 'id ' + id }] }) },
      { name: 'greet', get: () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }] }) }]`,
    'notes.txt': 'not a module',
    '_private.mjs': 'throw new Error("never loaded")'
  })
  const app = await build(t, { tools: [dir] })
  const client = await connectInject(app)
  t.after(() => client.close())
  const names = (await client.listTools()).tools.map((tool) => tool.name)
  for (const name of ['from_fn', 'from_one', 'from_array']) assert.ok(names.includes(name), name)
  assert.deepEqual((await client.callTool('from_one', { n: 4 })).content, [{ type: 'text', text: 'from_one:4' }])
  assert.equal((await client.callTool('from_array', { n: 'x' })).isError, true)
  assert.equal((await client.readResource('mem://x')).contents[0]?.uri, 'mem://x')
  assert.match(JSON.stringify(await client.readResource('mem://t/9')), /id 9/)
  assert.equal((await client.getPrompt('greet')).messages.length, 1)
})

test('MCP_TOOLS: a module that fails to load stops the build with one line naming the file', async (t) => {
  const dir = await moduleDir(t, {
    'broken.mjs': 'export default (mcp) => { throw new Error("boom\\nsecond line") }',
    'syntax.mjs': 'export default {',
    'odd.mjs': 'export default [{ name: "what" }]',
    'none.mjs': 'export const x = 1'
  })
  const cases: Array<[string, RegExp]> = [
    ['broken.mjs', /broken\.mjs: boom$/],
    ['syntax.mjs', /syntax\.mjs: /],
    ['odd.mjs', /odd\.mjs: definition "what" is not a tool/],
    ['none.mjs', /none\.mjs: it has no default export/],
    ['missing.mjs', /missing\.mjs: no such file or directory/]
  ]
  for (const [file, message] of cases) {
    await assert.rejects(build(t, { tools: [join(dir, file)] }), (err: unknown) => {
      assert.ok(err instanceof ToolModuleError, String(err))
      assert.match(err.message, message)
      assert.ok(!err.message.includes('\n'))
      return true
    })
  }
})

test('the service with a broken MCP_TOOLS module exits 1 with one line on stderr', async () => {
  const child = spawn(process.execPath, [SERVER_ENTRY], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', MCP_TOOLS: 'test/no-such-tools-dir' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  assert.equal(code, 1)
  assert.match(stderr, /^Cannot load tool module .*no-such-tools-dir: no such file or directory \(MCP_TOOLS\)\n$/)
})
