import { test } from 'node:test'
import assert from 'node:assert/strict'
import { missing, startRedis } from './services.js'
import { startServer } from './process.js'
import { openSse } from '../sse-client.js'
import { until } from './sdk.js'

// Issue 19, acceptance 2: with Redis down, every route answers (success, 503 + Retry-After, or a
// JSON-RPC error) within a bound, and no process exits. The built server (what `npm start` runs),
// a real redis-server that is SIGKILLed after the clients set up their sessions and streams.

const skip = missing('redis-server')

const POST = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
const V = '2026-07-28'
const stateless = (method: string, name?: string): Record<string, string> => ({
  ...POST, 'mcp-protocol-version': V, 'mcp-method': method, ...(name === undefined ? {} : { 'mcp-name': name })
})
const meta = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} }

interface Answer { route: string, status: number, retryAfter: string | null, body: string, ms: number }

test('with Redis down every route answers (success, 503 + Retry-After or a JSON-RPC error) and the process stays up', { skip, timeout: 120_000 }, async (t) => {
  const redis = await startRedis(t)
  const server = await startServer(t, { REDIS_URL: redis.url, LOG_LEVEL: 'warn', HEARTBEAT_INTERVAL_MS: '1000' })
  const { url } = server

  // Set up while Redis is up: a Streamable HTTP session, an HTTP+SSE session and its stream, a public stream.
  const init = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: POST,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } })
  })
  assert.equal(init.status, 200)
  await init.arrayBuffer()
  const sid = init.headers.get('mcp-session-id') ?? ''
  const session = { ...POST, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }
  const initialized = await fetch(`${url}/mcp`, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })
  assert.equal(initialized.status, 202)
  const httpSse = await openSse(`${url}/sse`)
  t.after(() => httpSse.close())
  const endpoint = (await httpSse.next(10_000))?.data ?? ''
  assert.match(endpoint, /\/messages\?sessionId=/)
  const pub = await openSse(`${url}/mcp`)
  t.after(() => pub.close())

  await redis.stop()

  const answers: Answer[] = []
  const drive = async (route: string, path: string, init: RequestInit = {}): Promise<void> => {
    const started = Date.now()
    let res: Response
    try {
      res = await fetch(`${url}${path}`, { ...init, signal: AbortSignal.timeout(15_000) })
    } catch (err) {
      answers.push({ route, status: 0, retryAfter: null, body: String(err), ms: Date.now() - started })
      return
    }
    // A stream that opened (200 text/event-stream) counts as an answer: read its head only.
    const isStream = (res.headers.get('content-type') ?? '').includes('text/event-stream')
    const body = isStream ? '(stream)' : await res.text()
    if (isStream) await res.body?.cancel()
    answers.push({ route, status: res.status, retryAfter: res.headers.get('retry-after'), body: body.slice(0, 300), ms: Date.now() - started })
  }

  const rpc = (id: number, method: string, params: Record<string, unknown> = {}): string => JSON.stringify({ jsonrpc: '2.0', id, method, params })
  await Promise.all([
    drive('GET /health', '/health'),
    drive('GET /ready', '/ready'),
    drive('GET /metrics', '/metrics'),
    drive('GET /docs', '/docs'),
    drive('GET /.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource'),
    drive('OPTIONS /mcp (preflight)', '/mcp', { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } }),
    drive('POST /broadcast', '/broadcast', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'tick', data: { n: 1 } }) }),
    drive('POST /mcp initialize', '/mcp', { method: 'POST', headers: POST, body: rpc(1, 'initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } }) }),
    drive('POST /mcp session tools/list', '/mcp', { method: 'POST', headers: session, body: rpc(2, 'tools/list') }),
    drive('POST /mcp session tools/call', '/mcp', { method: 'POST', headers: session, body: rpc(3, 'tools/call', { name: 'echo', arguments: { message: 'x' } }) }),
    drive('POST /mcp stateless tools/call', '/mcp', { method: 'POST', headers: stateless('tools/call', 'echo'), body: rpc(4, 'tools/call', { name: 'echo', arguments: { message: 'x' }, _meta: meta }) }),
    drive('POST /mcp stateless subscriptions/listen', '/mcp', { method: 'POST', headers: stateless('subscriptions/listen'), body: rpc(5, 'subscriptions/listen', { _meta: meta, notifications: { toolsListChanged: true, 'dev.sse-mcp-server/broadcasts': true } }) }),
    drive('GET /mcp public', '/mcp', { headers: { accept: 'text/event-stream' } }),
    drive('GET /mcp session', '/mcp', { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } }),
    drive('GET /sse', '/sse', { headers: { accept: 'text/event-stream' } }),
    drive('POST /messages', endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: rpc(6, 'ping') }),
    drive('DELETE /mcp', '/mcp', { method: 'DELETE', headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } })
  ])

  // Give an unhandled rejection (and the process-level handler that exits on it) time to act.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const problems: string[] = []
  for (const a of answers) {
    if (a.status === 0) problems.push(`${a.route}: no answer (${a.body})`)
    else if (a.status >= 500 && a.status !== 503) problems.push(`${a.route}: ${a.status} ${a.body}`)
    else if (a.status === 503 && a.retryAfter === null) problems.push(`${a.route}: 503 without Retry-After`)
    else if (a.route === 'POST /messages' && a.status === 202) problems.push(`${a.route}: 202 Accepted although the reply cannot be logged`)
    else if (a.route === 'GET /ready' && a.status !== 503) problems.push(`${a.route}: ${a.status}, not 503`)
  }
  t.diagnostic(answers.map((a) => `${a.route} → ${a.status}${a.retryAfter === null ? '' : ` (Retry-After ${a.retryAfter})`} in ${a.ms} ms`).join('; '))
  assert.equal(server.child.exitCode, null, `the server exited:\n${server.output().slice(-2000)}`)
  assert.doesNotMatch(server.output(), /unhandled|fatal error/i, 'no unhandled rejection, no fatal error (the process would drain and exit)')
  assert.deepEqual(problems, [])
  assert.ok(answers.every((a) => a.ms < 10_000), 'every answer within 10 s')

  // Redis back: the same process serves again.
  await redis.start()
  const deadline = Date.now() + 20_000
  let ready = 0
  while (Date.now() < deadline && ready !== 200) {
    ready = (await fetch(`${url}/ready`)).status
    if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  assert.equal(ready, 200, 'ready again once Redis is back')
  const after = await fetch(`${url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'tick', data: { n: 2 } }) })
  assert.equal(after.status, 202)
  assert.equal(server.child.exitCode, null)
  assert.doesNotMatch(server.output(), /unhandled|fatal error/i, 'no unhandled rejection, no fatal error in the log')
})

test('Redis killed during 60 concurrent broadcasts: each answers 202 or 503 + Retry-After, and the process stays up', { skip, timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const server = await startServer(t, { REDIS_URL: redis.url, LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '0' })
  const statuses: Array<{ status: number, retryAfter: string | null }> = []
  const work = Array.from({ length: 60 }, async (_, i) => {
    const res = await fetch(`${server.url}/broadcast`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'tick', data: { i } }), signal: AbortSignal.timeout(15_000)
    })
    await res.arrayBuffer()
    statuses.push({ status: res.status, retryAfter: res.headers.get('retry-after') })
  })
  // Kill Redis once the first broadcasts have been answered, with the rest in flight.
  await until(() => statuses.length >= 5, 10_000, 'the first broadcasts')
  await redis.stop()
  await Promise.all(work)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const summary = statuses.reduce<Record<number, number>>((m, s) => ({ ...m, [s.status]: (m[s.status] ?? 0) + 1 }), {})
  t.diagnostic(JSON.stringify(summary))
  assert.deepEqual(statuses.filter((s) => !(s.status === 202 || (s.status === 503 && s.retryAfter !== null))), [])
  assert.equal(server.child.exitCode, null)
  assert.doesNotMatch(server.output(), /unhandled|fatal error/i)
  assert.equal((await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(5000) })).status, 200)
})
