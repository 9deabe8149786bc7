import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request, type IncomingMessage } from 'node:http'
import { listen } from './helper.js'
import { loadConfig } from '../src/config.js'
import { MemoryEventLog } from '../src/hub/memory.js'

const ATTACKER = '127.0.0.2'
const VICTIM = '127.0.0.3'

/** A legacy HTTP+SSE session opened from `localAddress`: its POST endpoint, and the open response. */
async function legacySession (port: number, localAddress: string): Promise<{ endpoint: string, res: IncomingMessage }> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/sse', localAddress, agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      let text = ''
      const onData = (b: Buffer): void => {
        text += b.toString()
        const m = /event: endpoint\ndata: (\S+)\n/.exec(text)
        if (m?.[1] !== undefined) {
          res.off('data', onData)
          res.resume()
          resolve({ endpoint: m[1], res })
        }
      }
      res.on('data', onData)
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => { req.destroy(new Error('no endpoint event')) })
    req.end()
  })
}

async function post (port: number, localAddress: string, path: string, body: unknown): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', localAddress, agent: false, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

/** Initializes the legacy session and makes it answer `calls` echoes of `bytes` each (the answers land in its replay ring). */
async function fill (port: number, from: string, endpoint: string, calls: number, bytes: number): Promise<void> {
  assert.equal(await post(port, from, endpoint, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'r', version: '1' } } }), 202)
  for (let i = 1; i <= calls; i++) {
    assert.equal(await post(port, from, endpoint, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x'.repeat(bytes) } } }), 202)
  }
}

test('REPLAY_TOTAL_BYTES has a per-client share: one client filling the in-memory replay log cannot evict another client\'s events', { timeout: 60_000 }, async (t) => {
  const share = 256 * 1024
  const total = 1024 * 1024
  const { app, url } = await listen(t, {
    maxConnectionsPerClient: 200,
    budgets: { ...loadConfig({}).budgets, replayTotalBytes: total, replayClientBytes: share, replayBufferBytes: 128 * 1024 }
  })
  const port = Number(new URL(url).port)
  const log = app.hub.replayLog
  assert.ok(log instanceof MemoryEventLog)

  // The victim's session holds one 60 KB answer: larger than any single ring of the attacker's.
  const victim = await legacySession(port, VICTIM)
  t.after(() => victim.res.destroy())
  await fill(port, VICTIM, victim.endpoint, 1, 60_000)
  const waitFor = async (cond: () => boolean): Promise<void> => {
    const deadline = Date.now() + 10_000
    while (!cond() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await waitFor(() => log.bytesOf(`ip:${VICTIM}`) > 60_000)
  const victimBefore = log.bytesOf(`ip:${VICTIM}`)

  // The attacker: 40 sessions, each with 2 answers of 15 KB (1.2 MB in rings smaller than the victim's).
  const sessions = await Promise.all(Array.from({ length: 40 }, async () => await legacySession(port, ATTACKER)))
  t.after(() => { for (const s of sessions) s.res.destroy() })
  await Promise.all(sessions.map(async (s) => { await fill(port, ATTACKER, s.endpoint, 2, 15_000) }))
  await waitFor(() => log.bytesOf(`ip:${ATTACKER}`) > share * 0.8)

  const attacker = log.bytesOf(`ip:${ATTACKER}`)
  t.diagnostic(`attacker wrote ~${40 * 2 * 15_000} B into 40 rings; it holds ${attacker} B (REPLAY_CLIENT_BYTES=${share}); ` +
    `victim ${victimBefore} B before, ${log.bytesOf(`ip:${VICTIM}`)} B after; whole log ${log.bytes} B (REPLAY_TOTAL_BYTES=${total})`)
  assert.ok(attacker <= share, `the attacker stays within its share: ${attacker}`)
  assert.equal(log.bytesOf(`ip:${VICTIM}`), victimBefore, 'the victim lost nothing')
  assert.ok(log.bytes <= total)
})
