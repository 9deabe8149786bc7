import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { basename, join, posix } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { parse as parseYaml } from 'yaml'
import { loadConfig } from '../../src/config.js'
import { freePort, ROOT } from './process.js'
import { have, missing, startNginxSite, waitForPort } from './services.js'
import { streamableClient } from './sdk.js'

/**
 * The container image as a tested artefact, without Docker (it cannot run here): the Dockerfile's
 * stages are replayed into temp directories — COPY from the build context filtered by .dockerignore,
 * COPY --from=<stage>, RUN for real with the stage's WORKDIR as cwd, ENV — then the final stage's
 * CMD is started with docker-compose.yml's environment (two replicas on a real redis-server started
 * with compose's redis command, ./tools mounted where compose mounts it, holding the README's tool
 * modules), behind deploy/nginx.conf rendered as the nginx image renders templates.
 *
 * Two liberties, neither of which changes the runtime tree: a RUN that is a full `npm ci` (dev
 * dependencies, build stage) links this checkout's node_modules when the stage's package-lock.json
 * is byte-identical (what `npm ci` would install from it; saves ~15 s and 200 MB), and
 * `npm cache clean` is skipped (it would empty this machine's npm cache, which lies outside /app).
 * Every other npm command uses the local cache first (prefer-offline).
 */

const skip = missing('redis-server', 'nginx')
const run = promisify(execFile)

/* ---------------------------------------------------------------------------------------------
 * Dockerfile and .dockerignore
 * ------------------------------------------------------------------------------------------- */

interface Instruction { op: string, args: string }
interface Stage { name: string | undefined, instructions: Instruction[] }

function parseDockerfile (text: string): Stage[] {
  const lines: string[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (pending === '' && (line === '' || line.startsWith('#'))) continue
    if (line.endsWith('\\')) { pending += line.slice(0, -1) + ' '; continue }
    lines.push(pending + line)
    pending = ''
  }
  const stages: Stage[] = []
  for (const line of lines) {
    const m = /^(\S+)\s+(.*)$/s.exec(line)
    assert.ok(m, `unparsable Dockerfile line: ${line}`)
    const op = (m[1] ?? '').toUpperCase()
    const args = (m[2] ?? '').trim()
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      assert.ok(from, `unparsable FROM: ${args}`)
      assert.ok(!stages.some((s) => s.name === from[1]), 'FROM <earlier stage> is not replayed by this test')
      stages.push({ name: from[2], instructions: [] })
      continue
    }
    const stage = stages.at(-1)
    assert.ok(stage, `${op} before FROM`)
    stage.instructions.push({ op, args })
  }
  return stages
}

/**
 * `.dockerignore` as Docker reads it: the last matching pattern wins; a pattern matching a parent
 * directory matches everything under it.
 */
function dockerignore (text: string): { excluded: (path: string) => boolean, negations: string[] } {
  const patterns = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const negate = l.startsWith('!')
    const body = posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+/, '').replace(/\/+$/, '')
    let re = ''
    for (let i = 0; i < body.length; i++) {
      const c = body[i] ?? ''
      if (c === '*' && body[i + 1] === '*') {
        i++
        if (body[i + 1] === '/') { i++; re += '(?:.*/)?' } else re += '.*'
      } else if (c === '*') re += '[^/]*'
      else if (c === '?') re += '[^/]'
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    }
    return { negate, body, regex: new RegExp(`^${re}$`) }
  })
  const matches = (regex: RegExp, path: string): boolean => {
    const parts = path.split('/')
    for (let n = 1; n <= parts.length; n++) if (regex.test(parts.slice(0, n).join('/'))) return true
    return false
  }
  return {
    excluded (path) {
      let out = false
      for (const p of patterns) if (matches(p.regex, path)) out = !p.negate
      return out
    },
    negations: patterns.filter((p) => p.negate).map((p) => p.body)
  }
}

