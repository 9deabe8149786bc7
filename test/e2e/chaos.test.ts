import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { startServer, type ServerProcess } from './process.js'
import { missing, startFaultProxy, startRedis, type FaultProxy, type RedisServer } from './services.js'
import { StreamChecker } from './stream-checker.js'
import { ACCEPT, follow, initialize, modernListen, post, readEvent, sessionHeaders, sleep, type Followed, type SseEvent } from './clients.js'
import { ignore } from '../../src/ignore.js'

// Issue 19, acceptance 1: an operator's bad day, in turn, on three built replicas sharing one real
// Redis, while broadcasts go out from all three, legacy (HTTP+SSE) requests get their replies, and
// public, session, listen and request streams (with progress) are open on every replica:
//   subscriber connections killed · Redis paused (SIGSTOP) · Redis restarted empty · Redis restored
//   from an older RDB snapshot · a DELETE sent to another replica than the one running the call ·
//   a publisher killed between its log append and its publish · a replica SIGKILLed mid-call.
// After each fault the load pauses and every stream must have every accepted event within a few
// heartbeats (the log is the truth: no later event is there to reveal a gap), or an `evicted`
// notice after it was sent. One StreamChecker per stream fails on any silent gap, duplicate,
// reorder or reused id. The publisher fault is injected by a TCP proxy in front of replica C that
// turns its PUBLISH commands into HEXISTS (test/e2e/services.ts startFaultProxy): C's appends land,
// its wake-ups never do; then C is SIGKILLed.

const skip = missing('redis-server')
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))
const HEARTBEAT_MS = 1000
/** How long a stream may take to catch up with the log after a fault: a heartbeat, with room for a loaded machine. */
const SETTLE_MS = 3 * HEARTBEAT_MS + 2000
/** A resumed request stream whose runner died must end with a JSON-RPC error within this. */
const RUNNER_BOUND_MS = 10_000
/** A DELETE on another replica must stop the session's running call within this. */
const CANCEL_BOUND_MS = 5000

interface Replica { name: string, proc: ServerProcess, killed: boolean }

class Chaos {
  readonly replicas: Replica[]
  readonly checkers: StreamChecker[] = []
  readonly problems: string[] = []
  readonly notes: string[] = []
  /** Streams that take broadcasts: the checker, when its logical stream started, and whether it ended. */
  readonly streams: Array<{ checker: StreamChecker, startedAt: number }> = []
  stopping = false
  #rr = 0

  constructor (replicas: Replica[]) { this.replicas = replicas }

