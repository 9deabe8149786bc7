#!/usr/bin/env node
// `npm run bench`: sse-mcp-server side by side with a bare Fastify ceiling, the official SDK's
// Streamable HTTP server (stateful and stateless) and fastmcp, in one run, on loopback.
//   node bench/run.mjs [--quick] [--streams 1000] [--duration 10] [--reps 3] [--only ours,sdk]
// --quick (CI smoke, < 60 s): every target answers correctly; nothing is timed or judged.
// Writes bench/results.md and bench/results.json (not in --quick).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import http from 'node:http'
import { createServer, connect } from 'node:net'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const argv = process.argv.slice(2)
const flag = (name) => argv.includes(`--${name}`)
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def }
const QUICK = flag('quick')
const CFG = QUICK
  ? { duration: 1, warmup: 0, reps: 1, streams: 20, leak: 200, connections: 10 }
  : { duration: opt('duration', 10), warmup: 3, reps: opt('reps', 3), streams: opt('streams', 1000), leak: 5000, connections: 50 }
const ACCEPT = 'application/json, text/event-stream'
const log = (...a) => console.log(...a)

// ---------- setup ----------
if (!existsSync(join(here, 'node_modules', 'autocannon'))) {
  log('installing bench dependencies (npm ci --prefix bench)…')
  const r = spawnSync('npm', ['ci', '--prefix', here, '--no-audit', '--no-fund'], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
{
  const r = spawnSync('npx', ['tsc', '-p', join(root, 'tsconfig.json')], { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

async function freePort () {
  return await new Promise((resolve, reject) => {
    const s = createServer().once('error', reject).listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}
async function waitPort (port, ms = 15000) {
  const end = Date.now() + ms
  for (;;) {
    const ok = await new Promise((resolve) => { const c = connect(port, '127.0.0.1', () => { c.end(); resolve(true) }); c.on('error', () => resolve(false)) })
    if (ok) return
    if (Date.now() > end) throw new Error(`port ${port} did not open`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
const which = (bin) => [bin, `/usr/bin/${bin}`, `/usr/sbin/${bin}`].find((p) => spawnSync(p, ['-v'], { stdio: 'ignore' }).error === undefined)

const children = new Set()
process.on('exit', () => { for (const c of children) c.kill('SIGKILL') })
process.on('SIGINT', () => process.exit(130))

async function startRedis () {
  const bin = which('redis-server')
  if (!bin) return undefined
  const port = await freePort()
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  children.add(child)
  await waitPort(port)
  return { url: `redis://127.0.0.1:${port}`, child }
}

const ourEnv = { RATE_LIMIT_MAX: '0', LOG_LEVEL: 'warn', MAX_CONNECTIONS: '50000', MAX_CONNECTIONS_PER_CLIENT: '50000', MAX_INFLIGHT_PER_SESSION: '1000' }
const TARGETS = [
  { id: 'ours', name: 'sse-mcp-server', script: join(root, 'dist', 'src', 'server.js'), env: ourEnv, ours: true, session: true, streams: 'public' },
  { id: 'ours-stateless', name: 'sse-mcp-server, 2026-07-28 stateless', script: join(root, 'dist', 'src', 'server.js'), env: ourEnv, ours: true, session: false, modern: true },
  { id: 'ours-redis', name: 'sse-mcp-server + Redis', script: join(root, 'dist', 'src', 'server.js'), env: ourEnv, ours: true, session: true, streams: 'public', redis: true },
  { id: 'bare', name: 'bare Fastify (ceiling)', script: join(here, 'targets', 'bare-fastify.mjs'), env: {}, session: false },
  { id: 'sdk', name: 'official SDK, stateful', script: join(here, 'targets', 'sdk.mjs'), env: { MODE: 'stateful' }, session: true, streams: 'session' },
  { id: 'sdk-stateless', name: 'official SDK, stateless', script: join(here, 'targets', 'sdk.mjs'), env: { MODE: 'stateless' }, session: false },
  { id: 'fastmcp', name: 'fastmcp httpStream', script: join(here, 'targets', 'fastmcp.mjs'), env: { JSON: '1' }, session: true, streams: 'session' }
]

async function startTarget (t, redisUrl) {
  const port = await freePort()
  const child = spawn(process.execPath, ['--expose-gc', '--import', join(here, 'gc-probe.mjs'), t.script], {
    cwd: here,
    env: { ...process.env, ...t.env, ...(t.redis ? { REDIS_URL: redisUrl } : {}), HOST: '127.0.0.1', PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc']
  })
  children.add(child)
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { out += d })
  try { await waitPort(port) } catch (err) { throw new Error(`${t.name} did not start: ${out}`, { cause: err }) }
  return { ...t, port, url: `http://127.0.0.1:${port}`, child, output: () => out }
}
async function stopTarget (s) {
  s.child.kill('SIGKILL')
  children.delete(s.child)
  await new Promise((resolve) => s.child.exitCode !== null ? resolve() : s.child.once('exit', resolve))
}
const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
async function heapAfterGc (s) {
  return await new Promise((resolve) => { s.child.once('message', (m) => resolve(m.heapUsed)); s.child.send('gc') })
}

// ---------- MCP over fetch ----------
/** Request headers: a session's, or a stateless 2026-07-28 request's mirrored ones. */
const headersFor = (s, session) => s.modern
  ? { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' }
  : { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': '2025-11-25', ...(session ? { 'mcp-session-id': session } : {}) }
async function rpc (s, body, session) {
  const res = await fetch(`${s.url}/mcp`, {
    method: 'POST',
    headers: headersFor(s, session),
    body: JSON.stringify(body)
  })
  const text = await res.text()
  const json = res.headers.get('content-type')?.includes('text/event-stream')
    ? text.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6).map((l) => JSON.parse(l.slice(6))).find((m) => m.id === body.id)
    : (text ? JSON.parse(text) : undefined)
  return { status: res.status, session: res.headers.get('mcp-session-id') ?? session, json }
}
async function initialize (s) {
  if (!s.session) return undefined
  const r = await rpc(s, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } })
  if (r.status !== 200 || !r.session) throw new Error(`${s.name}: initialize failed (${r.status})`)
  await rpc(s, { jsonrpc: '2.0', method: 'notifications/initialized' }, r.session)
  return r.session
}
const MODERN_META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} }
const echoBody = (id, modern = false) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hello bench' }, ...(modern ? { _meta: MODERN_META } : {}) } })
async function checkEcho (s, session) {
  const r = await rpc(s, echoBody(1, s.modern), session)
  const text = r.json?.result?.content?.[0]?.text
  if (r.status !== 200 || text !== 'hello bench') throw new Error(`${s.name}: echo answered ${r.status} ${JSON.stringify(r.json)}`)
}

// ---------- load (autocannon in its own process) ----------
async function autocannon (s, session, { duration, amount, connections = CFG.connections }) {
  const opts = {
    url: `${s.url}/mcp`,
    method: 'POST',
    connections,
    headers: headersFor(s, session),
    // Each request gets its own JSON-RPC id (a server may refuse an id still in flight).
    body: JSON.stringify(echoBody('__ID__', s.modern)),
    ...(amount ? { amount } : { duration })
  }
  const r = spawnSync(process.execPath, [join(here, 'load.mjs'), JSON.stringify(opts)], { cwd: here, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`load generator failed: ${r.stderr}`)
  const out = JSON.parse(r.stdout)
  return { rps: out.requests.average, p50: out.latency.p50, p99: out.latency.p99, non2xx: out.non2xx, errors: out.errors }
}
const median = (xs) => { const a = [...xs].sort((x, y) => x - y); return a[Math.floor(a.length / 2)] }

// ---------- streams ----------
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
function openStream (s, session, onEvent) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${s.url}/mcp`, { agent, headers: { accept: 'text/event-stream', 'mcp-protocol-version': '2025-11-25', ...(session ? { 'mcp-session-id': session } : {}) } }, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`${s.name}: stream ${res.statusCode}`)); res.resume(); return }
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        buf += d
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) { onEvent(buf.slice(0, i)); buf = buf.slice(i + 2) }
      })
      res.on('error', () => {})
      resolve(req)
    })
    req.on('error', reject)
    req.setTimeout(0)
  })
}
async function openStreams (s, n, onEvent) {
  const sessions = s.streams === 'session' ? await Promise.all(Array.from({ length: n }, () => initialize(s))) : []
  const started = performance.now()
  const reqs = []
  for (let i = 0; i < n; i += 200) {
    reqs.push(...await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) => openStream(s, sessions[i + j], onEvent))))
  }
  return { reqs, ms: performance.now() - started }
}

/**
 * The S4 receiver: bench/receiver.c (N real TCP clients in one epoll loop, so the figure is bound by
 * the server and the network stack, not by the receiver) when a C compiler is there, else the
 * Node fallback stream-clients.mjs. Both speak the same line protocol on stdin/stdout.
 */
function receiver (port, n) {
  const bin = join(here, '.build', 'receiver')
  const cc = which('cc')
  if (cc && !existsSync(bin)) {
    mkdirSync(join(here, '.build'), { recursive: true })
    const r = spawnSync(cc, ['-O2', '-o', bin, join(here, 'receiver.c')], { stdio: 'inherit' })
    if (r.status !== 0) rmSync(bin, { force: true })
  }
  const useC = existsSync(bin)
  const child = useC
    ? spawn(bin, [String(port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(process.execPath, [join(here, 'stream-clients.mjs'), String(port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] })
  children.add(child)
  const waiting = []
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.(line))
  return {
    kind: useC ? 'C epoll receiver' : 'Node raw-socket receiver',
    next: () => new Promise((resolve) => waiting.push(resolve)),
    send: (line) => child.stdin.write(line + '\n'),
    stop: () => { child.stdin.write('exit\n'); children.delete(child) }
  }
}

/**
 * S4: from just before POST /broadcast to the last of N clients' receipt, on the shared wall clock,
 * after 10 warm-up rounds (the server's JIT, like S1's warm-up); the median of 5 rounds. The server
 * also reports its own fan-out time.
 */
async function broadcastScenario (s) {
  const rx = receiver(s.port, CFG.streams)
  await rx.next() // ready
  const times = []
  const fanout = []
  const WARMUP = 10
  for (let i = 0; i < WARMUP + 5; i++) {
    rx.send(`arm "round":${i}}`)
    await rx.next() // armed
    const done = rx.next()
    const sent = performance.timeOrigin + performance.now()
    const res = await fetch(`${s.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'bench', data: { round: i } }) })
    const f = (await res.json()).fanoutMs
    const last = Number((await done).split(' ')[1]) / 1e6
    if (i >= WARMUP) { times.push(last - sent); fanout.push(f) }
  }
  rx.stop()
  const r = {
    streams: CFG.streams,
    receiver: rx.kind,
    ms: Math.round(median(times) * 10) / 10,
    runs: times.map((x) => Math.round(x * 10) / 10),
    serverFanoutMs: median(fanout)
  }
  log(`${s.name}: S4 broadcast to ${CFG.streams} streams: server fan-out ${r.serverFanoutMs} ms, last client receipt ${r.ms} ms (runs ${r.runs.join(', ')}; ${r.receiver})`)
  return r
}

// ---------- scenarios ----------
const results = { machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` }, versions: {}, config: CFG, targets: {} }
for (const pkg of ['@modelcontextprotocol/sdk', 'fastmcp', 'fastify', 'autocannon']) {
  try { results.versions[pkg] = JSON.parse(readFileSync(join(here, 'node_modules', pkg, 'package.json'), 'utf8')).version } catch { results.versions[pkg] = 'not installed' }
}
results.versions['sse-mcp-server'] = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version

const redis = await startRedis()
if (!redis) log('redis-server not found: the Redis row is skipped')
let failed = false

const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : undefined
for (const t of TARGETS) {
  if (t.redis && !redis) continue
  if (only && !only.includes(t.id)) continue
  const s = await startTarget(t, redis?.url)
  const r = (results.targets[t.id] = { name: t.name })
  try {
    const session = await initialize(s)
    await checkEcho(s, session)
    if (QUICK) {
      if (t.ours) {
        const seen = { smoke: false }
        const stream = await openStream(s, undefined, (ev) => { if (ev.includes('event: smoke')) seen.smoke = true })
        const res = await fetch(`${s.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"event":"smoke","data":1}' })
        const end = Date.now() + 5000
        while (!seen.smoke && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10))
        stream.destroy()
        if (res.status !== 202 || !seen.smoke) throw new Error(`${t.name}: broadcast not delivered`)
      }
      log(`OK ${t.id}: initialize + tools/call echo${t.ours ? ' + stream + broadcast' : ''}`)
      continue
    }
    // S1/S2: tools/call echo throughput.
    if (CFG.warmup > 0) await autocannon(s, session, { duration: CFG.warmup })
    const runs = []
    for (let i = 0; i < CFG.reps; i++) runs.push(await autocannon(s, session, { duration: CFG.duration }))
    r.s1 = {
      rps: median(runs.map((x) => x.rps)),
      p50: median(runs.map((x) => x.p50)),
      p99: median(runs.map((x) => x.p99)),
      non2xx: runs.reduce((a, x) => a + x.non2xx, 0),
      errors: runs.reduce((a, x) => a + x.errors, 0),
      runs: runs.map((x) => Math.round(x.rps))
    }
    log(`${t.name}: S1 ${Math.round(r.s1.rps)} req/s (runs ${r.s1.runs.join(', ')}; p50 ${r.s1.p50} ms, p99 ${r.s1.p99} ms, non-2xx ${r.s1.non2xx})`)
    // S5: retained heap per request after GC.
    await autocannon(s, session, { amount: 1000, connections: 10 })
    const h0 = await heapAfterGc(s)
    await autocannon(s, session, { amount: CFG.leak, connections: 10 })
    const h1 = await heapAfterGc(s)
    r.s5 = { bytesPerRequest: Math.round((h1 - h0) / CFG.leak), heapBefore: h0, heapAfter: h1 }
    log(`${t.name}: S5 ${r.s5.bytesPerRequest} bytes retained per request`)
    // S3/S4: idle streams and broadcast.
    if (t.streams) {
      // Collect first, so garbage left by S1/S5 does not shrink RSS in the middle of the measurement.
      await heapAfterGc(s)
      const rss0 = rssOf(s.child.pid)
      const { reqs, ms } = await openStreams(s, CFG.streams, () => {})
      await new Promise((resolve) => setTimeout(resolve, 1000))
      await heapAfterGc(s)
      const rss1 = rssOf(s.child.pid)
      r.s3 = { streams: CFG.streams, openMs: Math.round(ms), rssPerStreamKB: Math.round((rss1 - rss0) / CFG.streams / 102.4) / 10 }
      log(`${t.name}: S3 ${CFG.streams} streams opened in ${r.s3.openMs} ms, ${r.s3.rssPerStreamKB} KB RSS per stream`)
      for (const q of reqs) q.destroy()
      if (t.ours) r.s4 = await broadcastScenario(s)
    }
  } catch (err) {
    failed = true
    r.error = err.message
    log(`FAIL ${t.id}: ${err.message}`)
  } finally {
    await stopTarget(s)
  }
}
if (redis) redis.child.kill('SIGKILL')
agent.destroy()

