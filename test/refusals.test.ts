import { test, type TestContext } from 'node:test'
import type { InjectOptions } from 'fastify'
import assert from 'node:assert/strict'
import { STATUS_CODES } from 'node:http'
import type { Config } from '../src/config.js'
import { build, listen, testConfig } from './helper.js'

/**
 * One way to refuse: over the app's own route table (every route × every kind of caller), every
 * 4xx/5xx body is one of the two refusal shapes — `{ statusCode, error, message }`, or on an MCP
 * transport a JSON-RPC error `{ jsonrpc, id, error: { code, message } }` — and every 429 and 503
 * carries a Retry-After of whole seconds. 429s are driven by the rate limit and the budgets, 503s
 * by capacity (MAX_CONNECTIONS) and draining.
 */

type App = Awaited<ReturnType<typeof build>>
interface Answer { what: string, status: number, headers: Record<string, unknown>, body: string }

const CLIENT = 'refusal-client-token'
const OPERATOR = 'refusal-operator-token'
const CALLERS: Record<string, Record<string, string>> = {
  none: {},
  client: { authorization: `Bearer ${CLIENT}` },
  operator: { authorization: `Bearer ${OPERATOR}` },
  'bad token': { authorization: 'Bearer nope' },
  'foreign Origin': { authorization: `Bearer ${OPERATOR}`, origin: 'http://evil.example' },
  'foreign Host': { authorization: `Bearer ${OPERATOR}`, host: 'evil.example' }
}
/** Fields a refusal may carry beside the shape: /ready's readiness report. */
const REPORT = new Set(['status', 'checks'])

/** What is wrong with a refusal (empty when it has the one shape). */
function problems ({ what, status, headers, body }: Answer): string[] {
  const found: string[] = []
  if (status === 429 || status === 503) {
    const wait = String(headers['retry-after'] ?? '')
    if (!/^[1-9]\d*$/.test(wait)) found.push(`Retry-After ${JSON.stringify(headers['retry-after'])}`)
  }
  if (!String(headers['content-type'] ?? '').startsWith('application/json')) found.push(`content-type ${String(headers['content-type'])}`)
  if (what.startsWith('HEAD ')) return found // no body, by definition
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return [...found, `body is not JSON: ${body.slice(0, 80)}`]
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return [...found, `body ${body.slice(0, 80)}`]
  const o = json as Record<string, unknown>
  if ('jsonrpc' in o) {
    const e = o.error as Record<string, unknown> | undefined
    const ok = o.jsonrpc === '2.0' && 'id' in o && Object.keys(o).length === 3 && typeof e === 'object' && e !== null &&
      typeof e.code === 'number' && typeof e.message === 'string' && Object.keys(e).every((k) => ['code', 'message', 'data'].includes(k))
    if (!ok) found.push(`JSON-RPC error shape: ${body.slice(0, 120)}`)
  } else {
    const ok = o.statusCode === status && o.error === STATUS_CODES[status] && typeof o.message === 'string' && o.message !== '' &&
      Object.keys(o).every((k) => ['statusCode', 'error', 'message'].includes(k) || REPORT.has(k))
    if (!ok) found.push(`HTTP error shape: ${body.slice(0, 120)}`)
  }
  return found
}

/** Every route of the table, as every caller; the answers that refused. */
async function sweep (app: App, extra: Record<string, string> = {}): Promise<Answer[]> {
  const refusals: Answer[] = []
  for (const route of app.routePolicies) {
    for (const [caller, headers] of Object.entries(CALLERS)) {
      const res = await app.inject({
        method: route.method as 'GET',
        url: route.url,
        headers: { accept: 'application/json', ...headers, ...extra, ...(['POST', 'PUT', 'PATCH'].includes(route.method) ? { 'content-type': 'application/json' } : {}) },
        ...(['POST', 'PUT', 'PATCH'].includes(route.method) ? { payload: '{}' } : {})
      })
      if (res.statusCode >= 400) refusals.push({ what: `${route.method} ${route.url} as ${caller}`, status: res.statusCode, headers: res.headers, body: res.body })
    }
  }
  // Beside the table: no route, bodies that are not JSON or too deep, a type no route takes, a real MCP request.
  const client = { ...CALLERS.client, ...extra }
  const json = { ...client, 'content-type': 'application/json' }
  const mcp = { ...json, accept: 'application/json, text/event-stream' }
  const deep = '['.repeat(200) + ']'.repeat(200)
  const more: Array<[string, InjectOptions]> = [
    ['GET /no-such-route', { method: 'GET', url: '/no-such-route', headers: client }],
    ['POST /broadcast, malformed JSON', { method: 'POST', url: '/broadcast', headers: { ...json, ...CALLERS.operator }, payload: '{' }],
    ['POST /broadcast, JSON too deep', { method: 'POST', url: '/broadcast', headers: { ...json, ...CALLERS.operator }, payload: `{"event":"x","data":${deep}}` }],
    ['POST /broadcast, bad field', { method: 'POST', url: '/broadcast', headers: { ...json, ...CALLERS.operator }, payload: { event: 'a\nb' } }],
    ['POST /broadcast, text/xml', { method: 'POST', url: '/broadcast', headers: { ...CALLERS.operator, 'content-type': 'text/xml' }, payload: '<x/>' }],
    ['POST /mcp, malformed JSON', { method: 'POST', url: '/mcp', headers: mcp, payload: '{' }],
    ['POST /mcp, unknown session', { method: 'POST', url: '/mcp', headers: { ...mcp, 'mcp-session-id': 'nope' }, payload: { jsonrpc: '2.0', id: 1, method: 'tools/list' } }],
    ['POST /mcp, initialize', { method: 'POST', url: '/mcp', headers: mcp, payload: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'r', version: '1' } } } }],
    ['POST /mcp, unknown stateless method', { method: 'POST', url: '/mcp', headers: { ...mcp, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'no/such' }, payload: { jsonrpc: '2.0', id: 1, method: 'no/such', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } } }]
  ]
  for (const [what, request] of more) {
    const res = await app.inject(request)
    if (res.statusCode >= 400) refusals.push({ what, status: res.statusCode, headers: res.headers, body: res.body })
  }
  return refusals
}

