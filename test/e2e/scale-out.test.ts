import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { ROOT, startServer } from './process.js'
import { missing, nginxConfigTest, startNginx, startRedis } from './services.js'
import { openSse } from '../sse-client.js'
import { sseClient, streamableClient } from './sdk.js'
import { Client as SdkV2Client, StreamableHTTPClientTransport as SdkV2Transport } from '@modelcontextprotocol/client'

const skip = missing('redis-server', 'nginx')
const ACCEPT = 'application/json, text/event-stream'

async function cluster (t: TestContext, extra: Record<string, string> = {}) {
  const redis = await startRedis(t)
  const env = { REDIS_URL: redis.url, TRUST_PROXY: 'loopback,1', RATE_LIMIT_MAX: '0', LOG_LEVEL: 'warn', HEARTBEAT_INTERVAL_MS: '1000', ...extra }
  const a = await startServer(t, env)
  const b = await startServer(t, env)
  const nginx = await startNginx(t, [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`])
  return { redis, a, b, nginx }
}

async function initialize (base: string): Promise<string> {
  const res = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'scale', version: '1' } } })
  })
  assert.equal(res.status, 200)
  return res.headers.get('mcp-session-id') ?? ''
}

async function call (base: string, session: string, id: number, name: string, args: Record<string, unknown>) {
  const res = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } })
  })
  return { status: res.status, body: await res.json() as { result?: { content: Array<{ text: string }> } } }
}

test('docker-compose: nginx → 2 replicas → Redis, nginx mounts deploy/nginx.conf, and nginx -t accepts it', { skip: missing('nginx') }, () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image?: string, build?: string, environment?: Record<string, string>, volumes?: string[], ports?: string[] }> }
  assert.deepEqual(Object.keys(compose.services).sort(), ['app1', 'app2', 'nginx', 'redis'])
  for (const app of ['app1', 'app2']) {
    assert.equal(compose.services[app]?.build, '.')
    assert.equal(compose.services[app]?.environment?.REDIS_URL, 'redis://redis:6379')
    assert.equal(compose.services[app]?.environment?.TRUST_PROXY, 'private,1')
  }
  assert.ok(compose.services.nginx?.volumes?.some((v) => v.startsWith('./deploy/nginx.conf:')))
  assert.deepEqual(compose.services.nginx?.ports, ['8080:8080'])
  const verdict = nginxConfigTest(['127.0.0.1:1', '127.0.0.1:2'], 18999)
  assert.ok(verdict.ok, verdict.output)
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  assert.match(dockerfile, /^USER node$/m, 'runs as non-root')
  assert.equal(dockerfile.match(/^FROM /gm)?.length, 2, 'multi-stage')
})

test('behind nginx: a session made on replica A serves every later request on B (Streamable HTTP)', { skip, timeout: 60_000 }, async (t) => {
  const { a, b, nginx } = await cluster(t)
  const session = await initialize(a.url)
  for (let i = 1; i <= 3; i++) {
    const r = await call(b.url, session, i, 'echo', { message: `on B ${i}` })
    assert.equal(r.status, 200)
    assert.equal(r.body.result?.content[0]?.text, `on B ${i}`)
  }
  // And the official SDK client through nginx's round-robin: every call lands on either replica.
  const { client } = await streamableClient(t, nginx.url)
  for (let i = 0; i < 6; i++) {
    const res = await client.callTool({ name: 'echo', arguments: { message: `rr ${i}` } })
    assert.deepEqual(res.content, [{ type: 'text', text: `rr ${i}` }])
  }
})

test('behind nginx: the HTTP+SSE transport works when /messages lands on the other replica', { skip, timeout: 60_000 }, async (t) => {
  const { nginx } = await cluster(t)
  const { client } = await sseClient(t, nginx.url)
  for (let i = 0; i < 4; i++) {
    const res = await client.callTool({ name: 'echo', arguments: { message: `http+sse ${i}` } })
    assert.deepEqual(res.content, [{ type: 'text', text: `http+sse ${i}` }])
  }
})

test('a broadcast published on A reaches streams held by B', { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await cluster(t)
  const onB = await openSse(`${b.url}/mcp`)
  t.after(() => onB.close())
  assert.equal((await onB.next())?.event, 'welcome')
  const res = await fetch(`${a.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'from-a', data: { ok: true } }) })
  assert.equal(res.status, 202)
  const ev = await onB.next()
  assert.equal(ev?.event, 'from-a')
  assert.equal(ev?.data, '{"ok":true}')
})

