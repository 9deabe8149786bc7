import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { listen, testConfig } from '../helper.js'
import { missing, startRedis } from '../e2e/services.js'
import { openSse } from '../sse-client.js'
import { until } from '../e2e/sdk.js'
import { ignore } from '../../src/ignore.js'
import { kEngine } from '../../src/mcp/engine.js'

// Issue 13, acceptance 3: streams aborted at every stage — before attach, during the prelude,
// mid-stream, during replay — on GET /mcp (public and session) and GET /sse, in memory and with
// Redis, never stay counted: with MAX_CONNECTIONS=50, counts return to 0 and new streams open.

type Stage = 'before-attach' | 'prelude' | 'mid-stream' | 'replay'
const STAGES: Stage[] = ['before-attach', 'prelude', 'mid-stream', 'replay']
const PER_STAGE = 500
const BATCH = 25

/** Opens one stream over a raw socket and destroys it at `stage`; resolves when it is destroyed. */
function abortAt (port: number, path: string, headers: Record<string, string>, stage: Stage, onHead: () => void): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    let got = 0
    const done = (): void => { s.destroy(); resolve() }
    s.on('error', () => resolve())
    s.on('close', () => resolve())
    const head = Object.entries({ host: `127.0.0.1:${port}`, accept: 'text/event-stream', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    s.write(`GET ${path} HTTP/1.1\r\n${head}\r\n`, () => { if (stage === 'before-attach') done() })
    s.on('data', (chunk: Buffer) => {
      got += chunk.length
      if (stage === 'prelude') return done()
      if (got === chunk.length) {
        onHead()
        // A stream with less to send than the thresholds below (HTTP+SSE has no history) ends here.
        setTimeout(done, 300).unref()
      }
      // mid-stream: after some live events; replay: within the first replayed bytes.
      if (stage === 'replay' && got > 1024) return done()
      if (stage === 'mid-stream' && got > 4096) return done()
    })
  })
}

async function initialize (url: string): Promise<string> {
  const res = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'lifecycle', version: '1' } } })
  })
  assert.equal(res.status, 200)
  return res.headers.get('mcp-session-id') ?? ''
}

async function run (t: TestContext, redisUrl?: string): Promise<void> {
  const { app, url } = await listen(t, {
    maxConnections: 50,
    rateLimitMax: 0,
    redisUrl,
    budgets: { ...testConfig().budgets, streamsPerClient: 1000, sessionsPerClient: 100_000 }
  })
  const port = Number(new URL(url).port)
  const session = await initialize(url)
  const baseSessions = await app[kEngine].sessions.count()
  // History to replay: the public stream and the session stream.
  let lastPublic = ''
  let lastSession = ''
  for (let i = 0; i < 50; i++) {
    lastPublic = await app.hub.publish('public', { event: 'fill', data: 'x'.repeat(200) })
    lastSession = await app.hub.publish(`s:${session}:g`, { event: 'message', data: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'x'.repeat(200) } }) })
  }
  const firstPublic = lastPublic.replace(/-\d+$/, '-1')
  const firstSession = lastSession.replace(/-\d+$/, '-1')
  const targets = [
    { name: 'public', path: '/mcp', headers: {} as Record<string, string>, replay: { 'last-event-id': firstPublic }, key: 'public' },
    { name: 'session', path: '/mcp', headers: { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }, replay: { 'last-event-id': firstSession }, key: `s:${session}:g` },
    { name: 'http+sse', path: '/sse', headers: {}, replay: {}, key: undefined as string | undefined }
  ]
  for (const stage of STAGES) {
    for (const target of targets) {
      const n = Math.ceil(PER_STAGE / targets.length)
      for (let i = 0; i < n; i += BATCH) {
        const batch: Promise<void>[] = []
        for (let j = i; j < Math.min(n, i + BATCH); j++) {
          const headers = stage === 'replay' ? { ...target.headers, ...target.replay } : target.headers
          // Mid-stream: live events once the head is there (HTTP+SSE: a broadcast reaches it too).
          const onHead = (): void => {
            if (stage !== 'mid-stream') return
            const live = target.key === undefined ? app.hub.broadcast('live', { x: 'y'.repeat(3000) }) : app.hub.publish(target.key, { data: 'y'.repeat(3000) })
            live.then(async () => await app.hub.publish(target.key ?? 'public', { data: 'z'.repeat(3000) })).catch(ignore('the stream may already be closed by the test'))
          }
          batch.push(abortAt(port, target.path, headers, stage, onHead))
        }
        await Promise.all(batch)
      }
      await until(() => app.hub.stats().streams === 0, 10_000, `${target.name} streams aborted at ${stage} to be released (${app.hub.stats().streams} left)`)
      let sessions = 0
      const deadline = Date.now() + 10_000
      while ((sessions = await app[kEngine].sessions.count()) !== baseSessions && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(
          resolve, 20
        ))
      }
      assert.equal(sessions, baseSessions, `HTTP+SSE sessions left after ${target.name} at ${stage}`)
    }
  }
  // And the server still accepts streams.
  const s = await openSse(`${url}/mcp`)
  t.after(() => s.close())
  assert.equal(s.res.status, 200)
  assert.equal((await s.next())?.event, 'welcome')
  assert.equal(app.hub.stats().streams, 1)
}

test('streams aborted at every stage are released at once, in memory (MAX_CONNECTIONS=50)', { timeout: 120_000 }, async (t) => {
  await run(t)
})

test('streams aborted at every stage are released at once, with Redis (MAX_CONNECTIONS=50)', { skip: missing('redis-server'), timeout: 120_000 }, async (t) => {
  const redis = await startRedis(t)
  await run(t, redis.url)
})

test('one client gets at most MAX_STREAMS_PER_CLIENT streams (429 + Retry-After), and more once some close', { timeout: 60_000 }, async (t) => {
  const { app, url } = await listen(t, { rateLimitMax: 0, maxConnections: 1000, maxConnectionsPerClient: 1000 })
  const streams: Array<Awaited<ReturnType<typeof openSse>>> = []
  for (let i = 0; i < 100; i++) streams.push(await openSse(`${url}/mcp`))
  t.after(async () => { await Promise.all(streams.map(async (s) => { await s.close() })) })
  const refused = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream' } })
  assert.equal(refused.status, 429)
  assert.ok(Number(refused.headers.get('retry-after')) > 0)
  assert.match((await refused.json() as { message: string }).message, /MAX_STREAMS_PER_CLIENT/)
  assert.equal(app.budgetRefusals.get('streams_per_client'), 1)
  for (const s of streams.splice(0, 10)) await s.close()
  await until(() => app.hub.stats().streams === 90, 5000, 'ten streams to close')
  const again = await openSse(`${url}/mcp`)
  streams.push(again)
  assert.equal(again.res.status, 200)
})
