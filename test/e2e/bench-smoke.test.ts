import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from './process.js'

test('the benchmark smoke mode: every target (ours, the Fastify ceiling, the official SDK, fastmcp) answers correctly', { timeout: 300_000 }, async () => {
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'run.mjs'), '--quick'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  assert.equal(code, 0, out.slice(-3000))
  for (const id of ['ours', 'bare', 'sdk', 'sdk-stateless', 'fastmcp']) assert.match(out, new RegExp(`^OK ${id}:`, 'm'), out.slice(-3000))
  assert.match(out, /bench smoke: every target answered correctly/)
})
