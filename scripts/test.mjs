#!/usr/bin/env node
// `npm test`: build once (end-to-end tests run the built server, as `npm start` does), then run every
// test file with node's test runner. Extra arguments are passed to the runner (e.g. a file list).
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
process.chdir(root)

function findTests (dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    if (name === 'node_modules' || name === 'artifacts') continue
    if (statSync(p).isDirectory()) out.push(...findTests(p))
    else if (name.endsWith('.test.ts')) out.push(relative(root, p))
  }
  return out
}

const args = process.argv.slice(2)
const selected = args.some((a) => !a.startsWith('-'))
const files = selected ? [] : findTests('test')

const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' })
// The full suite needs a clean build; a run of chosen files (`npm test -- test/x.test.ts`) goes on
// with whatever dist/ there is, so work in progress elsewhere does not block it.
if (build.status !== 0 && !selected) process.exit(build.status ?? 1)
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...args, ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'test' }
})
process.exit(run.status ?? 1)
