#!/usr/bin/env node
// The README's "worst case under a 30-second unauthenticated attack": a default process (`npm start`
// with an empty environment, auth off) attacked from one IP with every vector a client has to make
// the server hold memory — sessions with the largest accepted capabilities, subscriptions, legacy
// streams that stop reading while their rings are filled with maximal replies, public streams that
// never read while 64 KB broadcasts go out, listen streams, aborted streams, depth bombs. The heap is
// read after GC (gc-probe.mjs, over IPC) every 2 s; the run prints the peak, the heap once the
// attacker has gone, and every status seen (5xx must be 0).
//
//   npm run build && node bench/attack.mjs [--seconds 30] [--json]
import { spawn } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')
const args = process.argv.slice(2)
const SECONDS = Number(args[args.indexOf('--seconds') + 1] ?? 30) || 30
const asJson = args.includes('--json')
// `--env NAME=value` (repeatable) changes the server's environment, e.g. `--env RATE_LIMIT_MAX=0`
// to see the budgets hold with no rate limit in front of them.
const extraEnv = Object.fromEntries(args.flatMap((a, i) => a === '--env' && args[i + 1]?.includes('=') ? [args[i + 1].split(/=(.*)/s, 2)] : []))
const MB = 1024 * 1024

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
})
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const port = await freePort()
const env = { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', NODE_ENV: 'production', ...extraEnv }
const child = spawn(process.execPath, ['--expose-gc', '--import', join(here, 'gc-probe.mjs'), join(root, 'dist/src/server.js')], {
  cwd: root, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc']
})
let serverOut = ''
child.stdout.on('data', (d) => { serverOut += d })
child.stderr.on('data', (d) => { serverOut += d })
const base = `http://127.0.0.1:${port}`
for (let i = 0, lastError; ; i++) {
  try { if ((await fetch(`${base}/health`)).ok) break } catch (err) { lastError = err }
  if (i > 100) throw new Error(`server did not start (last /health attempt: ${lastError}):\n${serverOut}`)
  await sleep(100)
}
const heap = () => new Promise((resolve) => { child.once('message', (m) => resolve(m.heapUsed)); child.send('gc') })

const statuses = new Map()
const count = (s, what = '') => statuses.set(what ? `${s} ${what}` : s, (statuses.get(what ? `${s} ${what}` : s) ?? 0) + 1)
const ACCEPT = 'application/json, text/event-stream'
async function post (path, body, headers = {}) {
  try {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body })
    count(res.status, res.status === 429 ? '' : path.split('?')[0])
    await res.arrayBuffer()
    return res
  } catch { count('network') }
}

/**
 * Opens a raw SSE stream and reads its first event (the legacy endpoint); then it either stops
 * reading (a slow consumer: the server must bound its queue) or keeps reading and discarding (so the
 * session stays and its replay ring fills).
 */
