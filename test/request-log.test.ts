import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { buildApp, LOG_REDACT } from '../src/app.js'
import type { Config } from '../src/config.js'
import { testConfig } from './helper.js'
import { POLICY } from '../plugins/policy.js'
import { sessionFingerprinter } from '../plugins/request-log.js'
import { openSse } from './sse-client.js'

interface LogLine { level: number, msg: string, [key: string]: unknown }

/** An app whose pino JSON lines are captured (same redaction as production). */
async function buildLogged (t: TestContext, overrides: Partial<Config> = {}, setup?: (app: Awaited<ReturnType<typeof buildApp>>) => void, level = 'info') {
  const lines: LogLine[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine)
      cb()
    }
  })
  const app = await buildApp({ ...testConfig(overrides), logger: { level, stream, redact: { paths: LOG_REDACT, censor: '[redacted]' } } })
  t.after(() => app.close())
  setup?.(app)
  await app.ready()
  const requestLines = () => lines.filter((l) => l.msg === 'request completed' || l.msg === 'incoming request')
  return { app, lines, requestLines }
}

/** What the log shows for a session: 12 base64url characters, never the id itself. */
const FINGERPRINT = /^[A-Za-z0-9_-]{12}$/

test('each request is logged once, with method, url, status and response time', async (t) => {
  const { app, requestLines } = await buildLogged(t)
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: '/nope' })
  const lines = requestLines()
  assert.equal(lines.length, 2, JSON.stringify(lines))
  assert.equal(lines[0]?.msg, 'request completed')
  assert.equal(lines[0]?.level, 30)
  assert.equal(lines[0]?.method, 'GET')
  assert.equal(lines[0]?.url, '/health')
  assert.equal(lines[0]?.statusCode, 200)
  assert.equal(typeof lines[0]?.ms, 'number')
  assert.equal(typeof lines[0]?.reqId, 'string')
  assert.equal(lines[1]?.statusCode, 404)
  assert.equal(lines[1]?.level, 30, 'a 404 is info')
})

test('a JSON-RPC request is logged with its session fingerprint, method and tool name', async (t) => {
  const { app, requestLines } = await buildLogged(t, {}, (app) => {
    // Any POST with a JSON-RPC body is described the same way as POST /mcp.
    app.post('/rpc-echo', { config: { policy: POLICY.client } }, async (_request, reply) => reply.header('mcp-session-id', 'from-response').send({ ok: true }))
  })
  await app.inject({
    method: 'POST',
    url: '/rpc-echo',
    headers: { 'mcp-session-id': 'session-abc' },
    payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'current_time', arguments: {} } }
  })
  await app.inject({
    method: 'POST',
    url: '/rpc-echo',
    payload: [{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', method: 'notifications/initialized' }]
  })
  const [call, batch] = requestLines()
  assert.equal(call?.rpc, 'tools/call')
  assert.equal(call?.tool, 'current_time')
  assert.match(String(call?.session), FINGERPRINT)
  assert.equal(batch?.session, call?.session, 'the session a response assigns wins (initialize), the same fingerprint each time')
  assert.equal(batch?.rpc, 'ping,notifications/initialized')
})

test('POST /mcp lines name the JSON-RPC method and the fingerprint of the session the server assigned', async (t) => {
  const { app, requestLines } = await buildLogged(t)
  const res = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
    payload: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'log-test', version: '1.0.0' } } }
  })
  assert.equal(res.statusCode, 200, res.body)
  const [line] = requestLines()
  assert.equal(line?.rpc, 'initialize')
  assert.match(String(line?.session), FINGERPRINT)
  assert.notEqual(line?.session, res.headers['mcp-session-id'])
})

test('tokens never reach the logs, from headers or the query string', async (t) => {
  const token = 'log-secret-token-789'
  const { app, lines } = await buildLogged(t, { authTokens: [token] })
  await app.inject({ method: 'GET', url: `/health?token=${token}`, headers: { authorization: `Bearer ${token}` } })
  await app.inject({ method: 'GET', url: `/docs?access_token=${token}`, headers: { authorization: `Bearer ${token}x` } })
  await app.inject({ method: 'GET', url: '/docs', headers: { authorization: `Bearer ${token}` } })
  const all = JSON.stringify(lines)
  assert.ok(lines.length >= 3)
  assert.ok(!all.includes(token), all)
  assert.ok(all.includes('token=[redacted]'))
})

