import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```\n/g)].map((m) => m[1])

// The README's library, tool-module and testing examples are the files test/e2e/package.test.ts runs
// from the packed tarball: a README edit that is not made to those files (or the reverse) fails here.
for (const file of ['app.mjs', 'tools/add.mjs', 'tools/shout.mjs', 'tools.test.mjs']) {
  test(`the README shows test/e2e/package-fixture/${file} as it is run`, () => {
    const source = readFileSync(new URL(`e2e/package-fixture/${file}`, import.meta.url), 'utf8')
    assert.ok(blocks.includes(source.endsWith('\n') ? source : `${source}\n`), `README has no \`\`\`js block equal to ${file}`)
  })
}

test('the README Architecture picture matches the tree: every folder and file it names exists, and it names every core file', async () => {
  const { existsSync, readdirSync } = await import('node:fs')
  const root = new URL('../', import.meta.url)
  const picture = /## Architecture\n\n```\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  assert.ok(picture.length > 0, 'README has an Architecture picture')
  // Top-level entries name their path; indented ones are files of the folder above (`  api.ts`).
  let folder = ''
  const named = new Set<string>()
  for (const line of picture.split('\n')) {
    const top = /^([a-z][\w./-]*)\s/.exec(line)?.[1]
    const inner = /^ {2}([\w./-]+(?:, [\w./-]+)*)\s{2,}/.exec(line)?.[1]
    if (top !== undefined) {
      if (top.endsWith('/')) folder = top
      named.add(top)
    } else if (inner !== undefined) {
      for (const name of inner.split(', ')) named.add(folder + name)
    }
  }
  for (const path of named) assert.ok(existsSync(new URL(path, root)), `${path} (README Architecture) exists`)
  // Every file of the protocol core is in the picture (by name, or named in its folder's line).
  for (const f of readdirSync(new URL('src/mcp/', root), { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.ts'))) {
    const base = f.split('/').pop() ?? f
    assert.ok(named.has(`src/mcp/${f}`) || picture.includes(base), `src/mcp/${f} is in the README Architecture picture`)
  }
})
