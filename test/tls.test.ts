import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request as httpsRequest } from 'node:https'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import type { Readable } from 'node:stream'
import { kEngine } from '../src/mcp/engine.js'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { buildApp, type App } from '../src/app.js'
import { ConfigError, loadConfig } from '../src/config.js'

const hasOpenssl = (() => {
  try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true } catch { return false }
})()

/** A self-signed certificate for localhost / 127.0.0.1, made for this test run. */
function selfSigned (t: TestContext): { certFile: string, keyFile: string, ca: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'sse-mcp-tls-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  return { certFile, keyFile, ca: readFileSync(certFile) }
}

/** The service as the environment makes it: TLS_CERT_FILE / TLS_KEY_FILE (and HTTP2), on a free port. */
async function serve (t: TestContext, env: Record<string, string>): Promise<{ app: App, port: number }> {
  const app = await buildApp({ ...loadConfig({ MCP_FIXTURES: 'conformance', ...env }), logLevel: 'silent', logger: false })
  t.after(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  return { app, port: address.port }
}

interface Exchange {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** The HTTP version the answer came over ('1.1' or '2'). */
  version: string
  next: (timeoutMs?: number) => Promise<EventSourceMessage>
  text: () => Promise<string>
  close: () => void
}

/** Wraps a response body: SSE events as they come, or the whole text at the end. */
function exchange (status: number, headers: Exchange['headers'], version: string, body: Readable, close: () => void): Exchange {
  const queue: EventSourceMessage[] = []
  let wake: (() => void) | undefined
  let all = ''
  let ended = false
  const parser = createParser({ onEvent: (ev) => { queue.push(ev); wake?.() } })
  body.setEncoding('utf8')
  body.on('data', (chunk: string) => { all += chunk; parser.feed(chunk) })
  const done = new Promise<void>((resolve) => {
    const finish = (): void => { ended = true; wake?.(); resolve() }
    body.once('end', finish)
    body.once('close', finish)
    body.once('error', finish)
  })
  return {
    status,
    headers,
    version,
    async next (timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      while (queue.length === 0) {
        if (ended) throw new Error('the stream ended')
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`no SSE event within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          wake = () => { clearTimeout(timer); resolve() }
        })
        wake = undefined
      }
      return queue.shift() as EventSourceMessage
    },
    async text () { await done; return all },
    close
  }
}

type Send = (method: string, path: string, headers?: Record<string, string>, body?: string) => Promise<Exchange>

/** HTTP/1.1 over TLS (node:https), one socket per request. */
function https1 (port: number, ca: Buffer): Send {
  return async (method, path, headers = {}, body) => await new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port, path, method, ca, agent: false, headers: { host: `localhost:${port}`, ...headers } }, (res) => {
      resolve(exchange(res.statusCode ?? 0, res.headers, res.httpVersion, res, () => { req.destroy() }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** HTTP/2 (node:http2): every request a stream of one connection. */
function https2 (t: TestContext, port: number, ca: Buffer): { send: Send, session: ClientHttp2Session } {
  const session = http2Connect(`https://localhost:${port}`, { ca })
  t.after(() => { session.close() })
  session.on('error', () => {})
  const send: Send = async (method, path, headers = {}, body) => await new Promise((resolve, reject) => {
    const stream = session.request({ ':method': method, ':path': path, ...headers })
    stream.once('response', (h) => {
      const { ':status': status, ...rest } = h
      resolve(exchange(Number(status), rest, '2', stream, () => { stream.close() }))
    })
    stream.once('error', reject)
    stream.end(body)
  })
  return { send, session }
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
const initialize = (version: string): string => JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'tls', version: '1' } } })

async function waitFor (cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Every transport, through `send`: what a client over TLS sees. */
async function everyTransport (app: App, send: Send, version: string): Promise<void> {
  // Streamable HTTP: initialize (JSON), then a call whose answer is an SSE stream (progress first).
  const init = await send('POST', '/mcp', JSON_HEADERS, initialize('2025-11-25'))
  assert.equal(init.status, 200)
  assert.equal(init.version, version)
  const sid = String(init.headers['mcp-session-id'])
  assert.equal(JSON.parse(await init.text()).result.protocolVersion, '2025-11-25')
  const session = { ...JSON_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }
  const call = await send('POST', '/mcp', session, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'tls' } } }))
  assert.equal(call.status, 200)
  assert.match(String(call.headers['content-type']), /^text\/event-stream/)
  assert.equal(call.headers.connection, version === '2' ? undefined : 'keep-alive', 'no Connection header over h2')
  const messages: Array<{ method?: string, id?: number }> = []
  for (const ev of (await call.text()).split('\n').filter((l) => l.startsWith('data: {'))) messages.push(JSON.parse(ev.slice(6)))
  assert.deepEqual(messages.map((m) => m.method ?? `result ${m.id}`), ['notifications/progress', 'notifications/progress', 'notifications/progress', 'result 1'])
  // The session's own GET stream.
  const own = await send('GET', '/mcp', { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })
  assert.equal(own.status, 200)
  own.close()
  const deleted = await send('DELETE', '/mcp', session)
  assert.equal(deleted.status, 204)

  // The public GET /mcp stream: welcome, then a broadcast.
  const before = app.hub.stats().streams
  const pub = await send('GET', '/mcp', { accept: 'text/event-stream' })
  assert.equal(pub.status, 200)
  assert.equal((await pub.next()).event, 'welcome')
  const broadcast = await send('POST', '/broadcast', { 'content-type': 'application/json' }, JSON.stringify({ event: 'tls-news', data: { over: version } }))
  assert.equal(broadcast.status, 202)
  await broadcast.text()
  let ev = await pub.next()
  while (ev.event !== 'tls-news') ev = await pub.next()
  assert.deepEqual(JSON.parse(ev.data), { over: version })
  // A client that goes is noticed (h2: the stream's reset, not the socket's close).
  pub.close()
  await waitFor(() => app.hub.stats().streams <= before, 'the public stream to be released')

  // Legacy HTTP+SSE: the endpoint event, a POST, the answer on the stream.
  const sse = await send('GET', '/sse', { accept: 'text/event-stream' })
  assert.equal(sse.status, 200)
  const endpoint = await sse.next()
  assert.equal(endpoint.event, 'endpoint')
  const posted = await send('POST', endpoint.data, { 'content-type': 'application/json' }, initialize('2024-11-05'))
  assert.equal(posted.status, 202)
  await posted.text()
  const answer = await sse.next()
  assert.equal(answer.event ?? 'message', 'message')
  assert.equal(JSON.parse(answer.data).result.protocolVersion, '2024-11-05')
  const sessions = app[kEngine].stats().sessions
  sse.close()
  await waitFor(() => app[kEngine].stats().sessions < sessions, 'the HTTP+SSE session to end with its stream')
}

