import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { startServer } from './process.js'

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' }

test('SIGTERM with 200 open streams and 20 in-flight calls: every call completes, every stream is told, exit 0', { timeout: 30_000 }, async (t) => {
  const server = await startServer(t, { MCP_FIXTURES: 'conformance', LOG_LEVEL: 'warn', DRAIN_TIMEOUT_MS: '10000', MAX_STREAMS_PER_CLIENT: '1000', MAX_CONNECTIONS_PER_CLIENT: '1000' })
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  t.after(() => agent.destroy())

  // 200 idle public streams, each collecting what it receives until the server ends it.
  const streams = await Promise.all(Array.from({ length: 200 }, async () => await new Promise<{ ended: Promise<string> }>((
    resolve, reject
  ) => {
    http.get(`${server.url}/mcp`, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
      let text = ''
      const ended = new Promise<string>((resolve) => {
        res.on('data', (d: Buffer) => { text += d.toString() })
        res.on('end', () => resolve(text))
        res.on('close', () => resolve(text))
      })
      // Wrapped: resolving with the promise itself would wait for the stream's end.
      res.once('data', () => resolve({ ended }))
    }).on('error', reject)
  })))

  const init = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'drain', version: '1' } } })
  })
  const session = init.headers.get('mcp-session-id') ?? ''
  assert.ok(session)
  const calls = Array.from({ length: 20 }, async (_, i) => {
    const res = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'mcp-session-id': session },
      body: JSON.stringify({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name: 'test_sleep', arguments: { ms: 1500 } } })
    })
    return { status: res.status, body: await res.json() as { id: number, result?: { content: Array<{ text: string }> } } }
  })
  await new Promise((resolve) => setTimeout(resolve, 300))
  server.child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 200))

  // While draining, new work is refused and readiness says so.
  const ready = await fetch(`${server.url}/ready`)
  assert.equal(ready.status, 503)
  const late = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers: { ...JSON_HEADERS, 'mcp-session-id': session },
    body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping' })
  })
  assert.equal(late.status, 503)
  assert.ok(late.headers.get('retry-after'))

  const results = await Promise.all(calls)
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, 200)
    assert.equal(r.body.id, i + 1)
    assert.equal(r.body.result?.content[0]?.text, 'slept 1500 ms')
  }
  const texts = await Promise.all(streams.map(async (s) => await s.ended))
  assert.equal(texts.filter((x) => x.includes('event: shutdown')).length, 200, 'every stream got the shutdown event')
  assert.equal(await server.exited, 0)
})
