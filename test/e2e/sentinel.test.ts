import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { startServer, type ServerProcess } from './process.js'
import { missing, startSentinelSet } from './services.js'
import { StreamChecker } from './stream-checker.js'
import { follow, initialize, post, readEvent, sessionHeaders, sleep, type Followed } from './clients.js'

// Issue 19, acceptance 3: Redis through Sentinel (REDIS_SENTINELS). A master, one replica and
// three sentinels on loopback (down-after 1 s, failover-timeout 3 s); two built replicas of the
// server find the master through the sentinels. While clients stream broadcasts (public streams
// and a session's GET stream) and call a tool on both replicas, the master is SIGKILLed. Measured:
// the error window (first failed call → first successful call after the failover), and that
// nothing was lost silently — every accepted broadcast reached every stream exactly once and in
// order, or the stream got `evicted` (a failover to a lagging replica may lose the tail; it must
// then be announced).

const skip = missing('redis-server', 'redis-sentinel')
const HEARTBEAT_MS = 1000

/** Waits until every sentinel knows the two others and the replica, and the replica is in sync. */
async function sentinelsAgree (sentinels: string[], name: string, replicaPort: number): Promise<void> {
  const deadline = Date.now() + 30_000
  const replica = new Redis(replicaPort, '127.0.0.1', { lazyConnect: true })
  try {
    await replica.connect()
    for (;;) {
      let ok = (await replica.info('replication')).includes('master_link_status:up')
      for (const s of sentinels) {
        const [host, port] = s.split(':')
        const client = new Redis(Number(port), host ?? '127.0.0.1', { lazyConnect: true })
        try {
          await client.connect()
          const flat = await client.call('SENTINEL', 'MASTER', name) as string[]
          const info = new Map<string, string>()
          for (let i = 0; i + 1 < flat.length; i += 2) info.set(flat[i] ?? '', flat[i + 1] ?? '')
          if (info.get('num-other-sentinels') !== '2' || info.get('num-slaves') !== '1') ok = false
        } finally {
          client.disconnect()
        }
      }
      if (ok) return
      if (Date.now() > deadline) throw new Error('the sentinels did not agree on the master, its replica and each other within 30 s')
      await sleep(200)
    }
  } finally {
    replica.disconnect()
  }
}

/** One call: when it was sent (`at`), when its answer came (`done`), whether it succeeded. */
interface Outcome { at: number, done: number, ok: boolean, what: string }