test('TLS (TLS_CERT_FILE / TLS_KEY_FILE): Streamable HTTP with an SSE answer, the public stream and HTTP+SSE over https', { skip: !hasOpenssl, timeout: 60_000 }, async (t) => {
  const { certFile, keyFile, ca } = selfSigned(t)
  const { app, port } = await serve(t, { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile })
  await everyTransport(app, https1(port, ca), '1.1')
  // Plain HTTP on the TLS port gets nothing.
  const plain = await fetch(`http://127.0.0.1:${port}/health`).then(() => 'answered', () => 'refused')
  assert.equal(plain, 'refused')
})

test('HTTP2=true: every transport works over HTTP/2, and HTTP/1.1 clients still work on the same port', { skip: !hasOpenssl, timeout: 60_000 }, async (t) => {
  const { certFile, keyFile, ca } = selfSigned(t)
  const { app, port } = await serve(t, { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, HTTP2: 'true' })
  const h2 = https2(t, port, ca)
  await everyTransport(app, h2.send, '2')
  assert.equal(h2.session.alpnProtocol, 'h2')
  await everyTransport(app, https1(port, ca), '1.1')
})

test('HTTP/2: one connection carries many streams at once (past the browsers\' six-per-origin limit of HTTP/1.1)', { skip: !hasOpenssl, timeout: 60_000 }, async (t) => {
  const { certFile, keyFile, ca } = selfSigned(t)
  const { app, port } = await serve(t, { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, HTTP2: 'true', MAX_CONNECTIONS_PER_CLIENT: '2' })
  const { send } = https2(t, port, ca)
  const streams = await Promise.all(Array.from({ length: 20 }, async () => await send('GET', '/mcp', { accept: 'text/event-stream' })))
  for (const s of streams) assert.equal((await s.next()).event, 'welcome')
  t.diagnostic(`20 public streams open over ${app.connections?.open} socket(s); hub counts ${app.hub.stats().streams} streams`)
  assert.equal(app.connections?.open, 1)
  assert.equal(app.hub.stats().streams, 20)
  for (const s of streams) s.close()
  await waitFor(() => app.hub.stats().streams === 0, 'every stream to be released')
})

