import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { listen } from '../helper.js'
import { POLICY } from '../../plugins/policy.js'

/**
 * DNS rebinding in a real browser: Chromium resolves evil.test to 127.0.0.1, so a page from
 * http://evil.test:<port>/ is "same-origin" with the server as far as the browser is concerned;
 * only the server's Origin/Host guard stands between that page and the tools. The page is served
 * from the app's own port by a test-only route (public, cross-origin open), as the attacker's DNS
 * would make it, and tries every route and spelling; every fetch must fail (403, 404 or a network
 * error). The same page served from 127.0.0.1 — the legitimate origin — gets through, so the test
 * can tell a guard from a broken server.
 */

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--host-resolver-rules=MAP evil.test 127.0.0.1',
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

let context: BrowserContext
let profile: string

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing`)
  profile = mkdtempSync(join(tmpdir(), 'rebinding-profile-'))
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 })
})
after(async () => {
  await context?.close()
  rmSync(profile, { recursive: true, force: true })
})

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'evil', version: '1' } } }
const CALL = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'current_time', arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } }
const RPC = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
const SSE = { accept: 'text/event-stream' }

/** What the attacker's page tries: every route and the spellings that used to slip past a URL regex. */
const ATTEMPTS: Array<{ method: string, path: string, headers?: Record<string, string>, body?: unknown }> = [
  ...['/mcp', '/%6Dcp', '/m%63p', '/mc%70', '/mcp/', '/%6dcp/'].flatMap((path) => [
    { method: 'POST', path, headers: RPC, body: INIT },
    { method: 'POST', path, headers: { ...RPC, 'mcp-protocol-version': '2026-07-28' }, body: CALL },
    { method: 'GET', path, headers: SSE },
    { method: 'DELETE', path, headers: { 'mcp-session-id': 'x' } }
  ]),
  ...['/sse', '/%73se', '/ss%65', '/sse/'].map((path) => ({ method: 'GET', path, headers: SSE })),
  ...['/messages?sessionId=x', '/%6Dessages?sessionId=x', '/messages/?sessionId=x'].map((path) => ({ method: 'POST', path, headers: RPC, body: INIT })),
  ...['/broadcast', '/%62roadcast', '/broadcas%74', '/broadcast/'].map((path) => ({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: { event: 'phish', data: { text: 'log in at evil.test' } } })),
  ...['/docs', '/%64ocs', '/docs/', '/metrics', '/%6Detrics', '/metrics/'].map((path) => ({ method: 'GET', path })),
  ...['//mcp', '/MCP', '/mcp;x', '/./mcp', '/mcp%2F'].map((path) => ({ method: 'POST', path, headers: RPC, body: INIT }))
]

/** Runs every attempt from inside the page; returns "METHOD path → status" or "→ network error". */
async function attack (origin: string): Promise<Array<{ what: string, status: number | null }>> {
  const page = await context.newPage()
  try {
    await page.goto(`${origin}/attack`)
    assert.equal(await page.textContent('h1'), 'attacker page')
    return await page.evaluate(async (attempts) => {
      const results: Array<{ what: string, status: number | null }> = []
      for (const a of attempts) {
        const controller = new AbortController()
        const timer = setTimeout(() => { controller.abort() }, 5000)
        try {
          const body = a.body === undefined ? undefined : JSON.stringify(a.body)
          const res = await fetch(a.path, { method: a.method, headers: a.headers, body, signal: controller.signal })
          results.push({ what: `${a.method} ${a.path}`, status: res.status })
        } catch {
          results.push({ what: `${a.method} ${a.path}`, status: null })
        } finally {
          // A stream that did open is closed at once.
          controller.abort()
          clearTimeout(timer)
        }
      }
      return results
    }, ATTEMPTS)
  } finally {
    await page.close()
  }
}

const attackPage = '<!doctype html><meta charset="utf-8"><title>hi</title><h1>attacker page</h1>'

test('a page on a rebound name (evil.test → 127.0.0.1) cannot reach any route by any spelling', async (t) => {
  const { url } = await listen(t, {}, (app) => {
    app.get('/attack', { config: { policy: POLICY.open } }, async (_request, reply) => await reply.type('text/html; charset=utf-8').send(attackPage))
  })
  const port = new URL(url).port
  const results = await attack(`http://evil.test:${port}`)
  assert.equal(results.length, ATTEMPTS.length)
  const reached = results.filter((r) => r.status !== null && r.status !== 403 && r.status !== 404)
  assert.deepEqual(reached, [], 'every fetch from evil.test fails with 403, 404 or a network error')
  assert.ok(results.filter((r) => r.status === 403).length >= ATTEMPTS.length - 5, 'the routes themselves answer 403')

  // Control: the same page from the legitimate origin gets through (so the guard, not a fault, refused).
  const legit = await attack(`http://127.0.0.1:${port}`)
  const ok = (what: string) => legit.find((r) => r.what === what)?.status
  assert.equal(ok('POST /mcp'), 200)
  assert.equal(ok('POST /%6Dcp'), 200)
  assert.equal(ok('POST /broadcast'), 202)
  assert.equal(ok('GET /docs'), 200)
  assert.equal(ok('GET /%73se'), 200)
})
