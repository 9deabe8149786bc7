import { readFileSync } from 'node:fs'
import type { Catalog, CatalogEntry, CatalogTool } from './mcp/registry.js'
import { LATEST_STATELESS_VERSION, LATEST_PROTOCOL_VERSION, PROTOCOL_VERSIONS, SERVER_NAME, SERVER_VERSION, isStatelessVersion } from './meta.js'
import { isObject, str } from './values.js'

/**
 * The /docs page, rendered by a pure function (renderDocsPage) from the live catalog. Its style and
 * browser script are real files in docs/page/ (linted; shipped with the package), read once from
 * the package root and inlined under the response's CSP nonce, so the page stays self-contained.
 */

/** docs/page/ of the package, from src/ (tsx) or dist/src/ (built). */
const PAGE_DIR = new URL('../' + (import.meta.url.includes('/dist/') ? '../' : '') + 'docs/page/', import.meta.url)
const asset = (name: string): string => readFileSync(new URL(name, PAGE_DIR), 'utf8')
const STYLE = '\n' + asset('style.css')
const CLIENT_SCRIPT = '\n' + asset('app.js')

/* ------------------------------------------------------------------------------------------------
 * Escaping. Everything on the page that comes from data (the catalog, the Host header) goes through
 * one of these; the browser-side code only ever sets textContent.
 * ---------------------------------------------------------------------------------------------- */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text or attribute value → HTML-safe text. */
export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c)
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
  /** The plugin's route prefix (`''` for the service): the console's requests and the examples use it. */
  prefix?: string
}

/** The public endpoints (README "Endpoints"). */
const ENDPOINTS: Array<[string, string, string]> = [
  ['/mcp', 'POST', 'Streamable HTTP JSON-RPC. A request is answered with application/json or a text/event-stream (per Accept); a notification or response gets 202.'],
  ['/mcp', 'GET', 'With Mcp-Session-Id: that session\'s stream (resumable with Last-Event-ID). Without: the public event stream (welcome, heartbeats, broadcasts) — what the console below opens.'],
  ['/mcp', 'DELETE', 'Ends the session (later requests with it get 404).'],
  ['/sse', 'GET', 'HTTP+SSE transport (2024-11-05, deprecated): sends an endpoint event with the POST URL.'],
  ['/messages?sessionId=…', 'POST', 'HTTP+SSE transport: JSON-RPC in, 202 out; replies arrive as message events on /sse.'],
  ['/broadcast', 'POST', 'Operator broadcast {event, data} to every open stream.'],
  ['/health', 'GET', 'Liveness: status, version, protocol versions, uptime, open streams, sessions. Always public.'],
  ['/ready', 'GET', 'Readiness: 503 while draining or when a dependency (Redis) is down. Always public.'],
  ['/metrics', 'GET', 'Prometheus text; a JSON summary with Accept: application/json.'],
  ['/docs', 'GET', 'This page.']
]

type JsonSchema = Record<string, unknown>

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
  if (isStatelessVersion(v)) return 'stateless, per-request _meta'
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
    `<p>Or stateless (MCP ${LATEST_STATELESS_VERSION}): no initialize, no session; every request carries its version and capabilities in <code>_meta</code> and mirrors method and name into headers:</p>` +
    pre(`curl -s ${o.base}/mcp${json}${auth} \\
  -H 'MCP-Protocol-Version: ${LATEST_STATELESS_VERSION}' -H 'Mcp-Method: tools/call' -H ${shellQuote(`Mcp-Name: ${toolName}`)} \\
  -d ${shellQuote(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: toolName, arguments: tool ? exampleArguments(tool.inputSchema) : {}, _meta: { 'io.modelcontextprotocol/protocolVersion': LATEST_STATELESS_VERSION, 'io.modelcontextprotocol/clientCapabilities': {} } } }))}`) +
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
  const prefix = o.prefix ?? ''
  const config = { authOn: o.authOn, protocolVersion: LATEST_PROTOCOL_VERSION, mcpPath: `${prefix}/mcp`, broadcastPath: `${prefix}/broadcast` }
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