function assertOneShape (refusals: Answer[]): void {
  const bad = refusals.flatMap((a) => problems(a).map((p) => `${a.what} → ${a.status}: ${p}`))
  assert.deepEqual(bad, [], `${bad.length} of ${refusals.length} refusals break the shape`)
}

function statuses (refusals: Answer[]): Set<number> {
  return new Set(refusals.map((a) => a.status))
}

const authOn: Partial<Config> = { authTokens: [CLIENT], operatorTokens: [OPERATOR], rateLimitMax: 0, authFailureMax: 0 }

test('every refusal of the route table (auth on, every caller) has the one shape', async (t) => {
  const app = await build(t, authOn)
  const refusals = await sweep(app)
  assertOneShape(refusals)
  for (const status of [400, 401, 403, 404, 405, 406, 415]) assert.ok(statuses(refusals).has(status), `a ${status} was seen`)
})

test('429 from the rate limit: the one shape and a Retry-After on every route', async (t) => {
  const app = await build(t, { ...authOn, rateLimitMax: 1 })
  const refusals = await sweep(app)
  assertOneShape(refusals)
  assert.ok(refusals.filter((a) => a.status === 429).length > 10, 'the rate limit refused')
})

test('429 from the auth lockout: the one shape and a Retry-After on every route', async (t) => {
  const app = await build(t, { ...authOn, authFailureMax: 1 })
  const refusals = await sweep(app)
  assertOneShape(refusals)
  assert.ok(refusals.filter((a) => a.status === 429).length > 10, 'the lockout refused')
})

test('429 from a budget, 413 over a byte budget: the one shape and a Retry-After', async (t) => {
  const app = await build(t, { ...authOn, budgets: { ...testConfig().budgets, sessionsPerClient: 1 } })
  const refusals: Answer[] = []
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'r', version: '1' } } }
  const headers = { ...CALLERS.client, accept: 'application/json, text/event-stream', 'content-type': 'application/json' }
  assert.equal((await app.inject({ method: 'POST', url: '/mcp', headers, payload: init })).statusCode, 200)
  const over = await app.inject({ method: 'POST', url: '/mcp', headers, payload: init })
  assert.equal(over.statusCode, 429)
  refusals.push({ what: 'second initialize (MAX_SESSIONS_PER_CLIENT=1)', status: over.statusCode, headers: over.headers, body: over.body })
  const broadcast = await app.inject({ method: 'POST', url: '/broadcast', headers: { ...CALLERS.operator, 'content-type': 'application/json' }, payload: { event: 'x', data: 'y'.repeat(300_000) } })
  refusals.push({ what: 'broadcast over MAX_BROADCAST_BYTES', status: broadcast.statusCode, headers: broadcast.headers, body: broadcast.body })
  assertOneShape(refusals)
  assert.equal(broadcast.statusCode, 413)
})

test('503 while draining: the one shape and a Retry-After on every route', async (t) => {
  const app = await build(t, authOn)
  app.lifecycle.startDraining()
  const refusals = await sweep(app)
  for (const url of ['/mcp', '/sse']) {
    const res = await app.inject({ method: 'GET', url, headers: { ...CALLERS.client, accept: 'text/event-stream' } })
    refusals.push({ what: `GET ${url} stream while draining`, status: res.statusCode, headers: res.headers, body: res.body })
  }
  assertOneShape(refusals)
  const drained = refusals.filter((a) => a.status === 503).map((a) => a.what)
  for (const what of ['GET /ready as client', 'POST /mcp, initialize', 'GET /mcp stream while draining', 'GET /sse stream while draining']) {
    assert.ok(drained.includes(what), `${what} answered 503 (got ${drained.join('; ')})`)
  }
})

test('503 at capacity (MAX_CONNECTIONS): the one shape and a Retry-After', async (t: TestContext) => {
  const { app, url } = await listen(t, { rateLimitMax: 0, maxConnections: 1 })
  const controller = new AbortController()
  t.after(() => { controller.abort() })
  const open = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream' }, signal: controller.signal })
  assert.equal(open.status, 200)
  const refusals: Answer[] = []
  for (const path of ['/mcp', '/sse']) {
    const res = await app.inject({ method: 'GET', url: path, headers: { accept: 'text/event-stream' } })
    assert.equal(res.statusCode, 503, `GET ${path}`)
    refusals.push({ what: `GET ${path} at capacity`, status: res.statusCode, headers: res.headers, body: res.body })
  }
  assertOneShape(refusals)
})