  live (): Replica[] { return this.replicas.filter((r) => !r.killed) }
  /** The next live replica, round robin (optionally not `not`). */
  pick (not?: Replica): Replica {
    const live = this.live().filter((r) => r !== not)
    const r = live[this.#rr++ % live.length]
    if (r === undefined) throw new Error('no live replica')
    return r
  }

  checker (name: string): StreamChecker {
    const c = new StreamChecker(name)
    this.checkers.push(c)
    return c
  }

  record (c: StreamChecker, ev: SseEvent): void {
    c.record({ id: ev.id, event: ev.event, ...readEvent(ev) })
  }

  /** A stream that broadcasts must reach from `startedAt` on. */
  takeBroadcasts (checker: StreamChecker, startedAt: number): void {
    this.streams.push({ checker, startedAt })
  }

  /** An accepted broadcast: expected on every broadcast stream open when it was sent. */
  accepted (tag: string, sentAt: number): void {
    for (const s of this.streams) if (s.startedAt < sentAt && !s.checker.ended) s.checker.expect(tag, sentAt)
  }

  /**
   * A public or session GET stream: resumed with Last-Event-ID on another live replica whenever it
   * ends; a session stream whose session is gone (404) ends, announced, and a new one replaces it.
   */
  async resumable (kind: 'public' | 'session', n: number, first: Replica): Promise<void> {
    let replica = first
    let sid: string | undefined
    let checker: StreamChecker | undefined
    let lastId: string | undefined
    while (!this.stopping) {
      if (kind === 'session' && sid === undefined) {
        sid = await initialize(replica.proc.url)
        if (sid === undefined) { await sleep(200); replica = this.pick(); continue }
        checker = this.checker(`session#${n}@${replica.name}`)
        lastId = undefined
      }
      checker ??= this.checker(`public#${n}@${replica.name}`)
      const c = checker
      const headers: Record<string, string> = { ...(sid === undefined ? {} : sessionHeaders(sid)), ...(lastId === undefined ? {} : { 'last-event-id': lastId }) }
      const f = await follow(`${replica.proc.url}/mcp`, { headers }, (ev) => {
        if (ev.id !== undefined) lastId = ev.id
        this.record(c, ev)
      })
      if (f.status === 200) {
        if (!this.streams.some((s) => s.checker === c)) this.takeBroadcasts(c, performance.now())
        this.#open.add(f)
        await f.done
        this.#open.delete(f)
      } else if (f.status === 404 && kind === 'session') {
        c.end('session gone (404 on resume)')
        sid = undefined
        checker = undefined
        continue
      }
      if (this.stopping) return
      await sleep(f.status === 200 ? 0 : 200)
      replica = this.pick(replica.killed ? undefined : replica)
    }
  }

  /** A stream that cannot be resumed (HTTP+SSE, subscriptions/listen): when it ends it is announced over, and a new one replaces it. */
  async oneShot (kind: 'legacy' | 'listen', n: number, first: Replica): Promise<void> {
    let replica = first
    while (!this.stopping) {
      const c = this.checker(`${kind}#${n}@${replica.name}`)
      let endpoint: string | undefined
      const f = kind === 'legacy'
        ? await follow(`${replica.proc.url}/sse`, {}, (ev) => { if (ev.event === 'endpoint') endpoint = ev.data; this.record(c, ev) })
        : await follow(`${replica.proc.url}/mcp`, { method: 'POST', ...modernListen() }, (ev) => this.record(c, ev))
      if (f.status === 200) {
        // From the moment the stream is open (its head is here): a broadcast sent before may or may not be on it.
        this.takeBroadcasts(c, performance.now())
        this.#open.add(f)
        const pinger = kind === 'legacy' ? this.#ping(c, () => endpoint, f.done) : Promise.resolve()
        await f.done
        this.#open.delete(f)
        c.end('stream closed')
        await pinger
      } else {
        c.end(`not opened (${f.status})`)
      }
      if (this.stopping) return
      await sleep(200)
      replica = this.pick()
    }
  }

  /** Legacy requests: pings POSTed to any live replica; each accepted one's reply must come on the stream. */
  async #ping (c: StreamChecker, endpoint: () => string | undefined, over: Promise<void>): Promise<void> {
    const stream = { closed: false }
    over.then(() => { stream.closed = true }, () => { stream.closed = true })
    let k = 0
    while (!this.stopping && !stream.closed) {
      await this.running()
      const path = endpoint()
      if (stream.closed) return
      if (path !== undefined) {
        const id = `${c.name}:q${k++}`
        const sentAt = performance.now()
        const r = await post(`${this.pick().proc.url}${path}`, { jsonrpc: '2.0', id, method: 'ping' })
        if (r.status === 202) c.expect(`reply:${id}`, sentAt)
        else if (r.status === 404) return
      }
      await sleep(150)
    }
  }

  /** Broadcasts from one replica, one after another, while it lives and the load is on. */
  async publisher (r: Replica): Promise<void> {
    while (!this.stopping && !r.killed) {
      await this.running()
      if (r.killed || this.stopping) return
      await this.broadcast(r)
      await sleep(40)
    }
  }

  /** One broadcast from `r`, tagged with the next number of its source (a source sends one at a time). */
  async broadcast (r: Replica): Promise<number> {
    const n = this.#sent.get(r.name) ?? 0
    this.#sent.set(r.name, n + 1)
    const sentAt = performance.now()
    this.#inflight++
    try {
      const res = await post(`${r.proc.url}/broadcast`, { event: 'tick', data: { src: r.name, n } })
      if (res.status === 202) this.accepted(`b:${r.name}.${n}`, sentAt)
      else this.failedBroadcasts++
      return res.status
    } finally {
      this.#inflight--
    }
  }

  failedBroadcasts = 0
  readonly #sent = new Map<string, number>()
  #inflight = 0
  readonly #open = new Set<Followed>()
  #paused: Promise<void> | undefined
  #resume: (() => void) | undefined

