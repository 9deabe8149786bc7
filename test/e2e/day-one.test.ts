// Issue 21 item 7: the mistakes a new user makes on day one end the start with one line on stderr
// that says what to do (exit 1, nothing on stdout, no stack), like the environment errors in
// test/config.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, ROOT, SERVER_ENTRY, startServer } from './process.js'

interface Exit { code: number | null, stdout: string, stderr: string }

/** Runs the built server with `env` over a loopback default; resolves when it exits (bounded). */
async function run (env: Record<string, string>, timeoutMs = 20_000): Promise<Exit> {
  const child = spawn(process.execPath, [SERVER_ENTRY], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', REDIS_URL: '', MCP_TOOLS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** Exit 1 with exactly one stderr line matching `line` and no stack trace anywhere. */
function oneLine (r: Exit, line: RegExp): void {
  const lines = r.stderr.trim().split('\n')
  assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`)
  assert.equal(lines.length, 1, `one line on stderr:\n${r.stderr}`)
  assert.match(lines[0] ?? '', line)
  assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at |"stack"/, 'no stack trace')
}

test('REDIS_URL unreachable at start: the server refuses to start with one line naming the URL (password hidden)', { timeout: 30_000 }, async () => {
  const port = await freePort() // nothing listens there
  const r = await run({ REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` })
  oneLine(r, new RegExp(`^Cannot reach Redis at REDIS_URL=redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/? \\(.*ECONNREFUSED.*\\): start Redis there or fix REDIS_URL`))
  assert.doesNotMatch(r.stderr + r.stdout, /hunter2/)
  assert.equal(r.stdout, '', 'nothing logged, never listened')
})

test('TRUST_PROXY=yes: one line listing what it accepts', async () => {
  oneLine(await run({ TRUST_PROXY: 'yes' }), /^Invalid configuration: TRUST_PROXY="yes" is not a list of addresses, CIDRs or presets .*TRUST_PROXY=loopback/)
})

test('the port in use: one line that names the port and says what to do, not a stack in a JSON line', { timeout: 30_000 }, async (t) => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.after(() => { busy.close() })
  const address = busy.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const r = await run({ PORT: String(port) })
  oneLine(r, new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use by another process; stop that process or set PORT to a free port$`))
})

test('LOG_LEVEL=verbose: one line listing the levels', async () => {
  oneLine(await run({ LOG_LEVEL: 'verbose' }), /^Invalid configuration: LOG_LEVEL="verbose" is not a level: use one of fatal, error, warn, info, debug, trace, silent$/)
})

test('a short STATE_SECRET: a plain sentence, no regex, the secret not echoed', async () => {
  const r = await run({ STATE_SECRET: 'short-secret', REDIS_URL: 'redis://127.0.0.1:1' })
  oneLine(r, /^Invalid configuration: STATE_SECRET="<redacted>" is too short: use at least 32 characters/)
  assert.doesNotMatch(r.stderr, /\^|\{32,\}|short-secret/)
})

test('MCP_TOOLS pointing at a folder of .ts files: one line naming the files (node cannot load them)', { skip: Boolean((process.features as { typescript?: unknown }).typescript) && 'this node loads TypeScript itself' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sse-mcp-ts-tools-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'add.ts'), 'export default { name: "add", inputSchema: { type: "object" }, handler: () => ({ content: [] }) }\n')
  await writeFile(join(dir, 'shout.ts'), 'export default []\n')
  const r = await run({ MCP_TOOLS: dir })
  oneLine(r, /^Cannot load tool module .*: the directory holds only TypeScript files \(add\.ts, shout\.ts\), which this node cannot load: compile them to \.js \(tsc\)/)
})

test('MCP_TOOLS with .js modules beside .ts sources: the modules load, the skipped .ts files are named in a warning', { skip: Boolean((process.features as { typescript?: unknown }).typescript) && 'this node loads TypeScript itself' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sse-mcp-mixed-tools-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  await writeFile(join(dir, 'add.ts'), 'export default []\n')
  await writeFile(join(dir, 'add.d.ts'), 'export {}\n')
  await writeFile(join(dir, 'add.mjs'), 'export default []\n')
  const server = await startServer(t, { MCP_TOOLS: dir })
  const warning = server.output().split('\n').find((l) => l.includes('skipped TypeScript files'))
  assert.ok(warning !== undefined, server.output())
  const logged = JSON.parse(warning) as { level: number, skipped: string[] }
  assert.equal(logged.level, 40)
  assert.deepEqual(logged.skipped, [join(dir, 'add.ts')])
})

/** The README's SDK snippets, run against a real server: each prints and exits by itself. */
test('the README\'s (and docs/protocol.md\'s) SDK snippets close their client and exit', { timeout: 60_000 }, async (t) => {
  const { readFile } = await import('node:fs/promises')
  // The v1 snippet is in the README's quick start, the 2026-07-28 (v2) one in docs/protocol.md.
  const readme = (await readFile(join(ROOT, 'README.md'), 'utf8')) + (await readFile(join(ROOT, 'docs/protocol.md'), 'utf8'))
  const snippets = [...readme.matchAll(/```ts\n([\s\S]*?)```\n/g)].map((m) => m[1] ?? '').filter((s) => s.includes('new Client(') && s.includes('127.0.0.1:8080'))
  assert.ok(snippets.length >= 2, 'the SDK v1 and v2 snippets')
  const server = await startServer(t)
  const dir = await mkdtemp(join(ROOT, 'test/e2e/.readme-snippet-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  for (const [i, snippet] of snippets.entries()) {
    const file = join(dir, `snippet-${i}.mjs`)
    await writeFile(file, snippet.replaceAll('http://127.0.0.1:8080', server.url))
    const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    clearTimeout(timer)
    assert.equal(code, 0, `snippet ${i} exits by itself (killed after 20 s if not):\n${snippet}\n${out}`)
    assert.notEqual(out.trim(), '', `snippet ${i} prints its result`)
  }
})

test('the README\'s library install line names every package the library example imports', async () => {
  const { readFile } = await import('node:fs/promises')
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const app = await readFile(join(ROOT, 'test/e2e/package-fixture/app.mjs'), 'utf8')
  const install = /```sh\n(npm install sse-mcp-server[^\n]*)\n/.exec(readme)?.[1] ?? ''
  const imported = [...app.matchAll(/from '([^'.][^']*)'/g)].map((m) => m[1] ?? '').filter((p) => !p.startsWith('node:'))
    .map((p) => p.startsWith('@') ? p.split('/').slice(0, 2).join('/') : p.split('/')[0] ?? p)
  assert.ok(imported.includes('zod') && imported.includes('@sinclair/typebox'), imported.join(' '))
  for (const name of imported) assert.ok(install.split(' ').includes(name), `${install} installs ${name}`)
})
