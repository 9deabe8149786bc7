import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from './process.js'
import { ensureNode22, CONFORMANCE_CLI } from '../../scripts/conformance.mjs'

interface Check { id?: string, name?: string, status: string, errorMessage?: string }

/** Server scenarios the installed suite knows, from `conformance list`. */
function serverScenarios (node22: string): string[] {
  const out = execFileSync(node22, [CONFORMANCE_CLI, 'list'], { encoding: 'utf8' })
  const section = out.split(/Client scenarios/)[0]
  return [...section.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1])
}

test('the official MCP conformance suite passes every server scenario (--suite all, no expected failures)', { timeout: 600_000 }, async (t) => {
  const node22 = ensureNode22()
  const expected = serverScenarios(node22)
  assert.ok(expected.length >= 30, `suite lists ${expected.length} server scenarios`)

  const server = await startServer(t, { MCP_FIXTURES: 'conformance', LOG_LEVEL: 'warn' })
  const outDir = mkdtempSync(join(tmpdir(), 'mcp-conformance-'))
  t.after(() => rmSync(outDir, { recursive: true, force: true }))

  let output = ''
  const child = spawn(node22, [CONFORMANCE_CLI, 'server', '--url', `${server.url}/mcp`, '--suite', 'all', '-o', outDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))

  // Collect every check from the result folders, one per scenario.
  const failures: string[] = []
  const ran = new Set<string>()
  for (const dir of readdirSync(outDir)) {
    const file = join(outDir, dir, 'checks.json')
    if (!existsSync(file)) continue
    const scenario = [...expected].sort((a, b) => b.length - a.length).find((s) => dir.startsWith(`server-${s}-`)) ?? dir
    ran.add(scenario)
    const checks = JSON.parse(readFileSync(file, 'utf8')) as Check[]
    for (const c of checks) {
      if (c.status === 'FAILURE') failures.push(`${scenario}: ${c.name ?? c.id} — ${c.errorMessage ?? ''}`)
    }
  }
  t.diagnostic(`conformance: ${ran.size} scenarios, ${failures.length} failed checks`)
  assert.deepEqual(failures, [], output.slice(-4000))
  assert.equal(code, 0, output.slice(-4000))
  assert.deepEqual([...expected].filter((s) => !ran.has(s)), [], 'every listed server scenario ran')
})