test('client errors are logged at info or warn and never with a stack trace', async (t) => {
  const { app, lines, requestLines } = await buildLogged(t, { authTokens: ['some-token'] })
  await app.inject({ method: 'GET', url: '/docs' }) // 401
  await app.inject({ method: 'GET', url: '/nope', headers: { authorization: 'Bearer some-token' } }) // 404
  const [unauthorized, notFound] = requestLines()
  assert.equal(unauthorized?.statusCode, 401)
  assert.equal(unauthorized?.level, 40, '401 is a warn: worth an operator\'s eye')
  assert.equal(notFound?.level, 30)
  for (const line of lines) {
    assert.ok(line.level < 50, `no error-level line: ${JSON.stringify(line)}`)
    assert.ok(!JSON.stringify(line).includes('"stack"'), `no stack: ${JSON.stringify(line)}`)
  }
})

test('session ids never reach the log: every line of a session carries the same short fingerprint instead', async (t) => {
  // At debug level, so the `incoming request` lines are checked too.
  const { app, lines } = await buildLogged(t, {}, undefined, 'debug')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  const base = `http://127.0.0.1:${address.port}`
  const headers = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }

  // Legacy HTTP+SSE: the sessionId travels in the query string of every POST /messages.
  const sse = await openSse(`${base}/sse`)
  const endpoint = await sse.next()
  assert.equal(endpoint?.event, 'endpoint')
  const legacy = new URL(endpoint?.data ?? '', base).searchParams.get('sessionId') ?? ''
  assert.ok(legacy.length >= 16)
  for (const [id, method] of [[1, 'initialize'], [2, 'tools/list']] as const) {
    const res = await fetch(`${base}/messages?sessionId=${legacy}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id, method, params: method === 'initialize' ? { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'log', version: '1' } } : {} })
    })
    assert.equal(res.status, 202)
  }

  // Streamable HTTP: the session id travels in Mcp-Session-Id.
  const init = await fetch(`${base}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'log', version: '1' } } }) })
  assert.equal(init.status, 200)
  await init.body?.cancel()
  const modern = init.headers.get('mcp-session-id') ?? ''
  assert.ok(modern.length >= 16)
  const session = { ...headers, 'mcp-session-id': modern, 'mcp-protocol-version': '2025-11-25' }
  const call = await fetch(`${base}/mcp`, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'current_time', arguments: {} } }) })
  assert.equal(call.status, 200)
  await call.text()
  const gone = await fetch(`${base}/mcp`, { method: 'DELETE', headers: session })
  assert.equal(gone.status, 204)
  await sse.close()

  const text = JSON.stringify(lines)
  assert.ok(!text.includes(legacy), 'the legacy sessionId is nowhere in the log')
  assert.ok(!text.includes(modern), 'the MCP session id is nowhere in the log')
  assert.ok(lines.some((l) => l.msg === 'incoming request' && String(l.url).startsWith('/messages?sessionId=[redacted]')))
  const completed = lines.filter((l) => l.msg === 'request completed')
  const legacyLines = completed.filter((l) => String(l.url).startsWith('/messages'))
  const modernLines = completed.filter((l) => l.url === '/mcp')
  assert.equal(legacyLines.length, 2, JSON.stringify(completed))
  assert.equal(modernLines.length, 3, JSON.stringify(completed))
  // One fingerprint per session, on every line of it, and a different one for each session.
  const legacyPrint = String(legacyLines[0]?.session)
  const modernPrint = String(modernLines[0]?.session)
  assert.match(legacyPrint, FINGERPRINT)
  assert.match(modernPrint, FINGERPRINT)
  assert.notEqual(legacyPrint, modernPrint)
  for (const l of legacyLines) assert.equal(l.session, legacyPrint, JSON.stringify(l))
  for (const l of modernLines) assert.equal(l.session, modernPrint, JSON.stringify(l))
  assert.match(String(legacyLines[0]?.url), /sessionId=\[redacted\]/)
  assert.notEqual(sessionFingerprinter(undefined)(modern), sessionFingerprinter(undefined)(modern), 'without STATE_SECRET the key is random per process')
  const secret = 'log-fingerprint-test-secret-0123456789abcdef'
  assert.equal(sessionFingerprinter(secret)(modern), sessionFingerprinter(secret)(modern), 'replicas sharing STATE_SECRET agree')
})