/** The build context: every file under ROOT that .dockerignore lets through (relative POSIX paths). */
function contextFiles (): string[] {
  const ignore = dockerignore(existsSync(join(ROOT, '.dockerignore')) ? readFileSync(join(ROOT, '.dockerignore'), 'utf8') : '')
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(ROOT, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`
      const isDir = statSync(join(ROOT, path)).isDirectory()
      if (isDir) {
        // Descend into an excluded directory only if an exception could re-include something in it.
        if (!ignore.excluded(path) || ignore.negations.some((n) => n.startsWith(`${path}/`) || n.startsWith('*'))) walk(path)
      } else if (!ignore.excluded(path)) out.push(path)
    }
  }
  walk('')
  return out
}

/** Splits `--from=build a b dest` into flags, sources and destination. */
function copyArgs (args: string): { from: string | undefined, sources: string[], dest: string } {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/)
  let from: string | undefined
  const rest: string[] = []
  for (const w of words) {
    if (w.startsWith('--from=')) from = w.slice('--from='.length)
    else if (w.startsWith('--')) continue // --chown, --chmod, --link: no effect on the tree's content
    else rest.push(w)
  }
  const dest = rest.pop()
  assert.ok(dest !== undefined && rest.length > 0, `COPY needs a source and a destination: ${args}`)
  return { from, sources: rest, dest }
}

/** `ENV A=1 B="two"` (or the legacy `ENV A 1`) → entries. */
function envArgs (args: string): Array<[string, string]> {
  if (!args.includes('=')) {
    const [k = '', ...v] = args.split(/\s+/)
    return [[k, v.join(' ')]]
  }
  return [...args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => {
    const v = m[2] ?? ''
    return [m[1] ?? '', v.startsWith('"') ? (JSON.parse(v) as string) : v]
  })
}

interface Image {
  /** The final stage's root directory (its `/`). */
  root: string
  workdir: string
  env: Record<string, string>
  cmd: string[]
  /** HEALTHCHECK's command (shell form), if any. */
  healthcheck: string | undefined
  /** Maps a path inside the image (/app/…) to this machine. */
  host: (path: string) => string
  /** What building took, in ms. */
  buildMs: number
  /** Each RUN with what it took (the test prints them). */
  steps: string[]
}

/** A clean environment for RUN and CMD (no test-runner variables), npm on the local cache first. */
function baseEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[k] !== undefined) env[k] = process.env[k]
  return env
}

async function buildImage (dir: string): Promise<Image> {
  const started = Date.now()
  const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
  const context = contextFiles()
  const roots = new Map<string, string>()
  const steps: string[] = []
  let image: Image | undefined
  for (const [i, stage] of stages.entries()) {
    const root = join(dir, `stage${i}`)
    mkdirSync(root, { recursive: true })
    roots.set(stage.name ?? String(i), root)
    roots.set(String(i), root)
    let workdir = '/'
    const env: Record<string, string> = {}
    let cmd: string[] = []
    let healthcheck: string | undefined
    const host = (p: string): string => join(root, posix.resolve(workdir, p))
    for (const { op, args } of stage.instructions) {
      if (op === 'WORKDIR') {
        workdir = posix.resolve(workdir, args)
        mkdirSync(host('.'), { recursive: true })
      } else if (op === 'ENV') {
        for (const [k, v] of envArgs(args)) env[k] = v
      } else if (op === 'COPY' || op === 'ADD') {
        const { from, sources, dest } = copyArgs(args)
        const intoDir = dest.endsWith('/') || dest === '.' || sources.length > 1
        for (const source of sources) {
          if (from !== undefined) {
            const fromRoot = roots.get(from)
            assert.ok(fromRoot !== undefined, `COPY --from=${from}: no such stage`)
            const src = join(fromRoot, posix.resolve('/', source))
            assert.ok(existsSync(src), `COPY --from=${from} ${source}: not in that stage (what its build left there: ${readdirSync(join(fromRoot, workdir)).join(', ')})`)
            const target = statSync(src).isDirectory() || !intoDir ? host(dest) : join(host(dest), basename(src))
            cpSync(src, target, { recursive: true, verbatimSymlinks: true })
          } else {
            const s = posix.normalize(source).replace(/^\.?\/*/, '').replace(/\/+$/, '')
            const picked = context.filter((f) => s === '' || f === s || f.startsWith(`${s}/`))
            assert.ok(picked.length > 0, `COPY ${source}: not in the build context (excluded by .dockerignore?)`)
            for (const f of picked) {
              const target = f === s
                ? (intoDir ? join(host(dest), basename(f)) : host(dest))
                : join(host(dest), s === '' ? f : f.slice(s.length + 1))
              mkdirSync(join(target, '..'), { recursive: true })
              cpSync(join(ROOT, f), target)
            }
          }
        }
      } else if (op === 'RUN') {
        const t0 = Date.now()
        const effective = await runStep(args, host('.'), workdir, { ...baseEnv(), ...env })
        steps.push(`RUN ${effective} (${Date.now() - t0} ms)`)
      } else if (op === 'HEALTHCHECK') {
        healthcheck = /\bCMD\s+(.*)$/s.exec(args)?.[1]
      } else if (op === 'CMD') {
        cmd = args.startsWith('[') ? (JSON.parse(args) as string[]) : ['sh', '-c', args]
      } else {
        assert.ok(['USER', 'EXPOSE', 'LABEL', 'ARG', 'STOPSIGNAL'].includes(op), `the test does not replay ${op}`)
      }
    }
    image = { root, workdir, env, cmd, healthcheck, host, buildMs: 0, steps }
  }
  assert.ok(image !== undefined && image.cmd.length > 0, 'the final stage has a CMD')
  image.buildMs = Date.now() - started
  return image
}

/**
 * The build step, when its inputs are this checkout's: if the stage holds exactly the TypeScript
 * sources tsconfig.json includes here (same files, same bytes, same tsconfig and build script) and
 * `npm test` has just compiled them (dist/ newer than every source), tsc's output for those sources is
 * copied instead of compiled again (~10-25 s). Anything else, and the step runs for real.
 */
function reuseBuild (stage: string): boolean {
  const same = (f: string): boolean => existsSync(join(stage, f)) && readFileSync(join(stage, f)).equals(readFileSync(join(ROOT, f)))
  if (!same('tsconfig.json') || !same('package.json')) return false
  const { include } = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include?: string[] }
  const dirs = (include ?? []).map((pattern) => /^([\w-]+)\/\*\*\/\*\.ts$/.exec(pattern)?.[1])
  if (dirs.length === 0 || dirs.some((d) => d === undefined)) return false
  const sources = (root: string): string[] => dirs.flatMap((d) => existsSync(join(root, d ?? ''))
    ? (readdirSync(join(root, d ?? ''), { recursive: true, encoding: 'utf8' })).filter((f) => f.endsWith('.ts')).map((f) => `${d ?? ''}/${f}`)
    : []).sort()
  const ours = sources(ROOT)
  const theirs = sources(stage)
  if (ours.join('\n') !== theirs.join('\n') || !ours.every(same)) return false
  const built = statSync(join(ROOT, 'dist/src/server.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0
  if (ours.some((f) => statSync(join(ROOT, f)).mtimeMs > built)) return false
  for (const f of ours) {
    const base = f.replace(/\.ts$/, '')
    for (const ext of ['.js', '.js.map', '.d.ts', '.d.ts.map']) {
      const out = join('dist', base + ext)
      if (existsSync(join(ROOT, out))) cpSync(join(ROOT, out), join(stage, out))
    }
  }
  return true
}

/** One RUN: `&&`-joined commands, run with sh in the stage's WORKDIR; absolute WORKDIR paths are mapped. */
async function runStep (script: string, cwd: string, workdir: string, env: Record<string, string>): Promise<string> {
  const parts = script.split(/\s*&&\s*/).map((part) => {
    if (/^npm cache clean\b/.test(part)) return ': skipped-npm-cache-clean'
    const fullCi = /^npm ci\b/.test(part) && !/--omit[= ]dev|--only[= ]prod|--production/.test(part)
    if (fullCi && readFileSync(join(cwd, 'package-lock.json'), 'utf8') === readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) {
      if (!existsSync(join(cwd, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(cwd, 'node_modules'), 'dir')
      return ': linked-node_modules'
    }
    if (/^(npm run build|npx tsc -p tsconfig\.json)$/.test(part) && reuseBuild(cwd)) return ': reused-build'
    return workdir === '/' ? part : part.replace(new RegExp(`(^|[\\s=:'"])${workdir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|\\s|$|['"])`, 'g'), `$1${cwd}`)
  })
  const effective = parts.join(' && ')
  try {
    await run('sh', ['-c', effective], {
      cwd,
      env: { ...env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' },
      maxBuffer: 64 * 1024 * 1024
    })
  } catch (err) {
    const e = err as { stdout?: string, stderr?: string }
    throw new Error(`RUN ${script} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err })
  }
  return effective
}

/* ---------------------------------------------------------------------------------------------
 * docker-compose.yml
 * ------------------------------------------------------------------------------------------- */

interface ComposeService { command?: string[], environment?: Record<string, string | number | null>, volumes?: string[], ports?: string[] }

/** Compose's interpolation with an empty shell environment: `${VAR:-default}`, `${VAR-default}`, `${VAR}`, `$$`. */
function interpolate (value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (whole, _name: string | undefined, def: string | undefined) =>
    whole === '$$' ? '$' : (def ?? ''))
}

function composeServices (): Record<string, ComposeService> {
  const doc = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> }
  return doc.services
}

function composeEnv (service: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(v === null ? '' : String(v))]))
}

/** The nginx image's template step: envsubst of the variables defined in its environment. */
function renderTemplate (template: string, vars: Record<string, string>): string {
  return template.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, a: string | undefined, b: string | undefined) => vars[a ?? b ?? ''] ?? whole)
}

/* ---------------------------------------------------------------------------------------------
 * The running deployment
 * ------------------------------------------------------------------------------------------- */

interface Replica { name: string, url: string, env: Record<string, string>, output: () => string }

async function startReplica (image: Image, name: string, env: Record<string, string>): Promise<Replica> {
  const port = Number(env.PORT)
  const [bin = 'node', ...args] = image.cmd
  const child = spawn(bin === 'node' ? process.execPath : bin, args, { cwd: image.host('.'), env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  let lastError: unknown
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} (the image's CMD with compose's environment) exited ${child.exitCode}:\n${out}`)
    if (Date.now() > deadline) throw new Error(`${name} did not answer /health within 20 s (last attempt: ${String(lastError)}):\n${out}`)
    try {
      if ((await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).ok) break
    } catch (err) {
      lastError = err // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { name, url, env, output: () => out }
}

interface Answer { status: number, body: string }

/** A plain HTTP/1.1 request with exactly these headers (fetch cannot set Host); GET unless a body is given. */
async function send (url: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { method: body === undefined ? 'GET' : 'POST', headers, timeout: 10_000 }, (res) => {
      // A stream that opened (the guard let it through) would never end: read what came first.
      if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) { res.destroy(); resolve({ status: res.statusCode ?? 0, body: '' }); return }
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 10 s`)))
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

let work: string
let image: Image
let replicas: Replica[]
let nginxUrl: string
let redis: Redis
const children: ChildProcess[] = []
const cleanups: Array<() => Promise<void>> = []

before(async () => {
  if (skip) return
  work = mkdtempSync(join(tmpdir(), 'image-tree-'))
  image = await buildImage(work)
  const services = composeServices()
  const redisService = services.redis
  const app = services.app1
  const nginx = services.nginx
  assert.ok(redisService && app && nginx && services.app2, 'compose has redis, app1, app2 and nginx')

  // Redis as compose runs it (its command line), on a free loopback port.
  const redisPort = await freePort()
  const [, ...redisArgs] = (redisService.command ?? ['redis-server']).map(interpolate)
  const redisChild = spawn(have('redis-server') ?? 'redis-server', [...redisArgs, '--port', String(redisPort), '--bind', '127.0.0.1', '--protected-mode', 'no'], { stdio: 'ignore' })
  children.push(redisChild)
  await waitForPort(redisPort)
  redis = new Redis(redisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 3, retryStrategy: (n) => n > 40 ? null : 50 })
  await redis.connect()

  // ./tools as the user's project has it (the README's modules), where compose mounts it.
  for (const volume of app.volumes ?? []) {
    const [, target] = volume.split(':')
    if (target === undefined) continue
    rmSync(image.host(target), { recursive: true, force: true })
    cpSync(join(ROOT, 'test/e2e/package-fixture/tools'), image.host(target), { recursive: true })
  }

  // Both replicas: the image's ENV, then compose's environment; only the addresses change.
  const ports = new Map<string, number>()
  replicas = await Promise.all(['app1', 'app2'].map(async (name) => {
    const port = await freePort()
    ports.set(name, port)
    const env: Record<string, string> = { ...baseEnv(), ...image.env, ...composeEnv(services[name] ?? app) }
    for (const [k, v] of Object.entries(env)) if (v.startsWith('/app/') || v === '/app') env[k] = image.host(v)
    env.PORT = String(port)
    env.REDIS_URL = `redis://127.0.0.1:${redisPort}`
    return await startReplica(image, name, env)
  }))

  // nginx with deploy/nginx.conf rendered from compose's nginx environment, upstreams → the replicas.
  const template = readFileSync(join(ROOT, 'deploy/nginx.conf'), 'utf8')
  const nginxEnv = composeEnv(nginx)
  const published = (nginx.ports ?? []).map((p) => String(p).split(':').at(-1))
  // Upstream `app1:8080` → that replica's loopback port; the published port → nginx's own free port.
  const vars = (port: number): Record<string, string> => Object.fromEntries(Object.entries(nginxEnv).map(([k, v]) => {
    const service = /^([a-z0-9_-]+):(\d+)$/i.exec(v)
    if (service?.[1] !== undefined && ports.has(service[1])) return [k, `127.0.0.1:${ports.get(service[1]) ?? 0}`]
    if (published.includes(v)) return [k, `127.0.0.1:${port}`]
    return [k, v]
  }))
  const started = await startNginxSite({ after: (fn) => { cleanups.push(fn) } }, (port) => renderTemplate(template, vars(port)))
  nginxUrl = started.url
})

