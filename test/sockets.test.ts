import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { request } from 'node:http'
import { listen } from './helper.js'
import { openSse } from './sse-client.js'

/** Loopback addresses of two different clients (Linux routes all of 127/8 to lo). */
const ATTACKER = '127.0.0.2'
const BYSTANDER = '127.0.0.3'

interface Probe { socket: Socket, opened: number, closedAt?: number, bytesIn: number, closed: Promise<void> }

/** A socket from `localAddress` that starts a request and then sends one header byte every `dripMs`, never ending the headers. */
async function slowHeaders (port: number, localAddress: string, dripMs: number): Promise<Probe> {
  const socket = connect({ host: '127.0.0.1', port, localAddress })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const probe: Probe = { socket, opened: Date.now(), bytesIn: 0, closed: Promise.resolve() }
  socket.on('data', (b: Buffer) => { probe.bytesIn += b.length })
  socket.on('error', () => {})
  socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
  const drip = setInterval(() => { if (!socket.destroyed) socket.write('a') }, dripMs)
  probe.closed = new Promise<void>((resolve) => socket.once('close', () => { clearInterval(drip); probe.closedAt = Date.now(); resolve() }))
  return probe
}

/** GET /health from `localAddress` on a fresh socket: the status code. */
async function health (port: number, localAddress: string): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', localAddress, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.setTimeout(5000, () => { req.destroy(new Error('no answer within 5 s')) })
    req.end()
  })
}

test('slowloris: one client holding N slow-header sockets never has more than its cap open, each is closed by the headers timeout, and another client is served', { timeout: 60_000 }, async (t) => {
  const cap = 8
  const headersTimeoutMs = 600
  const { app, url } = await listen(t, { maxConnectionsPerClient: cap, headersTimeoutMs, requestTimeoutMs: 1000 })
  const port = Number(new URL(url).port)
  const N = 40
  let peak = 0
  const sample = setInterval(() => { peak = Math.max(peak, app.connections?.open ?? 0) }, 5)
  const started = Date.now()
  const probes = await Promise.all(Array.from({ length: N }, async () => await slowHeaders(port, ATTACKER, 100)))
  // While the attacker holds its sockets, a second client is served at once.
  const bystander = await health(port, BYSTANDER)
  await Promise.all(probes.map(async (p) => await p.closed))
  clearInterval(sample)
  const held = probes.map((p) => (p.closedAt ?? Infinity) - p.opened)
  const refused = probes.filter((p) => p.bytesIn === 0).length
  const timedOut = probes.filter((p) => p.bytesIn > 0)
  const longest = Math.max(...held)
  t.diagnostic(`N=${N} cap=${cap}: peak open ${peak}, refused at connect ${refused} (server counted ${app.connections?.refused}), answered 408 then closed ${timedOut.length}, ` +
    `longest hold ${longest} ms (HEADERS_TIMEOUT_MS=${headersTimeoutMs}), whole attack ${Date.now() - started} ms, bystander got ${bystander}`)
  assert.equal(bystander, 200)
  assert.ok(peak <= cap + 1, `at most the cap (+ the bystander) open at once: ${peak}`)
  assert.equal(app.connections?.refused, N - timedOut.length)
  assert.ok(timedOut.length <= cap * 2, `only sockets within the cap were ever accepted: ${timedOut.length}`)
  assert.ok(timedOut.length >= 1)
  for (const p of timedOut) assert.ok((p.closedAt ?? Infinity) - p.opened < headersTimeoutMs + 2000, `a slow-header socket held ${(p.closedAt ?? Infinity) - p.opened} ms`)
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  assert.match(metrics, new RegExp(`^http_connections_refused_total ${N - timedOut.length}$`, 'm'))
  // Closing released every slot: the attacker may connect again.
  assert.equal(await health(port, ATTACKER), 200)
  assert.equal(app.connections?.open, 0)
})

