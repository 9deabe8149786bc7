import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { randomBytes } from 'node:crypto'
import type { Catalog, CatalogEntry, CatalogTool } from '../plugins/mcp.js'
import { POLICY } from '../plugins/policy.js'
import { authEnabled } from '../plugins/auth.js'
import { LATEST_MODERN_VERSION, LATEST_PROTOCOL_VERSION, PROTOCOL_VERSIONS, SERVER_NAME, SERVER_VERSION, isModernVersion } from '../src/meta.js'

/* ------------------------------------------------------------------------------------------------
 * Escaping. Everything on the page that comes from data (the catalog, the Host header) goes through
 * one of these; the browser-side code only ever sets textContent.
 * ---------------------------------------------------------------------------------------------- */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text or attribute value → HTML-safe text. */
export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c])
}

/** A value as JSON that is safe inside `<script type="application/json">` (no `</script>`, no `<!--`). */
export function jsonForScript (value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029')
}

/** A string as one POSIX shell word in single quotes. */
export function shellQuote (value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`
}

/* ------------------------------------------------------------------------------------------------
 * Page model
 * ---------------------------------------------------------------------------------------------- */

export interface DocsPageOptions {
  /** Base URL the examples use, e.g. `http://127.0.0.1:8080` (from the request's own Host). */
  base: string
  /** Whether routes need a bearer token (examples then send `$MCP_TOKEN`). */
  authOn: boolean
  catalog: Catalog
  /** CSP nonce for the inline `<style>` and `<script>`. */
  nonce: string
}

/** The public endpoints (SPEC.md "Endpoints"). */
const ENDPOINTS: Array<[string, string, string]> = [
  ['/mcp', 'POST', 'Streamable HTTP JSON-RPC. A request is answered with application/json or a text/event-stream (per Accept); a notification or response gets 202.'],
  ['/mcp', 'GET', 'With Mcp-Session-Id: that session\'s stream (resumable with Last-Event-ID). Without: the public event stream (welcome, heartbeats, broadcasts) — what the console below opens.'],
  ['/mcp', 'DELETE', 'Ends the session (later requests with it get 404).'],
  ['/sse', 'GET', 'Legacy HTTP+SSE transport (2024-11-05): sends an endpoint event with the POST URL.'],
  ['/messages?sessionId=…', 'POST', 'Legacy transport: JSON-RPC in, 202 out; replies arrive as message events on /sse.'],
  ['/broadcast', 'POST', 'Operator broadcast {event, data} to every open stream.'],
  ['/health', 'GET', 'Liveness: status, version, protocol versions, uptime, open streams, sessions. Always public.'],
  ['/ready', 'GET', 'Readiness: 503 while draining or when a dependency (Redis) is down. Always public.'],
  ['/metrics', 'GET', 'Prometheus text; a JSON summary with Accept: application/json.'],
  ['/docs', 'GET', 'This page.']
]

type JsonSchema = Record<string, unknown>

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A plausible argument value for an example, from the schema's default, examples, enum or type. */
function exampleValue (schema: unknown): unknown {
  if (!isObject(schema)) return 'value'
  if ('default' in schema) return schema.default
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0]
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0]
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type
  switch (type) {
    case 'string': return 'text'
    case 'number': case 'integer': return 1
    case 'boolean': return true
    case 'array': return []
    case 'object': return {}
    default: return null
  }
}

/** Example arguments: every required property, plus optional ones that show an example or default. */
export function exampleArguments (inputSchema: JsonSchema): Record<string, unknown> {
  const props = isObject(inputSchema.properties) ? inputSchema.properties : {}
  const required = Array.isArray(inputSchema.required) ? inputSchema.required.filter((r): r is string => typeof r === 'string') : []
  const args: Record<string, unknown> = {}
  for (const [name, schema] of Object.entries(props)) {
    const showcased = isObject(schema) && Array.isArray(schema.examples) && schema.examples.length > 0
    if (required.includes(name) || showcased) args[name] = exampleValue(schema)
  }
  return args
}

/* ------------------------------------------------------------------------------------------------
 * Rendering
 * ---------------------------------------------------------------------------------------------- */

function pre (text: string, cls = 'code'): string {
  return `<div class="copyable"><pre class="${cls}">${escapeHtml(text)}</pre><button type="button" class="copy">Copy</button></div>`
}

/** How a protocol version is served, for the page header. */
function versionEra (v: string): string {
  if (isModernVersion(v)) return 'stateless, per-request _meta'
  return v === '2024-11-05' ? 'HTTP+SSE at /sse' : 'sessions, initialize'
}