test('SIGKILL replica A mid-stream: the client resumes through nginx on B and gets all 500 events exactly once', { skip, timeout: 90_000 }, async (t) => {
  const { a, b, nginx } = await cluster(t)
  const received: number[] = []
  let lastId: string | undefined
  // The client's stream starts on A (as nginx might have routed it).
  const first = await openSse(`${a.url}/mcp`)
  assert.equal((await first.next())?.event, 'welcome')
  let killedA = false
  const publisher = (async () => {
    for (let n = 1; n <= 500; n++) {
      const res = await fetch(`${b.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'n', data: n }) })
      assert.equal(res.status, 202)
      if (n === 150) {
        a.child.kill('SIGKILL')
        await a.exited
        killedA = true
      }
    }
  })()
  let stream: Awaited<ReturnType<typeof openSse>> | undefined = first
  while (received.length < 500) {
    if (stream === undefined) {
      stream = await openSse(`${nginx.url}/mcp`, { headers: lastId ? { 'last-event-id': lastId } : {} })
    }
    let ev
    try { ev = await stream.next(15_000) } catch { ev = undefined }
    if (ev === undefined) { await stream.close(); stream = undefined; continue }
    if (ev.event !== 'n') continue
    received.push(Number(ev.data))
    lastId = ev.id
  }
  await stream?.close()
  await publisher
  assert.ok(killedA)
  assert.deepEqual(received, Array.from({ length: 500 }, (_, i) => i + 1))
})

test('Redis down for 5 s: /ready says 503, nothing crashes, service resumes by itself', { skip, timeout: 60_000 }, async (t) => {
  const { redis, a, b } = await cluster(t)
  assert.equal((await fetch(`${a.url}/ready`)).status, 200)
  await redis.stop()
  const deadline = Date.now() + 5000
  let sawNotReady = false
  while (Date.now() < deadline) {
    const r = await fetch(`${a.url}/ready`)
    if (r.status === 503) sawNotReady = true
    const bad = await fetch(`${b.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }) })
    assert.ok(bad.status >= 400 || bad.status === 200, 'answers, with an error, rather than hanging')
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  assert.ok(sawNotReady, '/ready reported 503 while Redis was down')
  await redis.start()
  const up = Date.now() + 20_000
  let ready = false
  while (!ready && Date.now() < up) {
    ready = (await fetch(`${a.url}/ready`)).status === 200 && (await fetch(`${b.url}/ready`)).status === 200
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  assert.ok(ready, 'both replicas ready again')
  const session = await initialize(a.url)
  assert.equal((await call(b.url, session, 1, 'echo', { message: 'back' })).body.result?.content[0]?.text, 'back')
  assert.equal(a.child.exitCode, null)
  assert.equal(b.child.exitCode, null)
})

test('through nginx an SSE event arrives within 200 ms of being sent (no proxy buffering)', { skip, timeout: 60_000 }, async (t) => {
  const { a, nginx } = await cluster(t)
  const s = await openSse(`${nginx.url}/mcp`)
  t.after(() => s.close())
  assert.equal((await s.next())?.event, 'welcome')
  const delays: number[] = []
  for (let i = 0; i < 5; i++) {
    const sent = performance.now()
    await fetch(`${a.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'tick', data: i }) })
    const ev = await s.next(2000)
    assert.equal(ev?.event, 'tick')
    delays.push(performance.now() - sent)
  }
  t.diagnostic(`delivery through nginx: ${delays.map((d) => d.toFixed(1)).join(', ')} ms`)
  assert.ok(Math.max(...delays) < 200, `slowest ${Math.max(...delays).toFixed(1)} ms`)
})

/** A stateless (2026-07-28) POST with its _meta and mirrored headers. */
function statelessInit (method: string, params: Record<string, unknown>, id: number | string = 1): RequestInit {
  const name = method === 'tools/call' ? params.name : undefined
  return {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(typeof name === 'string' ? { 'mcp-name': name } : {})
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method,
      params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } }
    })
  }
}

test('stateless era across replicas: a listen stream on A gets every broadcast made on B, in order (run-time tools refused); MRTR state from A is accepted by B', { skip, timeout: 60_000 }, async (t) => {
  const { a, b, nginx } = await cluster(t, { MCP_FIXTURES: 'conformance' })
  const filter = { toolsListChanged: true, 'dev.sse-mcp-server/broadcasts': true }
  const init = statelessInit('subscriptions/listen', { notifications: filter }, 'L')
  const sse = await openSse(`${a.url}/mcp`, { method: 'POST', headers: init.headers as Record<string, string>, body: init.body as string })
  t.after(() => sse.close())
  assert.equal(JSON.parse((await sse.next())?.data ?? '').method, 'notifications/subscriptions/acknowledged')

  // With REDIS_URL a tool added at run time is refused (it would exist on one replica only): a
  // tool error that says so, and no tools/list_changed. Then 200 broadcasts posted to B.
  const trigger = await fetch(`${b.url}/mcp`, statelessInit('tools/call', { name: 'test_trigger_tool_change', arguments: {} }))
  assert.equal(trigger.status, 200)
  const refused = await trigger.json() as { result: { isError: boolean, content: Array<{ text: string }> } }
  assert.equal(refused.result.isError, true)
  assert.match(refused.result.content[0]?.text ?? '', /register them at start-up on every replica/)
  for (let i = 1; i <= 200; i++) {
    const res = await fetch(`${b.url}/broadcast`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'tick', data: i }) })
    assert.equal(res.status, 202)
  }
  const ticks: number[] = []
  while (ticks.length < 200) {
    const ev = await sse.next().catch((err: Error) => { throw new Error(`${err.message} after ${ticks.length} ticks: ${ticks.slice(-3).join(',')}`) })
    const m = JSON.parse(ev?.data ?? '')
    assert.equal(m.method, 'notifications/message')
    ticks.push(m.params.data.data as number)
  }
  assert.deepEqual(ticks, Array.from({ length: 200 }, (_, i) => i + 1), 'all 200 broadcasts, once each, in order')

  // MRTR: round 1 answered by A, the retry with its requestState answered by B (secret shared via Redis).
  const call = { name: 'test_input_required_result_elicitation', arguments: {} }
  const r1 = await (await fetch(`${a.url}/mcp`, statelessInit('tools/call', call))).json() as { result: { requestState: string } }
  const r2 = await (await fetch(`${b.url}/mcp`, statelessInit('tools/call', { ...call, requestState: r1.result.requestState, inputResponses: { user_name: { action: 'accept', content: { name: 'Eve' } } } }))).json() as { result: { content: unknown } }
  assert.deepEqual(r2.result.content, [{ type: 'text', text: 'Hello, Eve!' }])

  // The SDK v2 client (stateless: its "modern" mode) through nginx round-robin.
  const client = new SdkV2Client({ name: 'v2', version: '1' }, { versionNegotiation: { mode: 'auto' } })
  await client.connect(new SdkV2Transport(new URL(`${nginx.url}/mcp`)))
  t.after(async () => { await client.close() })
  assert.equal(client.getProtocolEra(), 'modern')
  for (let i = 0; i < 4; i++) {
    const res = await client.callTool({ name: 'echo', arguments: { message: `v2 ${i}` } })
    assert.deepEqual(res.content, [{ type: 'text', text: `v2 ${i}` }])
  }
})
