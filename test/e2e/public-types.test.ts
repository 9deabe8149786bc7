import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { ROOT } from './process.js'

/** Engine internals a tool author must never see in the package's types. */
const INTERNAL = ['McpServer', 'StatelessEngine', 'ModernEngine', 'SessionLedger', 'Quota', 'RequestStateCodec', 'endSession', 'receive']

/** The `.d.ts` files a consumer's compiler can reach: from package.json `exports` (types), following relative imports. */
function reachableDeclarations (): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { types?: string }> }
  const queue = Object.values(manifest.exports).flatMap((e) => typeof e === 'object' && e.types !== undefined ? [resolve(ROOT, e.types)] : [])
  const seen = new Set<string>()
  while (queue.length > 0) {
    const file = queue.pop() ?? ''
    if (seen.has(file)) continue
    assert.ok(existsSync(file), `${relative(ROOT, file)} exists (run npm run build first)`)
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      queue.push(resolve(dirname(file), (m[1] ?? '').replace(/\.js$/, '.d.ts')))
    }
  }
  return [...seen]
}

/** A declaration file's code without its comments (doc comments may name internals to explain them). */
const code = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')

test('the package types (everything reachable from its exports) name no engine internal', () => {
  const files = reachableDeclarations()
  assert.ok(files.some((f) => f.endsWith(join('dist', 'src', 'index.d.ts'))), 'the main entry is read')
  const leaks: string[] = []
  for (const file of files) {
    const text = code(readFileSync(file, 'utf8'))
    for (const name of INTERNAL) {
      if (new RegExp(`\\b${name}\\b`).test(text)) leaks.push(`${relative(ROOT, file)}: ${name}`)
    }
  }
  assert.deepEqual(leaks, [], 'engine internals in the public types')
})

test('app.mcp is typed by the public interface: a tool author sees the registration API only', () => {
  const files = reachableDeclarations()
  const text = files.map((f) => code(readFileSync(f, 'utf8'))).join('\n')
  const augmentation = /interface FastifyInstance\s*{\s*mcp:\s*(\w+)/.exec(text)
  assert.ok(augmentation !== null, 'app.mcp is declared in the public types')
  for (const member of ['tool', 'resource', 'resourceTemplate', 'prompt', 'removeTool', 'removeResource', 'removePrompt', 'resourceUpdated', 'catalog', 'observe']) {
    assert.match(text, new RegExp(`\\b${member}\\s*[<(]`), `${member} is part of the public API`)
  }
})

test('the package types add one member to a host app, `mcp`: no config, hub, redis, lifecycle or auth a host (or @fastify/env) may declare', () => {
  const files = reachableDeclarations()
  const members: string[] = []
  for (const file of files) {
    const text = code(readFileSync(file, 'utf8'))
    for (const block of text.matchAll(/interface (FastifyInstance|FastifyRequest|FastifyReply)\s*(?:<[^>]*>)?\s*{([^}]*)}/g)) {
      for (const m of (block[2] ?? '').matchAll(/^\s*(\w+)\??\s*[:(<]/gm)) members.push(`${block[1] ?? ''}.${m[1] ?? ''} (${relative(ROOT, file)})`)
    }
  }
  assert.deepEqual(members.map((m) => m.split(' ')[0]), ['FastifyInstance.mcp'], members.join(', '))
})