function rawStream (path, { keepReading = false } = {}, headers = {}) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let head = ''
    const done = (v) => {
      socket.removeAllListeners('data')
      if (keepReading) socket.on('data', () => {})
      else socket.pause()
      resolve(v)
    }
    socket.on('error', () => resolve({ socket, status: 'network' }))
    socket.on('data', (d) => {
      head += d.toString('latin1')
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0)
      if (status !== 0 && status !== 200) { count(status); done({ socket, status }) }
      const m = /sessionId=([^\s&]+)/.exec(head)
      if (status === 200 && (path !== '/sse' || m)) { count(200); done({ socket, status, sessionId: m?.[1] }) }
    })
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n${extra}\r\n`)
    setTimeout(() => done({ socket, status: 'timeout' }), 5000).unref()
  })
}

const baseline = await heap()
const sockets = []
const deadline = Date.now() + SECONDS * 1000
const samples = []
const sampler = (async () => {
  while (Date.now() < deadline) { await sleep(2000); samples.push(await heap()) }
})()

const big = (n) => 'x'.repeat(n)
const capabilities = { experimental: { pad: big(15_000) } }
const init = (caps) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: caps, clientInfo: { name: 'attacker', version: '1' } } })

// 1. Legacy sessions (half of them stop reading), with rings filled by ~1 MB replies.
const legacy = []
for (let i = 0; i < 60; i++) {
  const s = await rawStream('/sse', { keepReading: i % 2 === 0 })
  sockets.push(s.socket)
  if (s.sessionId) legacy.push(s.sessionId)
}
// 2. Streamable sessions with the largest capabilities accepted, and a refused 1 MB one each round.
const sessions = []
for (let i = 0; i < 60; i++) {
  const res = await post('/mcp', init(capabilities))
  const sid = res?.headers.get('mcp-session-id')
  if (sid) sessions.push(sid)
  await post('/mcp', init({ experimental: { pad: big(MB - 200) } }))
}
// 3. Public streams that never read; 4. listen streams with large filters.
for (let i = 0; i < 40; i++) sockets.push((await rawStream('/mcp')).socket)

const loops = [
  (async () => { // the largest echo replies (100,000 characters, the tool's maxLength) into every legacy ring
    for (let i = 0; Date.now() < deadline; i++) {
      const sid = legacy[i % Math.max(1, legacy.length)]
      if (sid === undefined) break
      await post(`/messages?sessionId=${sid}`, JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { message: big(100_000) } } }))
    }
  })(),
  (async () => { // subscriptions with the longest URIs
    for (let i = 0; Date.now() < deadline; i++) {
      const sid = sessions[i % Math.max(1, sessions.length)]
      if (sid === undefined) break
      await post('/mcp', JSON.stringify({ jsonrpc: '2.0', id: i, method: 'resources/subscribe', params: { uri: `file:///${i}/${big(2000)}` } }), { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })
    }
  })(),
  (async () => { // broadcasts of the largest allowed size to streams that do not read
    while (Date.now() < deadline) await post('/broadcast', JSON.stringify({ event: 'spam', data: big(64_000) }))
  })(),
  (async () => { // streams aborted right after the request
    while (Date.now() < deadline) {
      const socket = connect(port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write(`GET /sse HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`)
      socket.destroy()
      await sleep(20)
    }
  })(),
  (async () => { // depth bombs and listen filters
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} }
    while (Date.now() < deadline) {
      await post('/mcp', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}}`)
      await post('/mcp', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'subscriptions/listen', params: { _meta: meta, filter: { pad: big(MB / 2) } } }),
        { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen' })
      await sleep(50)
    }
  })()
]
await Promise.all([...loops, sampler])
const peak = Math.max(...samples, baseline)
for (const s of sockets) s?.destroy()
await sleep(3000)
const after = await heap()
let health = 0
try { health = (await fetch(`${base}/health`)).status } catch (err) { console.error(`/health after the attack failed: ${err}`) }
child.kill('SIGTERM')
await new Promise((resolve) => child.once('exit', resolve))

const isFault = (s) => Number.parseInt(String(s)) >= 500 && Number.parseInt(String(s)) !== 503
const fivexx = [...statuses].filter(([s]) => isFault(s)).reduce((n, [, c]) => n + c, 0)
const result = {
  seconds: SECONDS,
  baselineMB: +(baseline / MB).toFixed(1),
  peakMB: +(peak / MB).toFixed(1),
  afterMB: +(after / MB).toFixed(1),
  samplesMB: samples.map((s) => +(s / MB).toFixed(1)),
  statuses: Object.fromEntries([...statuses].sort()),
  fivexx,
  healthAfter: health,
  legacySessions: legacy.length,
  sessions: sessions.length
}
if (asJson) console.log(JSON.stringify(result))
else {
  console.log(`Unauthenticated attack on a default process (${SECONDS} s, one IP${Object.keys(extraEnv).length ? `, ${JSON.stringify(extraEnv)}` : ''}):`)
  console.log(`  heap after GC: baseline ${result.baselineMB} MB, peak ${result.peakMB} MB, after the attacker left ${result.afterMB} MB`)
  console.log(`  samples (MB): ${result.samplesMB.join(' ')}`)
  console.log(`  statuses: ${JSON.stringify(result.statuses)}; 5xx (other than 503): ${fivexx}; /health after: ${health}`)
  console.log(`  sessions held: ${legacy.length} legacy, ${sessions.length} streamable`)
}
if (fivexx > 0 || health !== 200) process.exitCode = 1