test('a socket that sends nothing at all is closed by the headers timeout too', { timeout: 30_000 }, async (t) => {
  const headersTimeoutMs = 500
  const { app, url } = await listen(t, { headersTimeoutMs, requestTimeoutMs: 1000 })
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port), localAddress: ATTACKER })
  let error = ''
  socket.on('error', (err) => { error = err.message })
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const opened = Date.now()
  const closed = await Promise.race([
    new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), headersTimeoutMs + 5000))
  ])
  await Promise.race([connected, Promise.resolve()])
  assert.ok(closed, `still open after ${Date.now() - opened} ms: connecting=${String(socket.connecting)} error=${error} server open=${app.connections?.open}`)
  const held = Date.now() - opened
  t.diagnostic(`idle socket closed after ${held} ms (HEADERS_TIMEOUT_MS=${headersTimeoutMs})`)
  assert.ok(held < headersTimeoutMs + 2000, `held ${held} ms`)
})

test('the arrival timeouts do not cut a stream: an SSE stream lives on well past REQUEST_TIMEOUT_MS', { timeout: 30_000 }, async (t) => {
  const { url } = await listen(t, { headersTimeoutMs: 200, requestTimeoutMs: 300, heartbeatIntervalMs: 100 })
  const sse = await openSse(`${url}/mcp`)
  t.after(() => sse.close())
  assert.equal(sse.res.status, 200)
  const opened = Date.now()
  // Heartbeats keep arriving for 5× the request timeout.
  while (Date.now() - opened < 1500) {
    await sse.nextComment(2000)
    assert.equal(sse.ended, false)
  }
})

test('the per-client cap counts long-lived streams and refuses the socket past it; closing one frees a slot', { timeout: 30_000 }, async (t) => {
  const { app, url } = await listen(t, { maxConnectionsPerClient: 2 })
  const port = Number(new URL(url).port)
  const streams = await Promise.all([0, 1].map(async () => await openSse(`${url}/mcp`)))
  for (const s of streams) assert.equal(s.res.status, 200)
  // fetch's sockets come from 127.0.0.1: a third from the same address is refused at connect.
  await assert.rejects(health(port, '127.0.0.1'))
  assert.equal(app.connections?.refused, 1)
  await streams[0]?.close()
  const deadline = Date.now() + 5000
  while ((app.connections?.open ?? 0) > 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(await health(port, '127.0.0.1'), 200)
  await streams[1]?.close()
})

test('a slow body is cut by REQUEST_TIMEOUT_MS (408), however steadily it drips', { timeout: 30_000 }, async (t) => {
  const requestTimeoutMs = 800
  const { url } = await listen(t, { headersTimeoutMs: 400, requestTimeoutMs })
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port), localAddress: ATTACKER })
  socket.on('error', () => {})
  let answer = ''
  socket.on('data', (b: Buffer) => { answer += b.toString() })
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const opened = Date.now()
  socket.write('POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{')
  const drip = setInterval(() => { if (!socket.destroyed) socket.write(' ') }, 50)
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  clearInterval(drip)
  const held = Date.now() - opened
  t.diagnostic(`slow body closed after ${held} ms (REQUEST_TIMEOUT_MS=${requestTimeoutMs}): ${answer.split('\r\n')[0]}`)
  assert.match(answer, /^HTTP\/1\.1 408 /)
  assert.ok(held < requestTimeoutMs + 2000, `held ${held} ms`)
})

test('a proxy named in TRUST_PROXY is exempt from the per-client cap (every client arrives through it); anyone else is capped', { timeout: 30_000 }, async (t) => {
  const { app, url } = await listen(t, { maxConnectionsPerClient: 2, trustProxy: { addresses: [ATTACKER] } })
  const port = Number(new URL(url).port)
  const viaProxy = await Promise.all(Array.from({ length: 6 }, async () => await slowHeaders(port, ATTACKER, 100)))
  const direct = await Promise.all(Array.from({ length: 6 }, async () => await slowHeaders(port, BYSTANDER, 100)))
  // The refused sockets close at once (seen by the client); the proxy's stay open.
  const within = async (p: Probe, ms: number): Promise<boolean> =>
    await Promise.race([p.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))])
  const closed = await Promise.all(direct.map(async (p) => await within(p, 300)))
  assert.equal(closed.filter(Boolean).length, 4, 'the direct client gets 2 of its 6')
  assert.equal(app.connections?.refused, 4)
  assert.equal(viaProxy.filter((p) => p.socket.destroyed).length, 0, 'the proxy keeps all 6')
  for (const p of [...viaProxy, ...direct]) p.socket.destroy()
})
