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
