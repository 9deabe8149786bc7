import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../src/config.js'
import type { RoutePolicy } from '../plugins/policy.js'
import { listen } from './helper.js'

/**
 * The route-policy table, built from the app's own route list (a new route cannot be forgotten):
 * every route × every way of spelling its path × every kind of caller, sent over raw sockets
 * (inject and fetch normalise the request target) → the status the route's policy promises, or a
 * plain 404. Never a 5xx, never a success where the policy refuses.
 */

const CLIENT = 'table-client-token-1'
const OPERATOR = 'table-operator-token-1'

interface Reply { status: number, notFound: boolean }

/** Sends one request with a raw request target and returns its status (and whether no route matched). */
async function raw (port: number, method: string, target: string, headers: Record<string, string>): Promise<Reply> {
  const body = ['POST', 'PUT', 'PATCH'].includes(method) ? '{}' : ''
  const head = [`${method} ${target} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    'Accept: application/json', ...(body ? ['Content-Type: application/json'] : []), `Content-Length: ${body.length}`, 'Connection: close', '', ''].join('\r\n')
  return await new Promise<Reply>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head + body))
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error(`timeout: ${method} ${target}`)) })
    let data = ''
    const done = (): boolean => {
      const end = data.indexOf('\r\n\r\n')
      if (end === -1) return false
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1])
      if (status !== 404 || method === 'HEAD') {
        resolve({ status, notFound: status === 404 })
        return true
      }
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(data.slice(0, end))?.[1] ?? -1)
      if (length >= 0 && data.length - end - 4 < length) return false
      resolve({ status, notFound: data.slice(end).includes('"Route ') })
      return true
    }
    socket.on('data', (chunk: Buffer) => { data += chunk.toString('latin1'); if (done()) socket.destroy() })
    socket.on('end', () => { if (!done()) reject(new Error(`no answer: ${method} ${target}`)) })
    socket.on('error', reject)
  })
}

/** How a path may be spelt; `same` ones reach the same route, the others must be 404. */
function aliases (path: string, port: number): Array<{ name: string, target: string, same: boolean, foreignAuthority?: boolean }> {
  const letters = [...path].map((c, i) => /[a-z]/i.test(c) ? i : -1).filter((i) => i >= 0)
  const encode = (i: number, hex: string = path.charCodeAt(i).toString(16)) => `${path.slice(0, i)}%${hex}${path.slice(i + 1)}`
  return [
    { name: 'as declared', target: path, same: true },
    { name: 'first letter percent-encoded', target: encode(letters[0] ?? 0), same: true },
    { name: 'last letter percent-encoded (upper-case hex)', target: encode(letters.at(-1) ?? 0, path.charCodeAt(letters.at(-1) ?? 0).toString(16).toUpperCase()), same: true },
    { name: 'trailing slash', target: `${path}/`, same: true },
    { name: 'query string', target: `${path}?x=1`, same: true },
    { name: 'absolute-form, own authority', target: `http://127.0.0.1:${port}${path}`, same: true },
    { name: 'absolute-form, foreign authority', target: `http://evil.example${path}`, same: true, foreignAuthority: true },
    { name: 'double slash', target: `/${path}`, same: false },
    { name: 'upper case', target: path.toUpperCase(), same: false },
    { name: 'semicolon parameter', target: `${path};x`, same: false },
    { name: 'dot segment', target: `/.${path}`, same: false },
    { name: 'encoded slash', target: `${path}%2F`, same: false }
  ]
}

type Caller = 'none' | 'client' | 'operator' | 'foreign Origin' | 'foreign Host'
const CALLERS: Caller[] = ['none', 'client', 'operator', 'foreign Origin', 'foreign Host']

function headersFor (caller: Caller, port: number): Record<string, string> {
  const h: Record<string, string> = { Host: caller === 'foreign Host' ? `evil.example:${port}` : `127.0.0.1:${port}` }
  if (caller === 'client') h.Authorization = `Bearer ${CLIENT}`
  if (caller === 'operator' || caller === 'foreign Origin' || caller === 'foreign Host') h.Authorization = `Bearer ${OPERATOR}`
  if (caller === 'foreign Origin') h.Origin = 'http://evil.example'
  return h
}

/** What the policy promises: the refusal status, or 'pass' (the handler answers, whatever it says). */
function expected (policy: RoutePolicy, caller: Caller, authOn: boolean, foreignAuthority: boolean): 401 | 403 | 'pass' {
  if (policy.crossOrigin === 'guarded' && (caller === 'foreign Origin' || caller === 'foreign Host' || foreignAuthority)) return 403
  if (!authOn || policy.access === 'public') return 'pass'
  if (caller === 'none') return 401
  if (policy.access === 'operator' && caller === 'client') return 403
  return 'pass'
}

async function runTable (t: TestContext, overrides: Partial<Config>, authOn: boolean): Promise<void> {
  const { app, url } = await listen(t, { rateLimitMax: 0, authFailureMax: 0, ...overrides })
  const port = Number(new URL(url).port)
  const routes = app.routePolicies
  assert.ok(routes.some((r) => r.url === '/broadcast') && routes.some((r) => r.url === '/docs') && routes.some((r) => r.url === '/metrics'))
  const failures: string[] = []
  let requests = 0
  for (const route of routes) {
    assert.ok(route.policy, `${route.method} ${route.url} has a policy`)
    for (const alias of aliases(route.url, port)) {
      for (const caller of CALLERS) {
        const reply = await raw(port, route.method, alias.target, headersFor(caller, port))
        requests++
        const want = alias.same ? expected(route.policy, caller, authOn, alias.foreignAuthority === true) : 404
        const what = `${route.method} ${alias.target} (${alias.name}) as ${caller}: got ${reply.status}${reply.notFound ? ' (no route)' : ''}, want ${want}`
        if (reply.status >= 500) failures.push(what)
        else if (want === 'pass' ? [401, 403, 429].includes(reply.status) || reply.notFound : reply.status !== want) failures.push(what)
      }
    }
  }
  assert.deepEqual(failures, [], `${failures.length} of ${requests} requests broke the table`)
  t.diagnostic(`${routes.length} routes, ${requests} requests`)
}

test('route-policy table, auth off (the default): cross-origin refused on every spelling, zero 5xx', async (t) => {
  await runTable(t, {}, false)
})

test('route-policy table, auth on (client + operator tokens + OAuth): 401/403 by route on every spelling, zero 5xx', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'table-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'key.pem')
  writeFileSync(file, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }))
  await runTable(t, {
    authTokens: [CLIENT],
    operatorTokens: [OPERATOR],
    oauth: { resource: 'http://127.0.0.1:8080/mcp', issuer: undefined, jwksUrl: undefined, publicKeyFile: file, authorizationServers: [], scopesSupported: [] }
  }, true)
})

test('route-policy table, METRICS_PUBLIC and DOCS_PUBLIC with auth on: public but still same-origin only', async (t) => {
  await runTable(t, { authTokens: [CLIENT], operatorTokens: [OPERATOR], metricsPublic: true, docsPublic: true }, true)
})