function curlExamples (o: DocsPageOptions, tool: CatalogTool | undefined): string {
  const auth = o.authOn ? ' \\\n  -H "Authorization: Bearer $MCP_TOKEN"' : ''
  const json = ' \\\n  -H \'Content-Type: application/json\' -H \'Accept: application/json, text/event-stream\''
  const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'curl', version: '1.0.0' } } })
  const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })
  const toolName = tool?.name ?? 'current_time'
  const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: toolName, arguments: tool ? exampleArguments(tool.inputSchema) : {} } })
  const session = ` \\\n  -H "Mcp-Session-Id: $SESSION" -H 'MCP-Protocol-Version: ${LATEST_PROTOCOL_VERSION}'`
  const tokenLine = o.authOn ? 'export MCP_TOKEN=…   # one of AUTH_TOKENS\n' : ''
  return pre(
    `${tokenLine}# 1. initialize; the session id comes back in the Mcp-Session-Id header
SESSION=$(curl -s -D - -o /dev/null ${o.base}/mcp${json}${auth} \\
  -d ${shellQuote(init)} \\
  | awk 'tolower($1) == "mcp-session-id:" { print $2 }' | tr -d '\\r')

# 2. tell the server the client is ready (202)
curl -s ${o.base}/mcp${json}${auth}${session} \\
  -d ${shellQuote(initialized)}

# 3. call a tool
curl -s ${o.base}/mcp${json}${auth}${session} \\
  -d ${shellQuote(call)}`) +
    `<p>Or stateless (MCP ${LATEST_MODERN_VERSION}): no initialize, no session; every request carries its version and capabilities in <code>_meta</code> and mirrors method and name into headers:</p>` +
    pre(`curl -s ${o.base}/mcp${json}${auth} \\
  -H 'MCP-Protocol-Version: ${LATEST_MODERN_VERSION}' -H 'Mcp-Method: tools/call' -H ${shellQuote(`Mcp-Name: ${toolName}`)} \\
  -d ${shellQuote(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: toolName, arguments: tool ? exampleArguments(tool.inputSchema) : {}, _meta: { 'io.modelcontextprotocol/protocolVersion': LATEST_MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': {} } } }))}`) +
    '<p>Watch the public event stream (welcome, heartbeats as <code>: ping</code> comments, broadcasts), and send a broadcast from another terminal:</p>' +
    pre(`curl -N ${o.base}/mcp -H 'Accept: text/event-stream'${auth}

curl -s ${o.base}/broadcast -H 'Content-Type: application/json'${auth} \\
  -d '{"event":"announcement","data":{"text":"hello"}}'`)
}

function jsExamples (o: DocsPageOptions, tool: CatalogTool | undefined): string {
  const toolName = tool?.name ?? 'current_time'
  const args = JSON.stringify(tool ? exampleArguments(tool.inputSchema) : {})
  const transportOpts = o.authOn ? ', {\n  requestInit: { headers: { Authorization: \'Bearer \' + process.env.MCP_TOKEN } }\n}' : ''
  const esNote = o.authOn
    ? '// EventSource cannot send an Authorization header: with auth on, read the stream with fetch\n// (as the console on this page does) or use the SDK client.\n'
    : ''
  return '<p>With the official TypeScript SDK (<code>npm i @modelcontextprotocol/sdk</code>), in Node or a bundler:</p>' +
    pre(`import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

const client = new Client({ name: 'my-app', version: '1.0.0' })
await client.connect(new StreamableHTTPClientTransport(new URL('${o.base}/mcp')${transportOpts}))
console.log(await client.listTools())
console.log(await client.callTool({ name: ${JSON.stringify(toolName)}, arguments: ${args} }))
await client.close()`) +
    '<p>The public event stream in a browser:</p>' +
    pre(`${esNote}const events = new EventSource('${o.base}/mcp')
events.addEventListener('welcome', (e) => console.log('welcome', JSON.parse(e.data)))
events.addEventListener('announcement', (e) => console.log('broadcast', JSON.parse(e.data)))`)
}

function annotationBadges (annotations: Record<string, unknown> | undefined): string {
  if (!annotations) return ''
  const badges = Object.entries(annotations)
    .filter(([k]) => k !== 'title')
    .map(([k, v]) => `<span class="badge">${escapeHtml(k)}: ${escapeHtml(JSON.stringify(v))}</span>`)
  return badges.length > 0 ? `<p class="badges">${badges.join(' ')}</p>` : ''
}

