#!/usr/bin/env node
// `prestart`: `npm start` runs the built server (one plain node process). `npm ci` builds once
// (`prepare`); this only rebuilds when a source is newer than the build (after an edit or a
// checkout), so a start after `npm ci` costs a directory scan, not a compile.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const built = join(root, 'dist', 'src', 'server.js')

function newest (path) {
  const s = statSync(path, { throwIfNoEntry: false })
  if (s === undefined) return 0
  if (!s.isDirectory()) return path.endsWith('.ts') || path.endsWith('.json') ? s.mtimeMs : 0
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))))
}

const builtAt = statSync(built, { throwIfNoEntry: false })?.mtimeMs ?? -1
const sources = Math.max(...['src', 'plugins', 'routes', 'tsconfig.json'].map((p) => newest(join(root, p))))
if (sources > builtAt) {
  process.stderr.write(builtAt < 0 ? 'building (dist/ is missing)…\n' : 'rebuilding (sources changed since the last build)…\n')
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