if (QUICK) {
  log(failed ? 'bench smoke: FAILED' : 'bench smoke: every target answered correctly')
  process.exit(failed ? 1 : 0)
}

// ---------- goals ----------
const T = results.targets
const ratio = (a, b) => (a && b ? a / b : NaN)
const goals = [
  ['S1 sse-mcp-server ≥ 70% of the bare-Fastify ceiling', ratio(T.ours?.s1?.rps, T.bare?.s1?.rps), (x) => x >= 0.7, (x) => `${(x * 100).toFixed(0)}%`],
  ['S1 sse-mcp-server ≥ 3× the official SDK (stateful)', ratio(T.ours?.s1?.rps, T.sdk?.s1?.rps), (x) => x >= 3, (x) => `${x.toFixed(2)}×`],
  ['S3 ≤ 25 KB RSS per open stream', T.ours?.s3?.rssPerStreamKB, (x) => x <= 25, (x) => `${x} KB`],
  [`S4 broadcast to ${CFG.streams} streams delivered ≤ 10 ms (last client receipt)`, T.ours?.s4?.ms, (x) => x <= 10, (x) => `${x} ms`],
  [`S4 server-side fan-out to ${CFG.streams} streams ≤ 10 ms`, T.ours?.s4?.serverFanoutMs, (x) => x <= 10, (x) => `${x} ms`],
  ['S5 ≈ 0 bytes retained per request (≤ 100)', T.ours?.s5?.bytesPerRequest, (x) => x <= 100, (x) => `${x} B`]
].map(([name, value, ok, fmt]) => ({ name, value, pass: Number.isFinite(value) && ok(value), shown: Number.isFinite(value) ? fmt(value) : 'n/a' }))
results.goals = goals