function renderTool (o: DocsPageOptions, tool: CatalogTool): string {
  const title = tool.title ?? (isObject(tool.annotations) && typeof tool.annotations.title === 'string' ? tool.annotations.title : undefined)
  const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: tool.name, arguments: exampleArguments(tool.inputSchema) } })
  const auth = o.authOn ? ' -H "Authorization: Bearer $MCP_TOKEN"' : ''
  return `<article class="item tool" data-tool="${escapeHtml(tool.name)}">
<h3><code>${escapeHtml(tool.name)}</code>${title ? ` <span class="title">${escapeHtml(title)}</span>` : ''}</h3>
${tool.description ? `<p class="description">${escapeHtml(tool.description)}</p>` : ''}
${annotationBadges(tool.annotations)}
<details><summary>Input schema</summary><pre class="schema">${escapeHtml(JSON.stringify(tool.inputSchema, null, 2))}</pre></details>
${tool.outputSchema ? `<details><summary>Output schema</summary><pre class="schema">${escapeHtml(JSON.stringify(tool.outputSchema, null, 2))}</pre></details>` : ''}
<details><summary>curl (after initialize, see Examples)</summary>${pre(`curl -s ${o.base}/mcp -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'${auth} -H "Mcp-Session-Id: $SESSION" -H 'MCP-Protocol-Version: ${LATEST_PROTOCOL_VERSION}' -d ${shellQuote(call)}`)}</details>
</article>`
}

const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined

function renderResources (catalog: Catalog): string {
  const rows = [
    ...catalog.resources.map((r) => ({ r, address: str(r.uri) ?? '' })),
    ...catalog.resourceTemplates.map((r) => ({ r, address: str(r.uriTemplate) ?? '' }))
  ]
  if (rows.length === 0) return '<p class="empty">No resources registered.</p>'
  return `<table><thead><tr><th>URI</th><th>Name</th><th>Type</th><th>Description</th></tr></thead><tbody>
${rows.map(({ r, address }) => `<tr class="resource"><td><code>${escapeHtml(address)}</code></td><td>${escapeHtml(r.title ?? r.name)}</td><td>${escapeHtml(str(r.mimeType) ?? '')}</td><td>${escapeHtml(r.description ?? '')}</td></tr>`).join('\n')}
</tbody></table>`
}

function renderPrompt (p: CatalogEntry): string {
  const args = Array.isArray(p.arguments) ? p.arguments.filter(isObject) : []
  return `<article class="item prompt">
<h3><code>${escapeHtml(p.name)}</code>${p.title ? ` <span class="title">${escapeHtml(p.title)}</span>` : ''}</h3>
${p.description ? `<p class="description">${escapeHtml(p.description)}</p>` : ''}
${args.length > 0
  ? `<ul class="args">${args.map((a) => `<li><code>${escapeHtml(a.name)}</code>${a.required === true ? ' <span class="req">required</span>' : ''}${typeof a.description === 'string' ? ` — ${escapeHtml(a.description)}` : ''}</li>`).join('')}</ul>`
  : '<p class="empty">No arguments.</p>'}
