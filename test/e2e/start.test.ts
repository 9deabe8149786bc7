import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, ROOT, SERVER_ENTRY, startServer } from './process.js'

test('npm start runs one plain node process on the built entry; npm ci builds once (prepare)', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  assert.equal(pkg.scripts.start, 'node dist/src/server.js')
  assert.equal(pkg.scripts.prepare, 'npm run build')
  assert.equal(pkg.scripts.prestart, 'node scripts/build-if-stale.mjs', 'prestart only rebuilds when a source is newer than dist/')
})

test('npm start on a built checkout answers /health in seconds: nothing is compiled on start', { timeout: 60_000 }, async (t) => {
  // What `npm test` just built (like `npm ci`'s prepare) is fresh: prestart finds nothing to do.
  // About 1.2-1.7 s on an idle 2-core machine (a compile on start took 15-28 s); the bound below
  // leaves room for a loaded machine, the unchanged build is what tells the two apart.
  const builtAt = statSync(SERVER_ENTRY).mtimeMs
  const port = await freePort()
  const started = Date.now()
  const child = spawn('npm', ['start', '--silent'], { cwd: ROOT, env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.after(async () => {
    // npm and its node child: the whole process group.
    if (child.exitCode === null && child.pid !== undefined) { process.kill(-child.pid, 'SIGTERM'); await exited }
  })
  let ms: number | undefined
  let lastError: unknown
  while (ms === undefined) {
    assert.equal(child.exitCode, null, `npm start exited:\n${out}`)
    assert.ok(Date.now() - started < 30_000, `npm start did not answer in 30 s (last /health attempt: ${String(lastError)}):\n${out}`)
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) })).ok) ms = Date.now() - started
    } catch (err) {
      lastError = err // not listening yet
    }
    if (ms === undefined) await new Promise((resolve) => setTimeout(resolve, 25))
  }
  assert.doesNotMatch(out, /rebuilding|building/, 'nothing was compiled')
  assert.equal(statSync(SERVER_ENTRY).mtimeMs, builtAt, 'dist/ was not rewritten')
  assert.ok(ms < 8000, `npm start answered /health after ${ms} ms`)
  t.diagnostic(`npm start → /health 200 in ${ms} ms`)
})

test('HOST=0.0.0.0 without ALLOWED_HOSTS or auth: the server exits 1 with one line that says what to set', () => {
  const r = spawnSync(process.execPath, [SERVER_ENTRY], { env: { ...process.env, HOST: '0.0.0.0', PORT: '0', ALLOWED_HOSTS: '', AUTH_TOKENS: '' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 1)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0] ?? '', /^Invalid configuration: HOST="0\.0\.0\.0" .*set ALLOWED_HOSTS/)
  assert.equal(r.stdout, '', 'it never listened')
})

test('AUTH_TOKEN (singular) is refused with a hint instead of starting with auth off', () => {
  const r = spawnSync(process.execPath, [SERVER_ENTRY], { env: { ...process.env, HOST: '0.0.0.0', PORT: '0', AUTH_TOKEN: 'my-secret-token', AUTH_TOKENS: '' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 1)
  assert.match(r.stderr.trim(), /^Invalid configuration: AUTH_TOKEN is not a variable .*did you mean AUTH_TOKENS\?[^\n]*$/)
  assert.doesNotMatch(r.stderr, /my-secret-token/)
})

test('the server listens on PORT, serves /health, logs its URLs and exits 0 on SIGTERM', async (t) => {
  const server = await startServer(t)
  const res = await fetch(`${server.url}/health`)
  assert.equal(res.status, 200)
  assert.equal(((await res.json()) as { status: string }).status, 'ok')
  // The URLs are logged just after listen; /health can answer before that line reaches our pipe.
  const logged = new RegExp(`MCP endpoint \\(Streamable HTTP\\): http://127\\.0\\.0\\.1:${server.port}/mcp`)
  if (!logged.test(server.output())) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL line within 10 s:\n${server.output()}`)), 10_000)
      const onData = (): void => { if (logged.test(server.output())) { clearTimeout(timer); server.child.stdout?.off('data', onData); resolve() } }
      server.child.stdout?.on('data', onData)
    })
  }
  assert.match(server.output(), logged)
  server.child.kill('SIGTERM')
  assert.equal(await server.exited, 0)
})