test('HTTP2 without TLS is refused at start-up with one line', () => {
  assert.throws(() => loadConfig({ HTTP2: 'true' }), (err: unknown) => err instanceof ConfigError && /^Invalid configuration: HTTP2=true needs TLS_CERT_FILE/.test(err.message))
})

test('over TLS too, every socket has a bound: a slow-header socket and a silent one are closed by the headers timeout (HTTPS and HTTP2 servers)', { skip: !hasOpenssl, timeout: 60_000 }, async (t) => {
  const { certFile, keyFile, ca } = selfSigned(t)
  const headersTimeoutMs = 500
  for (const HTTP2 of ['false', 'true']) {
    const { port } = await serve(t, { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, HTTP2, HEADERS_TIMEOUT_MS: String(headersTimeoutMs), REQUEST_TIMEOUT_MS: '1000' })
    const { connect: tlsConnect } = await import('node:tls')
    const { connect: netConnect } = await import('node:net')
    // Slow headers over HTTP/1.1 in TLS.
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] })
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()))
    const opened = Date.now()
    socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
    const drip = setInterval(() => { if (!socket.destroyed) socket.write('a') }, 50)
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    clearInterval(drip)
    const slow = Date.now() - opened
    // A socket that never even starts the TLS handshake.
    const silent = netConnect({ host: '127.0.0.1', port })
    silent.on('error', () => {})
    const silentOpened = Date.now()
    await new Promise<void>((resolve) => silent.once('close', () => resolve()))
    const quiet = Date.now() - silentOpened
    t.diagnostic(`HTTP2=${HTTP2}: slow-header socket closed after ${slow} ms, silent socket after ${quiet} ms (HEADERS_TIMEOUT_MS=${headersTimeoutMs})`)
    assert.ok(slow < headersTimeoutMs + 2000, `HTTP2=${HTTP2}: slow headers held ${slow} ms`)
    assert.ok(quiet < headersTimeoutMs + 2000, `HTTP2=${HTTP2}: a silent socket held ${quiet} ms`)
    if (HTTP2 !== 'true') continue
    // HTTP/2: a stream whose body drips is reset after REQUEST_TIMEOUT_MS; its connection lives on.
    const { send, session } = https2(t, port, ca)
    const stream = session.request({ ':method': 'POST', ':path': '/mcp', 'content-type': 'application/json', accept: 'application/json, text/event-stream' })
    stream.on('error', () => {})
    stream.write('{')
    const bodyOpened = Date.now()
    const dripBody = setInterval(() => { if (!stream.destroyed) stream.write(' ') }, 50)
    await new Promise<void>((resolve) => stream.once('close', () => resolve()))
    clearInterval(dripBody)
    const bodyHeld = Date.now() - bodyOpened
    t.diagnostic(`HTTP2=true: h2 stream with a dripping body reset after ${bodyHeld} ms (REQUEST_TIMEOUT_MS=1000)`)
    assert.ok(bodyHeld < 1000 + 2000, `held ${bodyHeld} ms`)
    const after = await send('GET', '/health')
    assert.equal(after.status, 200, 'the connection still serves other streams')
    await after.text()
  }
})