</article>`
}

/** The whole page. Pure: the route passes the request's base URL, auth mode, live catalog and a nonce. */
export function renderDocsPage (o: DocsPageOptions): string {
  const { catalog } = o
  const sample = catalog.tools.find((t) => t.name === 'current_time') ?? catalog.tools[0]
  const config = { authOn: o.authOn, protocolVersion: LATEST_PROTOCOL_VERSION, mcpPath: '/mcp', broadcastPath: '/broadcast' }
  const nonce = escapeHtml(o.nonce)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(SERVER_NAME)} — docs</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header>
  <h1>${escapeHtml(SERVER_NAME)} <span class="version">v${escapeHtml(SERVER_VERSION)}</span></h1>
  <p>A Model Context Protocol server over HTTP with Server-Sent Events at <code>${escapeHtml(o.base)}/mcp</code>.
  Protocol versions: ${PROTOCOL_VERSIONS.map((v) => `<code>${escapeHtml(v)}</code> (${versionEra(v)})`).join(', ')}.
  ${o.authOn ? '<strong>Auth is on:</strong> every request but /health and /ready needs <code>Authorization: Bearer &lt;token&gt;</code>; paste a token in the console.' : 'Auth is off.'}</p>
  <nav><a href="#console">Console</a> <a href="#endpoints">Endpoints</a> <a href="#tools">Tools (${catalog.tools.length})</a> <a href="#resources">Resources (${catalog.resources.length + catalog.resourceTemplates.length})</a> <a href="#prompts">Prompts (${catalog.prompts.length})</a> <a href="#examples">Examples</a></nav>
</header>
<main>
<section id="console">
  <h2>Live console</h2>
  <form id="connect-form" class="row" autocomplete="off">
    <label>Bearer token <input id="token" type="password" placeholder="${o.authOn ? 'required' : 'not needed (auth off)'}" spellcheck="false"></label>
    <label>Read the stream with <select id="transport">
      <option value="fetch">fetch (shows heartbeats; sends the token)</option>
      <option value="eventsource">EventSource (no token; named events only)</option>
    </select></label>
    <button id="connect" type="submit">Connect</button>
    <span id="status" class="status" data-state="disconnected">disconnected</span>
  </form>
  <div class="columns">
    <div class="panel">
      <h3>Events <small id="counts"></small> <button id="clear" type="button" class="small">Clear</button></h3>
      <ol id="events" class="events" aria-live="polite"></ol>
      <form id="broadcast-form" class="row small-form" autocomplete="off">
        <label>event <input id="bc-event" value="announcement" size="12"></label>
        <label>data <input id="bc-data" value='{"text":"hello from the docs page"}' size="28"></label>
        <button type="submit">Broadcast</button> <span id="bc-status" class="muted"></span>
      </form>
      <p class="muted hint">EventSource only sees events it listens for by name: <code>welcome</code>, <code>shutdown</code>, <code>message</code>, plus <label>these: <input id="es-events" value="announcement, notice, update" size="24"></label></p>
    </div>
    <div class="panel">
      <h3>Call a tool</h3>
      ${catalog.tools.length === 0
        ? '<p class="empty">No tools registered.</p>'
        : `<form id="tool-form" autocomplete="off">
        <label>Tool <select id="tool-select"></select></label>
        <p id="tool-desc" class="description"></p>
        <div id="tool-fields" class="fields"></div>
        <button id="call" type="submit">Call</button> <span id="session-info" class="muted"></span>
      </form>`}
      <div id="result" class="result" data-state="idle">
        <pre id="result-text" class="result-text"></pre>
        <details><summary>JSON-RPC messages</summary><pre id="result-json"></pre></details>
      </div>
    </div>
  </div>
</section>

<section id="endpoints">
  <h2>Endpoints</h2>
  <table><thead><tr><th>Path</th><th>Method</th><th>What</th></tr></thead><tbody>
  ${ENDPOINTS.map(([path, method, what]) => `<tr><td><code>${escapeHtml(path)}</code></td><td>${method}</td><td>${escapeHtml(what)}</td></tr>`).join('\n  ')}
  </tbody></table>
</section>

<section id="tools">
  <h2>Tools</h2>
  ${catalog.tools.length > 0 ? catalog.tools.map((t) => renderTool(o, t)).join('\n') : '<p class="empty">No tools registered.</p>'}
</section>

<section id="resources">
  <h2>Resources</h2>
  ${renderResources(catalog)}
</section>

<section id="prompts">
  <h2>Prompts</h2>
  ${catalog.prompts.length > 0 ? catalog.prompts.map(renderPrompt).join('\n') : '<p class="empty">No prompts registered.</p>'}
</section>

<section id="examples">
  <h2>Examples</h2>
  <h3>curl</h3>
  ${curlExamples(o, sample)}
  <h3>JavaScript</h3>
  ${jsExamples(o, sample)}
</section>
</main>
<script type="application/json" id="docs-config">${jsonForScript(config)}</script>
<script type="application/json" id="docs-catalog">${jsonForScript({ tools: catalog.tools })}</script>
<script nonce="${nonce}">${CLIENT_SCRIPT}</script>
</body>
</html>
`
}

/* ------------------------------------------------------------------------------------------------
 * Route
 * ---------------------------------------------------------------------------------------------- */

/** Host headers we are willing to print into copy-paste commands. */
const SAFE_HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/

/** GET /docs: the self-contained documentation page with a live console (no CDN, works offline). */
const docsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const policy = app.config.docsPublic ? POLICY.publicGuarded : POLICY.client
  app.get('/docs', { config: { policy } }, async (request, reply) => {
    const address = app.server.address()
    const fallbackPort = typeof address === 'object' && address !== null ? address.port : app.config.port
    const fallbackHost = app.config.host.includes(':') ? `[${app.config.host}]` : app.config.host
    const host = SAFE_HOST.test(request.host) ? request.host : `${fallbackHost}:${fallbackPort}`
    const nonce = randomBytes(16).toString('base64')
    const html = renderDocsPage({
      base: `${request.protocol}://${host}`,
      // Any credential turns auth on: client tokens, operator tokens or OAuth (then the user pastes an access token).
      authOn: authEnabled(app.config),
      catalog: app.mcp.catalog(),
      nonce
    })
    return reply
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        `style-src 'nonce-${nonce}'`,
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'"
      ].join('; '))
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'no-referrer')
      .header('Cache-Control', 'no-store')
      .send(html)
  })
}

export default docsRoutes

/* ------------------------------------------------------------------------------------------------
 * Inline CSS and browser script. The script reads its configuration and the tool list from the
 * JSON blocks above and renders everything from data with textContent (never innerHTML).
 * ---------------------------------------------------------------------------------------------- */

