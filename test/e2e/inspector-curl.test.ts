import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { startServer } from './process.js'

const run = promisify(execFile)
const require = createRequire(import.meta.url)
// The Inspector CLI resolves its own package.json from the working directory: run it from its build folder.
const inspectorDir = join(dirname(require.resolve('@modelcontextprotocol/inspector-cli/package.json')), 'build')

async function inspector (...args: string[]): Promise<unknown> {
  const { stdout } = await run(process.execPath, ['index.js', ...args], { cwd: inspectorDir, timeout: 30_000 })
  return JSON.parse(stdout)
}

test('the MCP Inspector CLI lists and calls tools over the HTTP+SSE transport', async (t) => {
  const server = await startServer(t, { LOG_LEVEL: 'warn' })
  const list = await inspector(`${server.url}/sse`, '--transport', 'sse', '--method', 'tools/list') as { tools: Array<{ name: string }> }
  assert.deepEqual(list.tools.map((x) => x.name).sort(), ['current_time', 'echo'])
  const call = await inspector(`${server.url}/sse`, '--transport', 'sse', '--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=inspected')
  assert.deepEqual(call, { content: [{ type: 'text', text: 'inspected' }] })
})

test('the MCP Inspector CLI calls current_time over Streamable HTTP', async (t) => {
  const server = await startServer(t, { LOG_LEVEL: 'warn' })
  const call = await inspector(`${server.url}/mcp`, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'current_time', '--tool-arg', 'timezone=Europe/Paris') as { structuredContent: { timezone: string } }
  assert.equal(call.structuredContent.timezone, 'Europe/Paris')
})

test('the README curl flow: initialize, then tools/call current_time with the session id', async (t) => {
  const server = await startServer(t, { LOG_LEVEL: 'warn' })
  const init = await run('curl', ['-sS', '-i', '-N', '-X', 'POST', `${server.url}/mcp`,
    '-H', 'Content-Type: application/json',
    '-H', 'Accept: application/json, text/event-stream',
    '-d', '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'], { timeout: 10_000 })
  const sessionId = /^mcp-session-id: (\S+)\r?$/im.exec(init.stdout)?.[1]
  assert.ok(sessionId, init.stdout)
  assert.match(init.stdout, /"protocolVersion":"2025-11-25"/)
  const call = await run('curl', ['-sS', '-N', '-X', 'POST', `${server.url}/mcp`,
    '-H', 'Content-Type: application/json',
    '-H', 'Accept: application/json, text/event-stream',
    '-H', `Mcp-Session-Id: ${sessionId}`,
    '-H', 'MCP-Protocol-Version: 2025-11-25',
    '-d', '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"current_time","arguments":{"timezone":"America/New_York"}}}'], { timeout: 10_000 })
  const body = JSON.parse(call.stdout) as { id: number, result: { structuredContent: { timezone: string } } }
  assert.equal(body.id, 2)
  assert.equal(body.result.structuredContent.timezone, 'America/New_York')
})

test('curl -N on GET /mcp receives the welcome event and a broadcast', async (t) => {
  const server = await startServer(t, { LOG_LEVEL: 'warn' })
  const { spawn } = await import('node:child_process')
  const curl = spawn('curl', ['-sS', '-N', `${server.url}/mcp`, '-H', 'Accept: text/event-stream'])
  t.after(() => curl.kill())
  let out = ''
  curl.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const waitFor = async (re: RegExp): Promise<void> => {
    const deadline = Date.now() + 5000
    while (!re.test(out)) {
      if (Date.now() > deadline) throw new Error(`timed out; got: ${out}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  await waitFor(/event: welcome\ndata: \{/)
  const res = await fetch(`${server.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'news', data: { n: 1 } }) })
  assert.equal(res.status, 202)
  await waitFor(/id: p-[0-9a-f]{8}-1\nevent: news\ndata: \{"n":1\}\n\n/)
})

test('the stateless (2026-07-28) curl example that /docs prints runs as printed and calls the tool', async (t) => {
  const server = await startServer(t, { LOG_LEVEL: 'warn' })
  const html = await (await fetch(`${server.url}/docs`)).text()
  const unescape = (s: string): string => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
  const blocks = [...html.matchAll(/<pre class="code">([\s\S]*?)<\/pre>/g)].map((m) => unescape(m[1] ?? ''))
  const command = blocks.find((b) => b.includes('MCP-Protocol-Version: 2026-07-28'))
  assert.ok(command, 'the docs page shows a stateless example')
  const { stdout } = await run('bash', ['-c', command], { timeout: 10_000 })
  const body = JSON.parse(stdout) as { result: { resultType: string, structuredContent: { timezone: string } } }
  assert.equal(body.result.resultType, 'complete')
  assert.ok(body.result.structuredContent.timezone)
})