const row = (id) => {
  const x = T[id]
  if (!x) return undefined
  const f = (v, d = 0) => (v === undefined ? '—' : typeof v === 'number' ? v.toFixed(d) : v)
  return `| ${x.name} | ${f(x.s1?.rps)} | ${f(x.s1?.p50)} / ${f(x.s1?.p99)} | ${x.s3 ? `${x.s3.openMs} ms, ${x.s3.rssPerStreamKB} KB` : '—'} | ${x.s4 ? `${x.s4.serverFanoutMs} ms / ${x.s4.ms} ms` : '—'} | ${f(x.s5?.bytesPerRequest)} |${x.error ? ` error: ${x.error}` : ''}`
}
const md = `# Benchmark results

Generated by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}.

Machine: ${results.machine.cpu}, ${results.machine.cores} cores, ${results.machine.memoryGiB} GiB, ${results.machine.platform}, Node ${results.machine.node}.
S4's receiver: ${T.ours?.s4?.receiver ?? 'n/a'}, after 10 warm-up broadcasts. The load generator (autocannon, ${CFG.connections} connections, ${CFG.duration} s × ${CFG.reps} runs after a ${CFG.warmup} s warm-up; medians) runs in its own
process on the same 2-core machine, so absolute numbers understate every server alike; compare the ratios.

Versions: ${Object.entries(results.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.

| target | S1 tools/call echo (req/s) | latency p50 / p99 (ms) | S3 ${CFG.streams} idle streams: open time, RSS per stream | S4 broadcast to all: server fan-out / last client receipt | S5 bytes retained per request |
|---|---|---|---|---|---|
${TARGETS.map((t) => row(t.id)).filter(Boolean).join('\n')}

S2 (stateless): sse-mcp-server's row is MCP 2026-07-28 (per-request \`_meta\`, mirrored headers, no session); the official SDK's is its 2025 stateless mode (a new server and transport per request).
S4 exists only for sse-mcp-server: the peers have no broadcast.

## Goals

${goals.map((g) => `- ${g.pass ? 'PASS' : 'FAIL'} ${g.name}: ${g.shown}`).join('\n')}
`
writeFileSync(join(here, 'results.md'), md)
writeFileSync(join(here, 'results.json'), JSON.stringify(results, null, 2) + '\n')
log('\n' + md)