const STYLE = `
:root { --fg: #1d2330; --muted: #5d6778; --bg: #f6f7fb; --card: #fff; --line: #dde1ea; --accent: #2456d6; --ok: #1d7a46; --err: #b3261e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { background: #18203a; color: #e9edf7; padding: 20px 32px 12px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .version { font-size: 14px; color: #9fb0d8; font-weight: normal; }
header p { margin: 4px 0 10px; max-width: 1100px; }
header code { background: #2a3457; color: #e9edf7; }
nav a { color: #b9c8ff; margin-right: 16px; text-decoration: none; }
nav a:hover { text-decoration: underline; }
main { padding: 8px 32px 40px; max-width: 1400px; }
h2 { margin: 28px 0 10px; font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 14px 0 6px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
code { background: #eceff6; padding: 1px 4px; border-radius: 3px; }
pre { background: #101522; color: #e3e8f4; padding: 10px 12px; border-radius: 6px; overflow-x: auto; margin: 6px 0; white-space: pre-wrap; word-break: break-word; }
pre.schema { max-height: 320px; }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; border: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
th { background: #eef1f7; }
.item { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 8px; margin: 10px 0; }
.item .title { color: var(--muted); font-weight: normal; }
.description { white-space: pre-wrap; margin: 4px 0; }
.badge { display: inline-block; font-size: 12px; background: #e8eefc; color: #233e8b; border-radius: 10px; padding: 0 8px; }
.req { color: var(--err); font-size: 12px; }
.empty, .muted { color: var(--muted); }
.hint { font-size: 13px; }
.copyable { position: relative; }
.copyable .copy { position: absolute; top: 6px; right: 6px; font-size: 12px; padding: 2px 8px; opacity: .85; }
.row { display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: center; }
label { font-size: 14px; }
input, select, textarea, button { font: inherit; font-size: 14px; }
input, select, textarea { border: 1px solid #b9c0cf; border-radius: 4px; padding: 4px 6px; background: #fff; }
button { border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; padding: 4px 14px; cursor: pointer; }
button.small, .copy { background: #fff; color: var(--accent); }
.status { font-weight: 600; padding: 2px 10px; border-radius: 10px; background: #e5e7ee; }
.status[data-state="connected"] { background: #d7f2e2; color: var(--ok); }
.status[data-state="connecting"], .status[data-state="reconnecting"] { background: #fff0cc; color: var(--warn); }
.status[data-state="error"] { background: #fde0dd; color: var(--err); }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; margin-top: 12px; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 0 14px 12px; min-width: 0; }
.events { list-style: none; margin: 0 0 10px; padding: 6px; height: 300px; overflow-y: auto; background: #101522; color: #e3e8f4; border-radius: 6px; font: 12.5px/1.45 ui-monospace, Menlo, Consolas, monospace; }
.events li { padding: 1px 0; border-bottom: 1px solid #1c2438; word-break: break-word; }
.events time { color: #7d89a6; margin-right: 8px; }
.events .name { font-weight: bold; margin-right: 8px; }
.ev-welcome .name { color: #7ee2a8; }
.ev-heartbeat { color: #7d89a6; }
.ev-broadcast .name { color: #ffcf6b; }
.ev-message .name { color: #8fb8ff; }
.ev-status .name { color: #c9a8ff; }
.ev-error .name, .ev-error { color: #ff9a92; }
.small-form { margin-top: 6px; }
.fields { display: grid; gap: 8px; margin: 8px 0; }
.field label { display: block; font-weight: 600; }
.field .hint { display: block; font-weight: normal; }
.field input[type="text"], .field input[type="number"], .field select, .field textarea { width: 100%; }
.field textarea { min-height: 70px; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.result { margin-top: 10px; }
.result[data-state="idle"] { display: none; }
.result-text { min-height: 2em; }
.result[data-state="ok"] .result-text { border-left: 4px solid #39b46e; }
.result[data-state="error"] .result-text { border-left: 4px solid var(--err); }
.result[data-state="pending"] .result-text { border-left: 4px solid #e0a800; }
`

