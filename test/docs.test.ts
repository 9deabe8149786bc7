import { test } from 'node:test'
import assert from 'node:assert/strict'
import { build, listen } from './helper.js'
import { escapeHtml, exampleArguments, jsonForScript, renderDocsPage, shellQuote } from '../src/docs-page.js'
import type { Catalog } from '../src/mcp/registry.js'

const XSS = '<script>alert("pwned")</script>'

const hostileCatalog: Catalog = {
  tools: [{
    name: 'evil_tool',
    title: `Title ${XSS}`,
    description: `Does things ${XSS} & more </script><!--`,
    inputSchema: { type: 'object', properties: { q: { type: 'string', description: `arg ${XSS}` } }, required: ['q'] },
    annotations: { readOnlyHint: true, note: XSS }
  }],
  resources: [{ name: 'res', uri: 'mem://x?<b>', description: XSS, mimeType: 'text/plain' }],
  resourceTemplates: [{ name: 'tpl', uriTemplate: 'mem://{id}', description: XSS }],
  prompts: [{ name: 'p', description: XSS, arguments: [{ name: 'a', description: XSS, required: true }] }]
}

/** The page's text as a reader (or a copy button) sees it. */
const UNESCAPE: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&amp;': '&' }
const asText = (html: string): string => html.replace(/&(?:lt|gt|quot|#39|amp);/g, (e) => UNESCAPE[e] ?? e)

function render (catalog: Catalog, authOn = false): string {
  return renderDocsPage({ base: 'http://127.0.0.1:8080', authOn, catalog, nonce: 'test-nonce' })
}

test('data from the catalog renders as text: a <script> in a tool description is not markup', () => {
  const html = render(hostileCatalog)
  assert.ok(!html.includes('<script>alert'), 'no live script from data')
  assert.ok(!html.includes('<b>'), 'no markup from data')
  assert.ok(html.includes('&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;'), 'shown escaped')
  // Exactly the page's own three script elements (config JSON, catalog JSON, the console).
  assert.equal(html.match(/<script/g)?.length, 3)
  assert.equal(html.match(/<\/script>/g)?.length, 3)
  assert.ok(!/<!--/.test(html), 'no comment opener from data')
  // The catalog JSON block stays a data block and round-trips.
  const block = /<script type="application\/json" id="docs-catalog">([^<]*)<\/script>/.exec(html)
  assert.ok(block, 'catalog JSON block is intact')
  assert.equal(JSON.parse(block[1] ?? 'null').tools[0].description, hostileCatalog.tools[0]?.description)
})

test('escaping helpers cover HTML, inline JSON and shell words', () => {
  assert.equal(escapeHtml('<a href="x" title=\'y\'>&</a>'), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;')
  assert.equal(jsonForScript({ s: '</script><!--&\u2028' }), '{"s":"\\u003c/script\\u003e\\u003c!--\\u0026\\u2028"}')
  assert.deepEqual(JSON.parse(jsonForScript({ s: '</script>' })), { s: '</script>' })
  assert.equal(shellQuote("it's"), "'it'\\''s'")
})

test('example arguments come from required properties, defaults, examples and enums', () => {
  assert.deepEqual(exampleArguments({
    type: 'object',
    properties: {
      text: { type: 'string' },
      n: { type: 'integer', default: 3 },
      zone: { type: 'string', examples: ['Europe/Paris'] },
      mode: { enum: ['a', 'b'] },
      optional: { type: 'string' }
    },
    required: ['text', 'n', 'mode']
  }), { text: 'text', n: 3, zone: 'Europe/Paris', mode: 'a' })
  assert.deepEqual(exampleArguments({ type: 'object' }), {})
})

test('GET /docs is one self-contained HTML page: no external scripts, styles, fonts or images', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/docs' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8')
  const html = res.body
  assert.match(html, /^<!doctype html>/)
  assert.ok(!/<script[^>]+src=/.test(html), 'no script src')
  assert.deepEqual(html.match(/<link[^>]*>/g), ['<link rel="icon" href="data:,">'], 'no stylesheet links; an inline (empty) icon')
  assert.ok(!/@import|url\(/.test(html), 'no CSS imports or remote fonts')
  assert.ok(!/<img|<iframe|<object/.test(html), 'no images or embeds')
  for (const id of ['console', 'endpoints', 'tools', 'resources', 'prompts', 'examples']) {
    assert.ok(html.includes(`<section id="${id}">`), `has the ${id} section`)
  }
  for (const path of ['/mcp', '/sse', '/broadcast', '/health', '/ready', '/metrics', '/docs']) {
    assert.ok(html.includes(`<code>${path}</code>`), `endpoint ${path} is listed`)
  }
})

test('the CSP allows only the page\'s own inline script and style, by a fresh nonce', async (t) => {
  const app = await build(t)
  const first = await app.inject({ method: 'GET', url: '/docs' })
  const second = await app.inject({ method: 'GET', url: '/docs' })
  const csp = String(first.headers['content-security-policy'])
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1]
  assert.ok(nonce, csp)
  assert.match(csp, /default-src 'none'/)
  assert.match(csp, /connect-src 'self'/)
  assert.ok(!csp.includes('unsafe-inline'))
  assert.ok(first.body.includes(`<script nonce="${nonce}">`))
  assert.ok(first.body.includes(`<style nonce="${nonce}">`))
  assert.notEqual(String(second.headers['content-security-policy']), csp, 'a new nonce per response')
  assert.equal(first.headers['x-content-type-options'], 'nosniff')
})

test('the examples use the host and port the page was requested on', async (t) => {
  const { url } = await listen(t)
  const html = asText(await (await fetch(`${url}/docs`)).text())
  assert.ok(html.includes(`curl -N ${url}/mcp`), 'curl stream example')
  assert.ok(html.includes(`new URL('${url}/mcp')`), 'SDK example')
  assert.ok(html.includes(`new EventSource('${url}/mcp')`), 'EventSource example')

  const app = await build(t)
  const proxied = await app.inject({ method: 'GET', url: '/docs', headers: { host: 'localhost:4321' } })
  assert.ok(asText(proxied.body).includes('curl -N http://localhost:4321/mcp'))
})

test('a Host header that is not a host name never reaches the copy-paste commands', async (t) => {
  // Bound to loopback, a foreign Host is refused outright (DNS rebinding); with any host allowed
  // (HOST=0.0.0.0 and no ALLOWED_HOSTS), the page renders but never prints it.
  assert.equal((await (await build(t)).inject({ method: 'GET', url: '/docs', headers: { host: "x';touch /tmp/p;'" } })).statusCode, 403)
  const app = await build(t, { allowedHosts: [] })
  const res = await app.inject({ method: 'GET', url: '/docs', headers: { host: "x';touch /tmp/p;'" } })
  assert.equal(res.statusCode, 200)
  assert.ok(!res.body.includes('touch /tmp/p'))
  assert.ok(res.body.includes('http://127.0.0.1:'), 'falls back to the configured address')
})

test('with auth on, /docs needs a token and its examples send $MCP_TOKEN, never a real token', async (t) => {
  const token = 'docs-secret-token-123'
  const app = await build(t, { authTokens: [token] })
  const anonymous = await app.inject({ method: 'GET', url: '/docs' })
  assert.equal(anonymous.statusCode, 401)
  const res = await app.inject({ method: 'GET', url: '/docs', headers: { authorization: `Bearer ${token}` } })
  assert.equal(res.statusCode, 200)
  assert.ok(asText(res.body).includes('-H "Authorization: Bearer $MCP_TOKEN"'))
  assert.ok(res.body.includes('Auth is on'))
  assert.ok(!res.body.includes(token), 'the token is not echoed')

  const open = await build(t)
  const plain = (await open.inject({ method: 'GET', url: '/docs' })).body
  assert.ok(!plain.includes('$MCP_TOKEN'), 'no auth header in examples when auth is off')
})

test('the tools, resources and prompts on the page are the live catalog', async (t) => {
  const app = await build(t)
  const catalog = app.mcp.catalog()
  const html = (await app.inject({ method: 'GET', url: '/docs' })).body
  for (const tool of catalog.tools) {
    assert.ok(html.includes(`data-tool="${escapeHtml(tool.name)}"`), `tool ${tool.name} is listed`)
    assert.ok(html.includes(escapeHtml(JSON.stringify(tool.inputSchema, null, 2))), `tool ${tool.name} shows its input schema`)
  }
  for (const prompt of catalog.prompts) assert.ok(html.includes(`<code>${escapeHtml(prompt.name)}</code>`), `prompt ${prompt.name}`)
  assert.ok(catalog.tools.some((tool) => tool.name === 'current_time'), 'the built-in current_time tool is registered')
  assert.ok(html.includes('"name":"current_time"'), 'the console knows current_time')
})

test('the page lists every supported protocol version with how it is served', () => {
  const text = asText(render({ tools: [], resources: [], resourceTemplates: [], prompts: [] }).replace(/<[^>]+>/g, ''))
  assert.match(text, /2026-07-28 \(stateless, per-request _meta\)/)
  for (const v of ['2025-11-25', '2025-06-18', '2025-03-26']) assert.match(text, new RegExp(`${v} \\(sessions, initialize\\)`))
  assert.match(text, /2024-11-05 \(HTTP\+SSE at \/sse\)/)
})

test('the page inlines docs/page/style.css and app.js under the nonce (the files are the source)', async () => {
  const { readFile } = await import('node:fs/promises')
  const css = await readFile(new URL('../docs/page/style.css', import.meta.url), 'utf8')
  const js = await readFile(new URL('../docs/page/app.js', import.meta.url), 'utf8')
  const html = renderDocsPage({ base: 'http://127.0.0.1:8080', authOn: false, catalog: { tools: [], resources: [], resourceTemplates: [], prompts: [] }, nonce: 'abc' })
  assert.ok(html.includes(`<style nonce="abc">\n${css}</style>`))
  assert.ok(html.includes(`<script nonce="abc">\n${js}</script>`))
})
