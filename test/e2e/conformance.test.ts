import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from './process.js'
import { ensureNode22, CONFORMANCE_CLI, CONFORMANCE_NEXT_CLI } from '../../scripts/conformance.mjs'

interface Check { id?: string, name?: string, status: string, errorMessage?: string }

/** Server scenarios the installed suite knows, from `conformance list`. */
function serverScenarios (node22: string): string[] {
  const out = execFileSync(node22, [CONFORMANCE_CLI, 'list'], { encoding: 'utf8' })
  const section = out.split(/Client scenarios/)[0] ?? ''
  return [...section.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1] ?? '')
}

interface SuiteRun { code: number | null, output: string, checks: Map<string, Check[]> }

/**
 * Runs a conformance CLI (`server` command) with Node 22 against our built server with the
 * conformance fixtures, and collects the checks of each result folder (`server-<scenario>-<time>`).
 */
async function runSuite (t: TestContext, node22: string, cli: string, args: string[]): Promise<SuiteRun> {
  const server = await startServer(t, { MCP_FIXTURES: 'conformance', LOG_LEVEL: 'warn' })
  const outDir = mkdtempSync(join(tmpdir(), 'mcp-conformance-'))
  t.after(() => rmSync(outDir, { recursive: true, force: true }))
  let output = ''
  const child = spawn(node22, [cli, 'server', '--url', `${server.url}/mcp`, ...args, '-o', outDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  const checks = new Map<string, Check[]>()
  for (const dir of readdirSync(outDir)) {
    const file = join(outDir, dir, 'checks.json')
    if (existsSync(file)) checks.set(dir, JSON.parse(readFileSync(file, 'utf8')) as Check[])
  }
  return { code, output, checks }
}

/** The scenario a result folder belongs to (longest name first: `tools-call` vs `tools-call-image`). */
const scenarioOf = (dir: string, scenarios: string[]): string | undefined =>
  [...scenarios].sort((a, b) => b.length - a.length).find((s) => dir.startsWith(`server-${s}-`))

test('the official MCP conformance suite passes every server scenario (--suite all, no expected failures)', { timeout: 600_000 }, async (t) => {
  const node22 = ensureNode22()
  const expected = serverScenarios(node22)
  assert.ok(expected.length >= 30, `suite lists ${expected.length} server scenarios`)
  const { code, output, checks } = await runSuite(t, node22, CONFORMANCE_CLI, ['--suite', 'all'])

  const failures: string[] = []
  const ran = new Set<string>()
  for (const [dir, results] of checks) {
    const scenario = scenarioOf(dir, expected) ?? dir
    ran.add(scenario)
    for (const c of results) {
      if (c.status === 'FAILURE') failures.push(`${scenario}: ${c.name ?? c.id} — ${c.errorMessage ?? ''}`)
    }
  }
  t.diagnostic(`conformance: ${ran.size} scenarios, ${failures.length} failed checks`)
  assert.deepEqual(failures, [], output.slice(-4000))
  assert.equal(code, 0, output.slice(-4000))
  assert.deepEqual([...expected].filter((s) => !ran.has(s)), [], 'every listed server scenario ran')
})

/**
 * The 2026-07-28 (stateless era) server scenarios of @modelcontextprotocol/conformance 0.2.x, as
 * `--requirements 2026-07-28` selects them. Extension scenarios (tasks-*, sep-2640-*) are run by
 * the suite but not scored for the revision; they are reported, not asserted.
 */
const SCENARIOS_2026 = [
  'server-stateless', 'completion-complete', 'tools-list', 'tools-call-simple-text', 'tools-call-image',
  'tools-call-audio', 'tools-call-embedded-resource', 'tools-call-mixed-content', 'tools-call-error',
  'tools-call-with-progress', 'server-sse-multiple-streams', 'resources-list', 'resources-read-text',
  'resources-read-binary', 'resources-templates-read', 'sep-2164-resource-not-found', 'prompts-list',
  'prompts-get-simple', 'prompts-get-with-args', 'prompts-get-embedded-resource', 'prompts-get-with-image',
  'dns-rebinding-protection', 'caching', 'json-schema-2020-12', 'http-header-validation',
  'http-custom-header-server-validation',
  'input-required-result-basic-elicitation', 'input-required-result-basic-sampling',
  'input-required-result-basic-list-roots', 'input-required-result-request-state',
  'input-required-result-multiple-input-requests', 'input-required-result-multi-round',
  'input-required-result-missing-input-response', 'input-required-result-non-tool-request',
  'input-required-result-result-type', 'input-required-result-unsupported-methods',
  'input-required-result-tampered-state', 'input-required-result-capability-check',
  'input-required-result-ignore-extra-params', 'input-required-result-validate-input'
]

/**
 * Deliberate deviations from a SHOULD, each with its reason. MRTR answers sent without the
 * requestState that asked for them are ignored (the handler asks again) rather than used: consent
 * must come with the signed, single-use state of the request it was asked for (issue 16 finding 4).
 * The suite sends valid answers with no state at all and expects a complete result.
 */
const ALLOWED_WARNINGS: ReadonlySet<string> = new Set(['input-required-result-ignore-extra-params: WARNING IgnoreUnexpectedParams'])

test('conformance 0.2.x: every 2026-07-28 server scenario passes (--requirements 2026-07-28, no failures, no warnings but the documented ones)', { timeout: 600_000 }, async (t) => {
  const node22 = ensureNode22()
  const listed = execFileSync(node22, [CONFORMANCE_NEXT_CLI, 'list'], { encoding: 'utf8' }).split(/Client scenarios/)[0] ?? ''
  const tagged = [...listed.matchAll(/^\s+- (\S+) \[([^\]]*)\]/gm)].filter((m) => (m[2] ?? '').split(',').includes('2026-07-28')).map((m) => m[1] ?? '')
  assert.deepEqual([...tagged].sort(), [...SCENARIOS_2026].sort(), 'the suite tags exactly the scenarios this test lists with 2026-07-28')

  const { code, output, checks: byDir } = await runSuite(t, node22, CONFORMANCE_NEXT_CLI, ['--requirements', '2026-07-28'])

  const problems: string[] = []
  const ran = new Set<string>()
  let checks = 0
  const extensions: string[] = []
  for (const [dir, results] of byDir) {
    const scenario = scenarioOf(dir, SCENARIOS_2026)
    if (scenario === undefined) {
      extensions.push(`${dir.replace(/^server-|-\d{4}-\d\d-\d\dT.*$/g, '')}: ${results.filter((c) => c.status === 'SUCCESS').length}/${results.length}`)
      continue
    }
    ran.add(scenario)
    for (const c of results) {
      checks++
      if (c.status === 'WARNING' && ALLOWED_WARNINGS.has(`${scenario}: WARNING ${c.name ?? c.id}`)) continue
      if (c.status === 'FAILURE' || c.status === 'WARNING') problems.push(`${scenario}: ${c.status} ${c.name ?? c.id} — ${c.errorMessage ?? ''}`)
    }
  }
  t.diagnostic(`conformance 2026-07-28: ${ran.size} scenarios, ${checks} checks, ${problems.length} failures/warnings; extensions (not scored): ${extensions.join(', ')}`)
  assert.deepEqual(problems, [], output.slice(-4000))
  assert.deepEqual(SCENARIOS_2026.filter((s) => !ran.has(s)), [], 'every 2026-07-28 scenario ran')
  assert.equal(code, 0, output.slice(-4000))
})
