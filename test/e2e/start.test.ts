import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, startServer } from './process.js'

test('npm start runs one plain node process on the built entry', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  assert.equal(pkg.scripts.start, 'node dist/src/server.js')
  assert.equal(pkg.scripts.prestart, 'npm run build')
})

test('the server listens on PORT, serves /health, logs its URLs and exits 0 on SIGTERM', async (t) => {
  const server = await startServer(t)
  const res = await fetch(`${server.url}/health`)
  assert.equal(res.status, 200)
  assert.equal(((await res.json()) as { status: string }).status, 'ok')
  assert.match(server.output(), new RegExp(`MCP endpoint \\(Streamable HTTP\\): http://127\\.0\\.0\\.1:${server.port}/mcp`))
  server.child.kill('SIGTERM')
  assert.equal(await server.exited, 0)
})