test('Sentinel: the master SIGKILLed while clients stream broadcasts and call tools — the error window, and nothing lost silently', { skip, timeout: 120_000 }, async (t) => {
  const set = await startSentinelSet(t, { downAfterMs: 1000, failoverTimeoutMs: 3000 })
  await sentinelsAgree(set.sentinels, set.name, set.replica.port)
  const env = {
    REDIS_SENTINELS: set.sentinels.join(','),
    REDIS_SENTINEL_NAME: set.name,
    RATE_LIMIT_MAX: '0',
    MAX_CONNECTIONS_PER_CLIENT: '1000',
    LOG_LEVEL: 'warn',
    HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS)
  }
  const [A, B] = await Promise.all([startServer(t, env), startServer(t, env)])
  const replicas = [A, B]

  // Streams: a public stream on each replica and a session's GET stream on A, each resumed with
  // Last-Event-ID on the other replica whenever it ends.
  const checkers: StreamChecker[] = []
  const streams: Array<{ c: StreamChecker, startedAt: number }> = []
  const open = new Set<Followed>()
  const sid = await initialize(A.url)
  assert.ok(sid !== undefined)
  const state = { stopping: false, paused: false }
  const follower = async (name: string, first: number, headers: Record<string, string>): Promise<void> => {
    const c = new StreamChecker(name)
    checkers.push(c)
    let lastId: string | undefined
    let i = first
    while (!state.stopping) {
      const base = replicas[i % 2]?.url ?? ''
      const f = await follow(`${base}/mcp`, { headers: { ...headers, ...(lastId === undefined ? {} : { 'last-event-id': lastId }) } }, (ev) => {
        if (ev.id !== undefined) lastId = ev.id
        c.record({ id: ev.id, event: ev.event, ...readEvent(ev) })
      })
      if (f.status === 200) {
        if (!streams.some((s) => s.c === c)) streams.push({ c, startedAt: performance.now() })
        open.add(f)
        await f.done
        open.delete(f)
      } else {
        await sleep(200)
      }
      i++
    }
  }
  const work = [follower('public@A', 0, {}), follower('public@B', 1, {}), follower('session@A', 0, sessionHeaders(sid))]
  t.after(async () => { state.stopping = true; for (const f of open) f.close(); await Promise.allSettled(work) })
  const until = Date.now() + 15_000
  while (streams.length < 3 && Date.now() < until) await sleep(50)
  assert.equal(streams.length, 3, 'every stream opened')

  // The load: broadcasts from A and B in turn, tool calls on the session from A and B in turn.
  const outcomes: Outcome[] = []
  let n = 0
  const load = (async () => {
    while (!state.stopping && !state.paused) {
      const r = replicas[n % 2] as ServerProcess
      const sentAt = performance.now()
      const tag = n++
      const [b, call] = await Promise.all([
        post(`${r.url}/broadcast`, { event: 'tick', data: { src: 'S', n: tag } }, {}, 5000),
        post(`${r.url}/mcp`, { jsonrpc: '2.0', id: tag, method: 'tools/call', params: { name: 'echo', arguments: { message: `m${tag}` } } }, sessionHeaders(sid), 5000)
      ])
      const done = performance.now()
      if (b.status === 202) for (const s of streams) if (s.startedAt < sentAt) s.c.expect(`b:S.${tag}`, sentAt)
      outcomes.push({ at: sentAt, done, ok: b.status === 202, what: `broadcast ${b.status}` })
      const called = call.status === 200 && call.text.includes(`"m${tag}"`)
      outcomes.push({ at: sentAt, done, ok: called, what: `tools/call ${call.status} ${called ? '' : call.text.slice(0, 120)}` })
      await sleep(50)
    }
  })()

  await sleep(2000)
  const before = await set.masterAddress()
  const killedAt = performance.now()
  await set.master.stop()
  // Until the sentinels have promoted the replica and the load has succeeded again for 3 s.
  const deadline = Date.now() + 45_000
  let failedOver = ''
  for (;;) {
    if (failedOver === '') {
      const now = await set.masterAddress().catch(() => before)
      if (now !== before) failedOver = now
    }
    const firstFail = outcomes.find((o) => o.at > killedAt && !o.ok)
    const lastFail = [...outcomes].reverse().find((o) => !o.ok)
    const now = performance.now()
    const quiet = firstFail === undefined ? now - killedAt > 8000 : lastFail !== undefined && now - lastFail.at > 3000
    const dead = replicas.every((r) => r.child.exitCode !== null || r.child.signalCode !== null)
    if ((failedOver !== '' && quiet) || dead) break
    if (Date.now() > deadline) break
    await sleep(100)
  }
  state.paused = true
  await load
  assert.notEqual(failedOver, '', `the sentinels failed over (master was ${before})`)
  assert.equal(failedOver, `127.0.0.1:${set.replica.port}`)

  // Every stream catches up (a few heartbeats), then the checkers judge.
  const settleStart = performance.now()
  while (performance.now() - settleStart < 3 * HEARTBEAT_MS + 2000 && checkers.some((c) => c.pending().length > 0)) await sleep(50)
  for (const c of checkers) c.checkpoint('the end')

  const after = outcomes.filter((o) => o.at > killedAt)
  const firstFail = after.find((o) => !o.ok)
  // The end of the window: the first success after the last failure.
  const lastFail = [...after].reverse().find((o) => !o.ok)
  const firstOkAfter = lastFail === undefined ? undefined : after.find((o) => o.ok && o.at > lastFail.at)
  // By answer times: from the first failed answer to the first successful one after the last failure.
  const windowMs = firstFail === undefined ? 0 : (firstOkAfter?.done ?? NaN) - firstFail.done
  const slowest = Math.max(...after.map((o) => o.done - o.at))
  const failed = after.filter((o) => !o.ok)
  const evicted = checkers.reduce((sum, c) => sum + c.summary().evicted, 0)
  t.diagnostic(`failover ${before} → ${failedOver}; calls and broadcasts after the kill: ${after.length}, failed: ${failed.length}`)
  const firstFailAfterKill = firstFail === undefined ? '-' : (firstFail.done - killedAt).toFixed(0)
  t.diagnostic(`error window (first failed call → first successful call after the failover): ${windowMs.toFixed(0)} ms; first failure ${firstFailAfterKill} ms after the SIGKILL, back ${((firstOkAfter?.done ?? NaN) - killedAt).toFixed(0)} ms after it; slowest answer ${slowest.toFixed(0)} ms`)
  t.diagnostic(`failures: ${[...new Set(failed.map((o) => o.what))].slice(0, 5).join(' | ')}`)
  t.diagnostic(`streams: ${checkers.map((c) => `${c.name} ${JSON.stringify(c.summary())}`).join('; ')}; evicted notices: ${evicted}`)
  if (!Number.isFinite(windowMs)) t.diagnostic(`replica A's log, last lines:\n${A.output().split('\n').slice(-12).join('\n').slice(0, 4000)}`)
  const problems = checkers.flatMap((c) => c.problems())
  assert.deepEqual(problems.slice(0, 12), [], `${problems.length} problems: nothing may be lost silently`)
  assert.ok(Number.isFinite(windowMs), 'the service came back after the failover')
  const fatal = (A.output() + B.output()).split('\n').filter((l) => /fatal error|unhandled/i.test(l)).map((l) => l.slice(0, 300))
  assert.deepEqual(fatal, [], 'no replica stopped on a Redis error')
  for (const r of replicas) assert.equal(r.child.exitCode, null, 'no replica exited')
})
