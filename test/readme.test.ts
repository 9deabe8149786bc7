import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const architecture = readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8')
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```\n/g)].map((m) => m[1])

// The README's library, tool-module and testing examples are the files test/e2e/package.test.ts runs
// from the packed tarball: a README edit that is not made to those files (or the reverse) fails here.
for (const file of ['app.mjs', 'tools/add.mjs', 'tools/shout.mjs', 'tools.test.mjs']) {
  test(`the README shows test/e2e/package-fixture/${file} as it is run`, () => {
    const source = readFileSync(new URL(`e2e/package-fixture/${file}`, import.meta.url), 'utf8')
    assert.ok(blocks.includes(source.endsWith('\n') ? source : `${source}\n`), `README has no \`\`\`js block equal to ${file}`)
  })
}

test('the Architecture picture (docs/architecture.md) matches the tree: every folder and file it names exists, and it names every core file', async () => {
  const { existsSync, readdirSync } = await import('node:fs')
  const root = new URL('../', import.meta.url)
  const picture = /## Architecture\n\n```\n([\s\S]*?)```/.exec(architecture)?.[1] ?? ''
  assert.ok(picture.length > 0, 'docs/architecture.md has an Architecture picture')
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

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens (code fences skipped). */
function anchors (markdown: string): Set<string> {
  const out = new Set<string>()
  let fence = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence
    const heading = fence ? undefined : /^#{1,6} (.*)$/.exec(line)?.[1]
    if (heading !== undefined) out.add(heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replaceAll(' ', '-'))
  }
  return out
}

test('the README is short, opens with a table of contents whose links resolve, and every docs/*.md it links exists', async () => {
  const { existsSync } = await import('node:fs')
  assert.ok(Buffer.byteLength(readme) <= 15_360, `README.md is ${Buffer.byteLength(readme)} bytes (≤ 15,360: move depth to docs/)`)
  const toc = /\n## Contents\n\n((?:- .*\n)+)/.exec(readme)?.[1] ?? ''
  const tocLinks = [...toc.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1] ?? '')
  assert.ok(tocLinks.length >= 5, `the README has a table of contents (## Contents): ${toc}`)
  const own = anchors(readme)
  for (const a of tocLinks) assert.ok(own.has(a), `table of contents link #${a} is a README heading`)
  // Every link into docs/ (and every in-page link) resolves: the file exists and so does its anchor.
  const docs = [...readme.matchAll(/\]\((docs\/[\w.-]+\.md)(?:#([^)]+))?\)/g)]
  assert.ok(docs.length >= 10, 'the README links the docs/ pages')
  for (const [, file = '', anchor] of docs) {
    const url = new URL(`../${file}`, import.meta.url)
    assert.ok(existsSync(url), `${file} (linked from the README) exists`)
    if (anchor !== undefined) assert.ok(anchors(readFileSync(url, 'utf8')).has(anchor), `${file}#${anchor} is a heading`)
  }
  for (const [, anchor = ''] of readme.matchAll(/\]\(#([^)]+)\)/g)) assert.ok(own.has(anchor), `#${anchor} is a README heading`)
  // The depth the README used to carry lives in docs/, each page linked from the README.
  for (const page of ['protocol', 'tools', 'library', 'security', 'deploy', 'scaling-out', 'configuration', 'operations', 'sdk-differences', 'testing', 'architecture']) {
    assert.ok(readme.includes(`](docs/${page}.md`), `the README links docs/${page}.md`)
  }
})

test('links between the docs/ pages (and back to the README) resolve to files and headings', async () => {
  const { existsSync, readdirSync } = await import('node:fs')
  const dir = new URL('../docs/', import.meta.url)
  for (const page of readdirSync(dir).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(new URL(page, dir), 'utf8')
    for (const [, target = '', anchor] of text.matchAll(/\]\(([^)\s#:]*)(?:#([^)\s]+))?\)/g)) {
      const url = new URL(target === '' ? page : target, dir)
      assert.ok(existsSync(url), `docs/${page} links ${target}, which exists`)
      if (anchor !== undefined) assert.ok(anchors(readFileSync(url, 'utf8')).has(anchor), `docs/${page} links ${target}#${anchor}, a heading there`)
    }
  }
})
