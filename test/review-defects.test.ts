import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'
import { resourceMetadata } from '../src/oauth.js'
import { SERVER_NAME } from '../src/meta.js'
import { localTimeZone, rfc3339InZone } from '../src/tools/builtin.js'

/** Defects found in the outside review (issue 14), one test each. */

const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }

test('a stream refused while draining is a 503 saying the server is shutting down, not counted as over capacity', async (t) => {
  const app = await build(t)
  app.lifecycle.startDraining()
  const res = await app.inject({ method: 'GET', url: '/mcp', headers: { accept: 'text/event-stream' } })
  assert.equal(res.statusCode, 503)
  assert.equal(res.headers['retry-after'], '5')
  assert.match(res.json().message, /shutting down/)
  assert.doesNotMatch(res.json().message, /Too many/)
  assert.equal(app.hub.stats().rejectedOverCapacity, 0)
})

test('the OAuth resource metadata names the server by its name, not a hard-coded string', () => {
  const config = { resource: 'https://mcp.example/mcp', issuer: undefined, jwksUrl: undefined, publicKeyFile: undefined, authorizationServers: [], scopesSupported: [] }
  assert.equal(resourceMetadata(config).resource_name, SERVER_NAME)
  assert.equal(resourceMetadata(config, 'notes-server').resource_name, 'notes-server')
})

test('rfc3339InZone writes local time with its offset (half hours, DST, UTC as +00:00)', () => {
  const at = new Date('2026-11-29T10:06:12.345Z')
  assert.equal(rfc3339InZone(at, 'Asia/Tokyo'), '2026-11-29T19:06:12+09:00')
  assert.equal(rfc3339InZone(at, 'UTC'), '2026-11-29T10:06:12+00:00')
  assert.equal(rfc3339InZone(at, 'America/St_Johns'), '2026-11-29T06:36:12-03:30')
  assert.equal(rfc3339InZone(new Date('2026-07-01T12:00:00Z'), 'Europe/Paris'), '2026-07-01T14:00:00+02:00')
  assert.equal(rfc3339InZone(new Date('2026-01-01T00:00:00Z'), 'America/New_York'), '2025-12-31T19:00:00-05:00')
})

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2})/

async function callTime (t: Parameters<typeof build>[0], args: Record<string, unknown>) {
  const app = await build(t)
  const init = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: HEADERS,
    payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }
  })
  const sid = String(init.headers['mcp-session-id'])
  const res = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...HEADERS, 'mcp-session-id': sid },
    payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'current_time', arguments: args } }
  })
  const { result } = res.json<{ result: { content: Array<{ text: string }>, structuredContent: { iso: string, timezone: string } } }>()
  return { text: result.content[0]?.text ?? '', structured: result.structuredContent }
}

test('current_time leads with RFC 3339 local time and its offset, then the readable form; iso carries the offset', async (t) => {
  const before = Date.now()
  const { text, structured } = await callTime(t, { timezone: 'Asia/Tokyo' })
  const lead = RFC3339.exec(text)?.[1]
  assert.ok(lead !== undefined, `text starts with an RFC 3339 timestamp: ${text}`)
  assert.match(lead, /\+09:00$/)
  assert.equal(structured.iso, lead)
  assert.ok(Math.abs(Date.parse(lead) - before) < 5000, 'the timestamp is now')
  assert.match(text, /\(Asia\/Tokyo\)$/)
})

test('current_time without a time zone answers in the server\'s local zone', async (t) => {
  const { text, structured } = await callTime(t, {})
  assert.equal(structured.timezone, localTimeZone())
  const offset = -new Date().getTimezoneOffset()
  const sign = offset < 0 ? '-' : '+'
  const hhmm = `${String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0')}:${String(Math.abs(offset) % 60).padStart(2, '0')}`
  assert.ok(structured.iso.endsWith(`${sign}${hhmm}`), `${structured.iso} carries the local offset ${sign}${hhmm}`)
  assert.ok(text.startsWith(structured.iso))
})

test('/docs in OAuth-only mode says auth is on and its console sends a token (DOCS_PUBLIC lets a browser open it)', async (t) => {
  const app = await build(t, {
    docsPublic: true,
    oauth: {
      resource: 'http://127.0.0.1:8080/mcp',
      issuer: 'https://issuer.example',
      jwksUrl: 'https://issuer.example/jwks',
      publicKeyFile: undefined,
      authorizationServers: ['https://issuer.example'],
      scopesSupported: []
    }
  })
  const res = await app.inject({ method: 'GET', url: '/docs' })
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /<strong>Auth is on:<\/strong>/)
  assert.doesNotMatch(res.body, /Auth is off/)
  assert.match(res.body, /"authOn":true/)
  assert.match(res.body, /Authorization: Bearer \$MCP_TOKEN/)
})