const CLIENT_SCRIPT = String.raw`
(function () {
  'use strict'
  var cfg = JSON.parse(document.getElementById('docs-config').textContent)
  var catalog = JSON.parse(document.getElementById('docs-catalog').textContent)
  var $ = function (id) { return document.getElementById(id) }
  var MAX_EVENTS = 300

  function el (tag, cls, text) {
    var e = document.createElement(tag)
    if (cls) e.className = cls
    if (text !== undefined) e.textContent = text
    return e
  }
  function token () { return $('token').value.trim() }
  function authHeaders (h) {
    var t = token()
    if (t) h.Authorization = 'Bearer ' + t
    return h
  }

  // ---- copy buttons ----
  document.querySelectorAll('.copyable .copy').forEach(function (button) {
    button.addEventListener('click', function () {
      var text = button.parentElement.querySelector('pre').textContent
      var done = function () { button.textContent = 'Copied'; setTimeout(function () { button.textContent = 'Copy' }, 1200) }
      if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () { button.textContent = 'Select and copy' })
    })
  })

  // ---- event log ----
  var counts = { welcome: 0, heartbeat: 0, broadcast: 0, message: 0 }
  function showCounts () {
    $('counts').textContent = counts.welcome + ' welcome · ' + counts.heartbeat + ' heartbeats · ' + counts.broadcast + ' broadcasts · ' + counts.message + ' messages'
  }
  function addEvent (kind, name, data, id) {
    if (counts[kind] !== undefined) counts[kind]++
    showCounts()
    var list = $('events')
    var atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4
    var li = el('li', 'ev ev-' + kind)
    li.dataset.event = name
    li.dataset.kind = kind
    li.appendChild(el('time', '', new Date().toLocaleTimeString()))
    li.appendChild(el('span', 'name', name))
    if (id) li.appendChild(el('span', 'muted', '#' + id + ' '))
    li.appendChild(el('span', 'data', data))
    list.appendChild(li)
    while (list.childElementCount > MAX_EVENTS) list.removeChild(list.firstElementChild)
    if (atBottom) list.scrollTop = list.scrollHeight
  }
  function onSseEvent (name, data, id) {
    if (name === 'welcome') addEvent('welcome', name, data, id)
    else if (name === 'message') addEvent('message', name, data, id)
    else if (name === 'shutdown') addEvent('status', name, data, id)
    else addEvent('broadcast', name, data, id)
  }
  $('clear').addEventListener('click', function () {
    $('events').textContent = ''
    counts = { welcome: 0, heartbeat: 0, broadcast: 0, message: 0 }
    showCounts()
  })
  showCounts()

  // ---- SSE over fetch: a small parser for text/event-stream (so the Authorization header can be sent) ----
  async function readSse (body, onEvent, onComment) {
    var reader = body.pipeThrough(new TextDecoderStream()).getReader()
    var buffer = ''
    var ev = { name: '', data: [], id: '' }
    try {
      for (;;) {
        var chunk = await reader.read()
        if (chunk.done) return
        buffer += chunk.value
        var nl
        while ((nl = buffer.indexOf('\n')) !== -1) {
          var line = buffer.slice(0, nl)
          buffer = buffer.slice(nl + 1)
          if (line.endsWith('\r')) line = line.slice(0, -1)
          if (line === '') {
            if (ev.data.length > 0) {
              if (onEvent(ev.name || 'message', ev.data.join('\n'), ev.id) === false) return
            }
            ev = { name: '', data: [], id: '' }
            continue
          }
          if (line[0] === ':') { if (onComment) onComment(line.slice(1).trim()); continue }
          var colon = line.indexOf(':')
          var field = colon === -1 ? line : line.slice(0, colon)
          var value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'event') ev.name = value
          else if (field === 'data') ev.data.push(value)
          else if (field === 'id') ev.id = value
        }
      }
    } finally {
      reader.cancel().catch(function () {})
    }
  }

  // ---- connection to the public stream ----
  var conn = null
  function setStatus (state, text) {
    var s = $('status')
    s.dataset.state = state
    s.textContent = text || state
    $('connect').textContent = state === 'disconnected' || state === 'error' ? 'Connect' : 'Disconnect'
  }
  function openFetch () {
    var controller = new AbortController()
    var lastId = ''
    var attempt = 0
    var stopped = false
    async function run () {
      while (!stopped) {
        setStatus(attempt === 0 ? 'connecting' : 'reconnecting')
        try {
          var headers = authHeaders({ Accept: 'text/event-stream' })
          if (lastId) headers['Last-Event-ID'] = lastId
          var res = await fetch(cfg.mcpPath, { headers: headers, signal: controller.signal, cache: 'no-store' })
          if (!res.ok) {
            var text = await res.text()
            addEvent('error', 'HTTP ' + res.status, text)
            if (res.status !== 503) { stopped = true; setStatus('error', 'error ' + res.status); return }
          } else {
            attempt = 0
            setStatus('connected', 'connected (fetch)')
            await readSse(res.body, function (name, data, id) {
              if (id) lastId = id
              onSseEvent(name, data, id)
            }, function (comment) { addEvent('heartbeat', 'heartbeat', comment || 'ping') })
            if (!stopped) addEvent('status', 'closed', 'the server ended the stream')
          }
        } catch (err) {
          if (stopped) return
          addEvent('error', 'error', String(err && err.message ? err.message : err))
        }
        if (stopped) return
        attempt++
        await new Promise(function (resolve) { setTimeout(resolve, Math.min(1000 * attempt, 10000)) })
      }
    }
    run()
    return { close: function () { stopped = true; controller.abort() } }
  }
  function openEventSource () {
    var es = new EventSource(cfg.mcpPath)
    setStatus('connecting')
    es.onopen = function () { setStatus('connected', 'connected (EventSource)') }
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) setStatus('error', 'closed')
      else setStatus('reconnecting')
    }
    var names = ['welcome', 'shutdown', 'message'].concat($('es-events').value.split(',').map(function (s) { return s.trim() }).filter(Boolean))
    var listen = function (name) {
      es.addEventListener(name, function (e) { onSseEvent(name, e.data, e.lastEventId) })
    }
    names.filter(function (n, i) { return names.indexOf(n) === i }).forEach(listen)
    return { close: function () { es.close() } }
  }
  $('connect-form').addEventListener('submit', function (e) {
    e.preventDefault()
    var state = $('status').dataset.state
    if (conn) {
      conn.close()
      conn = null
      // Connected (or trying): the button disconnects. After an error it connects again.
      if (state !== 'error') { setStatus('disconnected'); return }
    }
    var useEventSource = $('transport').value === 'eventsource' && !token()
    if ($('transport').value === 'eventsource' && token()) addEvent('status', 'note', 'EventSource cannot send a token: using fetch')
    conn = useEventSource ? openEventSource() : openFetch()
  })

  // ---- broadcast ----
  $('broadcast-form').addEventListener('submit', async function (e) {
    e.preventDefault()
    var raw = $('bc-data').value
    var data
    try { data = JSON.parse(raw) } catch (err) { data = raw }
    $('bc-status').textContent = 'sending…'
    try {
      var res = await fetch(cfg.broadcastPath, {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify({ event: $('bc-event').value, data: data })
      })
      $('bc-status').textContent = 'HTTP ' + res.status
    } catch (err) {
      $('bc-status').textContent = String(err)
    }
  })

  // ---- MCP client: initialize once, then tools/call ----
  if (!$('tool-form')) return
  var session = { id: null, protocolVersion: cfg.protocolVersion, nextId: 1 }

  function HttpError (status, body) { this.status = status; this.message = 'HTTP ' + status + ': ' + body }

  async function post (message) {
    var headers = authHeaders({ 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' })
    if (session.id) {
      headers['Mcp-Session-Id'] = session.id
      headers['MCP-Protocol-Version'] = session.protocolVersion
    }
    return await fetch(cfg.mcpPath, { method: 'POST', headers: headers, body: JSON.stringify(message) })
  }
  // A request's answer is JSON or an SSE stream carrying notifications and then the response.
  async function request (method, params, onNotification) {
    var id = session.nextId++
    var res = await post({ jsonrpc: '2.0', id: id, method: method, params: params })
    var sid = res.headers.get('Mcp-Session-Id')
    if (sid) session.id = sid
    if (!res.ok) throw new HttpError(res.status, await res.text())
    var type = res.headers.get('Content-Type') || ''
    if (type.indexOf('text/event-stream') === 0) {
      var answer = null
      await readSse(res.body, function (name, data) {
        var msg
        try { msg = JSON.parse(data) } catch (err) { return }
        if (msg.id === id && (msg.result !== undefined || msg.error !== undefined)) { answer = msg; return false }
        if (onNotification) onNotification(msg)
      })
      if (!answer) throw new Error('the stream ended without a response')
      return answer
    }
    return await res.json()
  }
  async function ensureSession () {
    if (session.id) return
    var init = await request('initialize', {
      protocolVersion: cfg.protocolVersion,
      capabilities: {},
      clientInfo: { name: 'docs-console', version: '1.0.0' }
    })
    if (init.error) throw new Error('initialize failed: ' + init.error.message)
    session.protocolVersion = init.result.protocolVersion || cfg.protocolVersion
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
    $('session-info').textContent = session.id ? 'session ' + session.id.slice(0, 8) + '…' : 'stateless'
  }

  // ---- the tool form, generated from the input schema ----
  var tools = catalog.tools
  var select = $('tool-select')
  tools.forEach(function (tool, i) {
    var option = el('option', '', tool.title ? tool.name + ' — ' + tool.title : tool.name)
    option.value = String(i)
    select.appendChild(option)
  })
  var preferred = tools.findIndex(function (t) { return t.name === 'current_time' })
  select.value = String(preferred === -1 ? 0 : preferred)

  function kindOf (schema) {
    if (!schema || typeof schema !== 'object') return 'json'
    if (Array.isArray(schema.enum)) return 'enum'
    var type = Array.isArray(schema.type) ? schema.type.filter(function (t) { return t !== 'null' })[0] : schema.type
    if (type === 'string' || type === 'number' || type === 'integer' || type === 'boolean') return type
    return 'json'
  }
  function renderFields () {
    var tool = tools[Number(select.value)]
    $('tool-desc').textContent = tool.description || ''
    var box = $('tool-fields')
    box.textContent = ''
    var schema = tool.inputSchema || {}
    var props = schema.properties || {}
    var required = Array.isArray(schema.required) ? schema.required : []
    var names = Object.keys(props)
    if (names.length === 0) { box.appendChild(el('p', 'muted', 'No arguments.')); return }
    names.forEach(function (name, i) {
      var s = props[name] || {}
      var kind = kindOf(s)
      var field = el('div', 'field')
      var label = el('label', '', name + (required.indexOf(name) !== -1 ? ' *' : ''))
      var inputId = 'arg-' + i
      label.htmlFor = inputId
      field.appendChild(label)
      if (s.description) label.appendChild(el('span', 'hint muted', s.description))
      var input
      if (kind === 'enum') {
        input = document.createElement('select')
        if (required.indexOf(name) === -1) input.appendChild(el('option', '', ''))
        s.enum.forEach(function (v) {
          var o = el('option', '', typeof v === 'string' ? v : JSON.stringify(v))
          o.value = JSON.stringify(v)
          input.appendChild(o)
        })
        if (s.default !== undefined) input.value = JSON.stringify(s.default)
      } else if (kind === 'boolean') {
        input = document.createElement('input')
        input.type = 'checkbox'
        input.checked = s.default === true
      } else if (kind === 'json') {
        input = document.createElement('textarea')
        input.placeholder = 'JSON, e.g. ' + JSON.stringify(s.default !== undefined ? s.default : (s.type === 'array' ? [] : {}))
        if (s.default !== undefined) input.value = JSON.stringify(s.default, null, 2)
      } else {
        input = document.createElement('input')
        input.type = kind === 'string' ? 'text' : 'number'
        if (kind === 'integer') input.step = '1'
        else if (kind === 'number') input.step = 'any'
        if (typeof s.minimum === 'number') input.min = String(s.minimum)
        if (typeof s.maximum === 'number') input.max = String(s.maximum)
        if (s.default !== undefined) input.value = String(s.default)
        var example = Array.isArray(s.examples) && s.examples.length > 0 ? s.examples[0] : undefined
        if (example !== undefined) input.placeholder = String(example)
      }
      input.id = inputId
      input.name = name
      input.dataset.arg = name
      input.dataset.kind = kind
      input.dataset.required = required.indexOf(name) !== -1 ? 'true' : 'false'
      field.appendChild(input)
      box.appendChild(field)
    })
  }
  function collectArgs () {
    var args = {}
    $('tool-fields').querySelectorAll('[data-arg]').forEach(function (input) {
      var name = input.dataset.arg
      var kind = input.dataset.kind
      var required = input.dataset.required === 'true'
      if (kind === 'boolean') { if (input.checked || required) args[name] = input.checked; return }
      var raw = input.value
      if (raw === '' && !required) return
      if (kind === 'enum') { args[name] = JSON.parse(raw); return }
      if (kind === 'number' || kind === 'integer') {
        var n = Number(raw)
        if (raw === '' || Number.isNaN(n)) throw new Error(name + ': enter a number')
        args[name] = n
        return
      }
      if (kind === 'json') {
        try { args[name] = JSON.parse(raw) } catch (err) { throw new Error(name + ': invalid JSON (' + err.message + ')') }
        return
      }
      args[name] = raw
    })
    return args
  }
  select.addEventListener('change', renderFields)
  renderFields()

  function showResult (state, text, json) {
    $('result').dataset.state = state
    $('result-text').textContent = text
    $('result-json').textContent = json === undefined ? '' : JSON.stringify(json, null, 2)
  }
  function describe (result) {
    var parts = (result.content || []).map(function (c) {
      if (c.type === 'text') return c.text
      if (c.type === 'image' || c.type === 'audio') return '[' + c.type + ' ' + (c.mimeType || '') + ']'
      if (c.type === 'resource') return '[resource ' + (c.resource && c.resource.uri) + ']'
      if (c.type === 'resource_link') return '[link ' + c.uri + ']'
      return JSON.stringify(c)
    })
    if (result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent, null, 2))
    return parts.join('\n')
  }
  $('tool-form').addEventListener('submit', async function (e) {
    e.preventDefault()
    var tool = tools[Number(select.value)]
    var args
    try { args = collectArgs() } catch (err) { showResult('error', err.message); return }
    $('call').disabled = true
    var log = []
    showResult('pending', 'calling ' + tool.name + '…')
    var onNotification = function (msg) {
      log.push(msg)
      var p = msg.params || {}
      var line = msg.method === 'notifications/progress'
        ? 'progress ' + p.progress + (p.total !== undefined ? '/' + p.total : '') + (p.message ? ' ' + p.message : '')
        : (msg.method || 'message') + ' ' + JSON.stringify(p.data !== undefined ? p.data : p)
      $('result-text').textContent += '\n' + line
    }
    try {
      var answer
      for (var attempt = 0; attempt < 2; attempt++) {
        try {
          await ensureSession()
          answer = await request('tools/call', { name: tool.name, arguments: args }, onNotification)
          break
        } catch (err) {
          // The session expired or was deleted: start a new one, once.
          if (err instanceof HttpError && err.status === 404 && attempt === 0) { session.id = null; continue }
          throw err
        }
      }
      var notes = log.length > 0 ? '\n\n— ' + log.length + ' notification(s) before the result, see below —' : ''
      var full = log.length > 0 ? { notifications: log, response: answer } : answer
      if (answer.error) showResult('error', 'error ' + answer.error.code + ': ' + answer.error.message + notes, full)
      else showResult(answer.result.isError ? 'error' : 'ok', describe(answer.result) + notes, full)
    } catch (err) {
      showResult('error', String(err && err.message ? err.message : err))
    } finally {
      $('call').disabled = false
    }
  })
})()
`