after(async () => {
  for (const fn of cleanups.reverse()) await fn()
  redis?.disconnect()
  for (const child of children.reverse()) {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL') })
    }
  }
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

test('the image holds what the package ships and production dependencies only', { skip }, (t) => {
  const pkg = JSON.parse(readFileSync(image.host('package.json'), 'utf8')) as { files: string[], dependencies: Record<string, string> }
  for (const f of ['dist/src/server.js', 'docs/page/style.css', 'docs/page/app.js', '.env.example']) assert.ok(existsSync(image.host(f)), `${f} is in the image`)
  for (const f of ['src', 'test', 'node_modules/typescript', 'node_modules/tsx', '.git']) assert.ok(!existsSync(image.host(f)), `${f} is not in the image`)
  for (const dep of ['zod', '@sinclair/typebox']) assert.ok(pkg.dependencies[dep], `${dep}, which the README's tool modules import, is a dependency`)
  for (const dep of Object.keys(pkg.dependencies)) assert.ok(existsSync(image.host(`node_modules/${dep}/package.json`)), `${dep} is installed`)
  for (const f of pkg.files) assert.ok(!f.includes('*') ? existsSync(image.host(f)) : true, `${f} (package.json files) is in the image`)
  assert.deepEqual(image.cmd, ['node', 'dist/src/server.js'])
  t.diagnostic(`image tree built in ${image.buildMs} ms: ${image.steps.join('; ')}`)
})

test('compose\'s Redis caps its memory with a policy that never evicts a key the app wrote', { skip }, async () => {
  const [, maxmemory] = await redis.config('GET', 'maxmemory') as [string, string]
  const [, policy] = await redis.config('GET', 'maxmemory-policy') as [string, string]
  assert.ok(Number(maxmemory) > 0, 'maxmemory is set')
  assert.equal(policy, 'noeviction')
})

test('each replica started from the image passes the image\'s HEALTHCHECK; /docs is served with its stylesheet through nginx', { skip }, async () => {
  assert.ok(image.healthcheck !== undefined, 'the image has a HEALTHCHECK')
  for (const r of replicas) {
    assert.equal((await send(r.url, '/health', { host: '127.0.0.1' })).status, 200, r.name)
    await run('sh', ['-c', image.healthcheck], { cwd: image.host('.'), env: r.env, timeout: 10_000 })
  }
  const css = readFileSync(join(ROOT, 'docs/page/style.css'), 'utf8').trim()
  const docs = await send(nginxUrl, '/docs', { host: 'localhost' })
  assert.equal(docs.status, 200)
  assert.ok(docs.body.includes(css), '/docs inlines docs/page/style.css')
})

test('the README\'s tool modules in ./tools (one imports zod) are listed and callable through nginx', { skip }, async (t) => {
  const { client } = await streamableClient(t, nginxUrl)
  const { tools } = await client.listTools()
  for (const name of ['add', 'shout']) assert.ok(tools.some((tool) => tool.name === name), `${name} is listed`)
  assert.deepEqual((await client.callTool({ name: 'shout', arguments: { text: 'from the image' } })).content, [{ type: 'text', text: 'FROM THE IMAGE' }])
  assert.deepEqual((await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).content, [{ type: 'text', text: '5' }])
})

test('the public resource URL (OAuth audience) is compose\'s public URL, not the bind address', { skip }, () => {
  for (const r of replicas) {
    const config = loadConfig({ ...r.env, OAUTH_JWKS_URL: 'https://issuer.example/jwks' })
    assert.equal(config.oauth?.resource, 'http://localhost:8080/mcp', r.name)
  }
})

test('a DNS-rebinding request (Host: evil.test, no Origin) is refused through nginx and on each replica', { skip }, async () => {
  const paths: Array<[string, Record<string, string>]> = [
    ['/mcp', { accept: 'text/event-stream' }],
    ['/sse', { accept: 'text/event-stream' }],
    ['/docs', {}],
    ['/metrics', {}]
  ]
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'evil', version: '1' } } }
  for (const target of [nginxUrl, ...replicas.map((r) => r.url)]) {
    for (const [path, headers] of paths) {
      const res = await send(target, path, { ...headers, host: 'evil.test' })
      assert.equal(res.status, 403, `GET ${path} with Host: evil.test via ${target} → ${res.status}`)
      assert.match(res.body, /Host evil\.test is not allowed/)
    }
    const post = await send(target, '/mcp', { host: 'evil.test', 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, initialize)
    assert.equal(post.status, 403, `POST /mcp initialize with Host: evil.test via ${target} → ${post.status}`)
  }
  // The same requests under the public name get through: it is the guard that refused.
  assert.equal((await send(nginxUrl, '/metrics', { host: 'localhost' })).status, 200)
  assert.equal((await send(nginxUrl, '/mcp', { host: 'localhost', accept: 'text/event-stream' })).status, 200)
})
