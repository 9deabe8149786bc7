import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../e2e/process.js'

/** Every relative import of the TypeScript files in `dir` (`file: specifier`). */
function imports (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => [...readFileSync(join(ROOT, dir, f), 'utf8').matchAll(/from '(\.[^']+)'/g)].map((m) => `${f}: ${m[1] ?? ''}`))
}

test('the hub core knows nothing of MCP: no import from src/mcp, no JSON-RPC built there', () => {
  assert.deepEqual(imports('src/hub').filter((i) => i.includes('/mcp/')), [])
  for (const f of readdirSync(join(ROOT, 'src/hub'))) {
    assert.doesNotMatch(readFileSync(join(ROOT, 'src/hub', f), 'utf8'), /jsonrpc: '2\.0'|method: 'notifications\//, f)
  }
})

test('the protocol core has no Fastify and no plugin: src/mcp imports neither fastify nor plugins/', () => {
  const all = readdirSync(join(ROOT, 'src/mcp'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))
  for (const f of all) assert.doesNotMatch(readFileSync(join(ROOT, 'src/mcp', f), 'utf8'), /from 'fastify|from '[./]*plugins\//, f)
})