  /** Resolves at once while the load runs; waits while it is paused. */
  async running (): Promise<void> { await this.#paused }
  async pause (): Promise<void> {
    this.#paused ??= new Promise((resolve) => { this.#resume = resolve })
    const deadline = Date.now() + 10_000
    while (this.#inflight > 0 && Date.now() < deadline) await sleep(20)
  }

  resume (): void { this.#resume?.(); this.#paused = undefined }

  /** Request streams with progress: ticker calls on sessions of any replica; each must end with its result or an error. */
  async caller (n: number): Promise<void> {
    let sid: string | undefined
    let k = 0
    while (!this.stopping) {
      await this.running()
      const r = this.pick()
      sid ??= await initialize(r.proc.url)
      if (sid === undefined) { await sleep(200); continue }
      const id = `call${n}.${k++}`
      const c = this.checker(`request ${id}@${r.name}`)
      const outcome = await this.call(r, sid, id, c, { count: 5, ms: 60 })
      if (outcome === 'no session') sid = undefined
      await sleep(100)
    }
  }

  /**
   * One tools/call with progress; resumed with Last-Event-ID on another live replica if its stream
   * breaks. 'result' and 'error' are answers; a stream that never ends is a problem.
   */
  async call (r: Replica, sid: string, id: string, c: StreamChecker, args: { count: number, ms: number }, onEvent?: (ev: SseEvent) => void): Promise<'result' | 'error' | 'refused' | 'no session' | 'hung'> {
    let lastId: string | undefined
    const got: { answer?: 'result' | 'error' } = {}
    const see = (ev: SseEvent): void => {
      if (ev.id !== undefined) lastId = ev.id
      this.record(c, ev)
      onEvent?.(ev)
      try {
        const m = JSON.parse(ev.data) as { id?: unknown, result?: { isError?: boolean }, error?: unknown }
        if (m.id === id) got.answer = m.error !== undefined || m.result?.isError === true ? 'error' : 'result'
      } catch (err) {
        ignore('an event that is not JSON is not the answer; the checker judges the stream')(err)
      }
    }
    const started = performance.now()
    const f = await follow(`${r.proc.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, ...sessionHeaders(sid) },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'ticker', arguments: args, _meta: { progressToken: id } } })
    }, see, 5000)
    if (f.status === 404) return 'no session'
    if (f.status !== 200) return 'refused'
    if (f.body !== undefined) { see({ event: 'message', data: f.body }); return got.answer ?? 'refused' }
    await f.done
    // The stream broke before the answer: resume elsewhere until the answer (or an error) comes.
    let broke: number | undefined
    while (got.answer === undefined && !this.stopping) {
      broke ??= performance.now()
      if (performance.now() - broke > RUNNER_BOUND_MS) {
        this.problems.push(`${c.name}: its stream broke and no answer came within ${RUNNER_BOUND_MS} ms of resuming (last id ${lastId})`)
        return 'hung'
      }
      const other = this.pick(r.killed ? undefined : r)
      const g = await follow(`${other.proc.url}/mcp`, { headers: { ...sessionHeaders(sid), ...(lastId === undefined ? {} : { 'last-event-id': lastId }) } }, see, 5000)
      if (g.status === 404) return 'no session'
      if (g.status === 200) {
        const cut = setTimeout(() => g.close(), Math.max(0, RUNNER_BOUND_MS - (performance.now() - broke)))
        await g.done
        clearTimeout(cut)
      } else {
        await sleep(200)
      }
    }
    // A call that answered with its result reported every step of its progress.
    if (got.answer === 'result') for (let i = 1; i <= args.count; i++) c.expect(`p:${i}`, started)
    return got.answer ?? 'hung'
  }

  /** Waits until every stream has what it should (or SETTLE_MS), then records what is still missing. */
  async settle (label: string): Promise<number> {
    const start = performance.now()
    while (performance.now() - start < SETTLE_MS && this.checkers.some((c) => c.pending().length > 0)) await sleep(50)
    const took = performance.now() - start
    let lost = 0
    for (const c of this.checkers) lost += c.checkpoint(label).length
    this.notes.push(`${label}: settled in ${took.toFixed(0)} ms${lost > 0 ? `, ${lost} events still missing` : ''} (at ${start.toFixed(0)})`)
    return lost
  }

  closeAll (): void {
    this.stopping = true
    this.resume()
    for (const f of this.#open) f.close()
  }
}

async function ready (replicas: Replica[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (const r of replicas) {
    while ((await fetch(`${r.proc.url}/ready`).then((res) => res.status, () => 0)) !== 200) {
      if (Date.now() > deadline) throw new Error(`${r.name} not ready after Redis came back`)
      await sleep(100)
    }
  }
}

async function replicaOn (t: TestContext, name: string, redisUrl: string): Promise<Replica> {
  const proc = await startServer(t, {
    REDIS_URL: redisUrl,
    RATE_LIMIT_MAX: '0',
    LOG_LEVEL: 'warn',
    HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
    MAX_STREAMS_PER_CLIENT: '10000',
    MAX_CONNECTIONS_PER_CLIENT: '10000',
    MAX_SESSIONS_PER_CLIENT: '10000',
    MAX_INFLIGHT_PER_CLIENT: '1000',
    MCP_TOOLS: 'test/e2e/chaos-tools'
  })
  return { name, proc, killed: false }
}

async function kill (r: Replica): Promise<void> {
  r.killed = true
  r.proc.child.kill('SIGKILL')
  await r.proc.exited
}

test('chaos: three replicas, one Redis, every fault in turn — every stream gets every event once and in order, or evicted; no process stops', { skip, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-redis-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const redis: RedisServer = await startRedis(t, { dir })
  const proxy: FaultProxy = await startFaultProxy(t, redis.port)
  const [A, B, C] = await Promise.all([replicaOn(t, 'A', redis.url), replicaOn(t, 'B', redis.url), replicaOn(t, 'C', proxy.url)])
  assert.ok(A !== undefined && B !== undefined && C !== undefined)
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 50 })
  admin.on('error', () => {})
  t.after(() => admin.disconnect())
  const chaos = new Chaos([A, B, C])
  const work: Promise<void>[] = []
  t.after(async () => { chaos.closeAll(); await Promise.allSettled(work) })

  // The load: on every replica 2 public, 1 session, 1 listen and 1 legacy stream; a publisher per
  // replica; 2 callers of tools with progress.
  let n = 0
  for (const r of [A, B, C]) {
    work.push(chaos.resumable('public', n++, r), chaos.resumable('public', n++, r), chaos.resumable('session', n++, r))
    work.push(chaos.oneShot('listen', n++, r), chaos.oneShot('legacy', n++, r))
  }
  const until = Date.now() + 15_000
  while (chaos.streams.length < 15 && Date.now() < until) await sleep(50)
  assert.equal(chaos.streams.length, 15, 'every stream opened')
  for (const r of [A, B, C]) work.push(chaos.publisher(r))
  work.push(chaos.caller(0), chaos.caller(1))

  /**
   * One fault: `fault()` runs (it may pause the load, which then stays paused), the load runs on for
   * `runMs`, then pauses: with nothing more published, no later event can reveal a gap — each stream
   * must catch up from the log by itself — and the checkers take stock.
   */
  const phase = async (label: string, fault: () => Promise<void>, runMs = 1200): Promise<void> => {
    await fault()
    await sleep(runMs)
    await chaos.pause()
    await chaos.settle(label)
    chaos.resume()
  }
  /** A few broadcasts from every live replica, sent while the load is paused. */
  const burst = async (): Promise<void> => {
    await Promise.all(chaos.live().map(async (r) => { for (let i = 0; i < 3; i++) await chaos.broadcast(r) }))
  }

  await phase('warm-up (no fault)', async () => {})

  // Events published while the replicas' subscriber connections are down, and nothing after them.
  await phase('subscriber connections killed (CLIENT KILL TYPE pubsub)', async () => {
    await chaos.pause()
    await admin.client('KILL', 'TYPE', 'pubsub')
    await burst()
  }, 0)

  await phase('Redis paused 1.5 s (SIGSTOP)', async () => {
    redis.signal('SIGSTOP')
    await sleep(1500)
    redis.signal('SIGCONT')
  })

  await phase('Redis restarted empty', async () => {
    await chaos.pause()
    await redis.stop()
    rmSync(join(dir, 'dump.rdb'), { force: true })
    await redis.start()
    await ready(chaos.live())
    chaos.resume()
  })

  await phase('Redis restored from an older RDB snapshot', async () => {
    await admin.save()
    const snapshot = join(dir, 'older.rdb')
    copyFileSync(join(dir, 'dump.rdb'), snapshot)
    await sleep(1500) // more events, which the snapshot does not hold
    await chaos.pause()
    await redis.stop()
    copyFileSync(snapshot, join(dir, 'dump.rdb'))
    await redis.start()
    await ready(chaos.live())
    chaos.resume()
  })

  // A DELETE on B for the session whose call runs on A: the call stops.
  {
    await chaos.pause()
    const sid = await initialize(B.proc.url)
    assert.ok(sid !== undefined)
    const c = chaos.checker('request delete-elsewhere@A')
    let progress = 0
    let deletedAt: number | undefined
    let afterDelete = 0
    let deleted: Promise<number> | undefined
    const call = chaos.call(A, sid, 'del-1', c, { count: 50, ms: 100 }, (ev) => {
      if (!ev.data.includes('notifications/progress')) return
      progress++
      if (deletedAt !== undefined) afterDelete++
      if (progress === 3 && deleted === undefined) {
        deletedAt = performance.now()
        deleted = fetch(`${B.proc.url}/mcp`, { method: 'DELETE', headers: sessionHeaders(sid) }).then((res) => res.status)
      }
    })
    const outcome = await Promise.race([call, sleep(CANCEL_BOUND_MS + 6000).then(() => 'still running' as const)])
    const stoppedIn = deletedAt === undefined ? NaN : performance.now() - deletedAt
    assert.equal(await deleted, 204)
    chaos.notes.push(`DELETE on B, call on A: ${outcome} ${stoppedIn.toFixed(0)} ms after the DELETE, ${afterDelete} progress events after it`)
    if (outcome === 'result' || outcome === 'still running' || stoppedIn > CANCEL_BOUND_MS) {
      chaos.problems.push(`DELETE on B did not stop the session's call on A: ${outcome} after ${stoppedIn.toFixed(0)} ms, ${afterDelete} progress events after the DELETE`)
    }
    chaos.resume()
  }

  // The publisher C appends and its publishes are lost (the proxy eats them); then C is SIGKILLed.
  await phase('publisher killed between append and publish (C)', async () => {
    await chaos.pause()
    assert.equal(C.proc.child.exitCode, null, 'C alive until killed on purpose')
    proxy.dropPublish = true
    for (let i = 0; i < 3; i++) assert.equal(await chaos.broadcast(C), 202)
    await kill(C)
  }, 0)

  // A replica SIGKILLed mid-call: the call's stream resumed on B ends with a JSON-RPC error within the bound.
  {
    await chaos.pause()
    assert.equal(A.proc.child.exitCode, null, 'A alive until killed on purpose')
    const sid = await initialize(B.proc.url)
    assert.ok(sid !== undefined)
    const c = chaos.checker('request killed-runner@A')
    let progress = 0
    let killedAt: number | undefined
    const call = chaos.call(A, sid, 'kill-1', c, { count: 200, ms: 100 }, (ev) => {
      if (!ev.data.includes('notifications/progress')) return
      if (++progress === 3 && killedAt === undefined) {
        killedAt = performance.now()
        kill(A).catch(ignore('A is gone either way; the test checks its exit'))
      }
    })
    const outcome = await call
    const endedIn = killedAt === undefined ? NaN : performance.now() - killedAt
    chaos.notes.push(`runner A SIGKILLed mid-call: resumed stream on B ended with ${outcome} ${endedIn.toFixed(0)} ms after the kill`)
    if (outcome !== 'error') chaos.problems.push(`the resumed request stream of the dead runner A did not end with a JSON-RPC error (${outcome}, ${endedIn.toFixed(0)} ms after the kill)`)
    chaos.resume()
    await sleep(1200)
    await chaos.pause()
    await chaos.settle('replica A SIGKILLed mid-call')
  }

  chaos.closeAll()
  await Promise.race([Promise.allSettled(work), sleep(15_000)])

  // Per stream: its first problems and how many more (one broken stream can yield hundreds).
  const problems = [...chaos.problems, ...chaos.checkers.flatMap((c) => {
    const all = c.problems()
    return all.length > 3 ? [...all.slice(0, 3), `${c.name}: … ${all.length - 3} more problems`] : all
  })]
  for (const r of [A, B, C]) {
    if (!r.killed && r.proc.child.exitCode !== null) problems.push(`replica ${r.name} exited (${r.proc.child.exitCode}) though never killed`)
    const fatal = r.proc.output().split('\n').filter((l) => /fatal error|unhandled|uncaught/i.test(l))
    if (fatal.length > 0) problems.push(`replica ${r.name} logged: ${fatal[0]?.slice(0, 300)}`)
  }
  const totals = { events: 0, evicted: 0 }
  for (const c of chaos.checkers) {
    const x = c.summary()
    totals.events += x.events
    totals.evicted += x.evicted
  }
  t.diagnostic(`${chaos.checkers.length} streams checked, ${totals.events} events received, ${totals.evicted} evicted notices, ${chaos.failedBroadcasts} broadcasts refused during faults`)
  for (const note of chaos.notes) t.diagnostic(note)
  for (const p of problems.slice(0, 80)) t.diagnostic(`PROBLEM ${p}`)
  if (problems.length > 0) {
    // Every stream as received, for a closer look (test/artifacts is ignored by git).
    mkdirSync(ARTIFACTS, { recursive: true })
    const streams = chaos.checkers.map((c) => c.dump())
    writeFileSync(join(ARTIFACTS, 'chaos-streams.json'), JSON.stringify({ notes: chaos.notes, problems, streams }, null, 1))
  }
  assert.deepEqual(problems.slice(0, 12), [], `${problems.length} problems (every one in the diagnostics above)`)
})
