import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { McpServer, type McpObserver, type ScaleOutTracker } from '../src/mcp/server.js'
import { MemorySessionStore, SessionLedger, type SessionRecord, type SessionStore } from '../src/mcp/session.js'
import { Quota, bounded, clientBudget, type ClientBudget } from '../src/budget.js'
import { RedisSessionStore, RedisSessionUnits } from '../src/mcp/redis-sessions.js'
import { RUN_DONE, RunLeases, watchRun } from '../src/mcp/leases.js'
import { ConfigError, STATE_SECRET_NEEDS_REDIS } from '../src/config.js'
import type { JsonRpcNotification, JsonRpcResponse, RequestId } from '../src/mcp/jsonrpc.js'
import type { AnySchema, PromptDefinition, ResourceDefinition, ResourceTemplateDefinition, ToolDefinition } from '../src/mcp/registry.js'
import { registerBuiltins } from '../src/tools/builtin.js'
import { registerConformanceFixtures } from '../src/tools/conformance.js'
import { SERVER_NAME, SERVER_VERSION } from '../src/meta.js'
import { ListenStreams, StatelessEngine, type Change } from '../src/mcp/stateless.js'
import { MemoryNonceStore, RequestStateCodec, fixedRing, type NonceStore, type SecretRing } from '../src/mcp/mrtr.js'
import { cap } from '../src/budget.js'
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { channels, httpSseStream, redisKeys, sessionOwnedStreams, sessionStream } from '../src/mcp/keys.js'
import { ignore, logFailure } from '../src/ignore.js'
import { ErrorCode, errorResponse } from '../src/mcp/jsonrpc.js'

export type { McpObserver }

export interface CatalogTool {
  name: string
  title?: string
  description?: string
  inputSchema: Record<string, unknown>
  outputSchema?: Record<string, unknown>
  annotations?: Record<string, unknown>
}
export interface CatalogEntry { name: string, title?: string, description?: string, [key: string]: unknown }
export interface Catalog {
  tools: CatalogTool[]
  resources: CatalogEntry[]
  resourceTemplates: CatalogEntry[]
  prompts: CatalogEntry[]
}

/** The hub key a session's server-initiated messages go to. */
export function sessionStreamKey (session: Pick<SessionRecord, 'id' | 'transport'>): string {
  return session.transport === 'http+sse' ? httpSseStream(session.id) : sessionStream(session.id)
}

/**
 * Messages between replicas. Responses and cancels go to the one replica where the request is
 * awaited or running (its own channel, found through a Redis key set while it waits or runs);
 * changes for listen streams go to every replica.
 */
type Directed =
  | { t: 'response', sid: string, msg: JsonRpcResponse }
  | { t: 'cancel', sid: string, id: RequestId, reason?: string }
type Broadcast =
  | { t: 'change', from: string, change: Change }
  | { t: 'end', from: string, sid: string, reason: string }
const CONTROL_CHANNEL = channels.control
const replicaChannel = channels.replica
const awaitKey = redisKeys.awaiting
const runKey = redisKeys.running
const STATE_SECRET_KEY = redisKeys.stateSecret
/** Largest client response relayed to another replica (bytes of JSON); larger ones are dropped. */
export const MAX_RELAY_BYTES = 1_048_576
/** A request is recorded as running (for cancels from other replicas) once it has run this long. */
const TRACK_RUNNING_AFTER_MS = 20
/** Longest request id tracked across replicas (longer ids are cancelled only where they run). */
const MAX_TRACKED_ID = 200

/** What a client holds besides its streams (README "Resource budgets"), and how a session ends. */
interface SessionBudgets {
  /** MAX_SESSIONS_PER_CLIENT units and each session's request stream keys. */
  ledger: SessionLedger
  /** MAX_INFLIGHT_PER_CLIENT: stateless requests running per client (shared by the replicas with Redis). */
  statelessInflight: ClientBudget
  /** Run leases of session requests (Redis only): see RequestRuns. */
  runs: RequestRuns | undefined
  /** MRTR requestState (its `refused` counts MAX_STATE_BYTES refusals). */
  stateCodec: RequestStateCodec
  endSession: (id: string, reason: string) => Promise<void>
}

function createMcp (
  server: McpServer,
  modern: StatelessEngine,
  listeners: ListenStreams,
  changed: (c: Change) => Promise<void>,
  relay: Relay,
  budgets: SessionBudgets
) {
  return {
    ...budgets,
    /** The protocol engine (the transports use it). */
    server,
    /** The stateless (2026-07-28) era on the same engine. */
    modern,
    /** subscriptions/listen streams open on this process. */
    listeners,
    /** Tells listen streams on every replica about a change (their filters decide who gets it). */
    changed,
    sessions: server.sessions,
    /** Registers a tool; its handler's argument type is inferred from a TypeBox or Standard Schema inputSchema. */
    tool<S extends AnySchema> (def: ToolDefinition<S>) { server.tool(def) },
    resource (def: ResourceDefinition) { server.resource(def) },
    resourceTemplate (def: ResourceTemplateDefinition) { server.resourceTemplate(def) },
    prompt (def: PromptDefinition) { server.prompt(def) },
    removeTool (name: string) { return server.registry.removeTool(name) },
    removeResource (uri: string) { return server.registry.removeResource(uri) },
    removePrompt (name: string) { return server.registry.removePrompt(name) },
    /** Tells subscribed sessions and listen streams that a resource changed (notifications/resources/updated). */
    async resourceUpdated (uri: string) { await Promise.all([server.resourceUpdated(uri), changed({ kind: 'resource', uri })]) },
    /** What clients see in the list methods (the /docs page renders it). */
    catalog (): Catalog {
      const r = server.registry
      return {
        tools: [...r.tools.values()].map((t) => t.listing as unknown as CatalogTool),
        resources: [...r.resources.values()].map((d) => r.resourceListing(d) as CatalogEntry),
        resourceTemplates: r.templateListings() as CatalogEntry[],
        prompts: [...r.prompts.values()].map((p) => r.promptListing(p) as CatalogEntry)
      }
    },
    stats () { return { sessions: server.sessions.size } },
    /**
     * A client's response or notification. Responses to server→client requests and cancellations
     * reach the replica where the request is awaited or runs, wherever the client's POST landed;
     * a response nobody awaits, or a cancel of a request running nowhere, goes nowhere.
     */
    async receive (msg: JsonRpcResponse | JsonRpcNotification, session: SessionRecord): Promise<void> {
      if ('method' in msg) {
        await server.notification(msg, session)
        const id = msg.params?.requestId
        if (msg.method === 'notifications/cancelled' && (typeof id === 'string' || typeof id === 'number') && !server.cancel(session.id, id)) {
          await relay.cancel(session.id, id, typeof msg.params?.reason === 'string' ? msg.params.reason : undefined)
        }
      } else if (!server.response(msg, session.id)) {
        await relay.response(session.id, msg)
      }
    },
    observe (observer: McpObserver) { server.observe(observer) }
  }
}
export type Mcp = ReturnType<typeof createMcp>

declare module 'fastify' {
  interface FastifyInstance {
    mcp: Mcp
  }
}

/** Where sessions live: in memory by default, in Redis when scaled out. */
function sessionStore (app: FastifyInstance): SessionStore {
  return app.redis === null
    ? new MemorySessionStore(app.config.sessionIdleTimeoutMs)
    : new RedisSessionStore(app.redis.client, app.config.sessionIdleTimeoutMs)
}

/** How answers and cancels reach other replicas (no-ops in memory). */
interface Relay {
  response (sid: string, msg: JsonRpcResponse): Promise<void>
  cancel (sid: string, id: RequestId, reason: string | undefined): Promise<void>
}

/** A keyring that follows the shared secret in Redis: current signs, current and previous verify. */
class SharedSecretRing implements SecretRing {
  current: Buffer
  #previous: Buffer | undefined
  constructor (current: Buffer) { this.current = current }
  get all (): readonly Buffer[] { return this.#previous === undefined ? [this.current] : [this.current, this.#previous] }

  /**
   * After every Redis (re)connect: offer our key (SET NX) and adopt whatever Redis holds. After a
   * Redis restart the first replica back re-publishes the key all replicas already share, so states
   * keep verifying everywhere; a replica that must switch keeps its old key to verify with.
   */
  async sync (redis: Redis): Promise<void> {
    await redis.set(STATE_SECRET_KEY, this.current.toString('base64'), 'NX')
    const shared = await redis.get(STATE_SECRET_KEY)
    if (shared === null) throw new Error('Redis lost the shared requestState key')
    const key = Buffer.from(shared, 'base64')
    if (!key.equals(this.current)) {
      this.#previous = this.current
      this.current = key
    }
  }
}

/**
 * The MRTR requestState keys: STATE_SECRET when set; else one random key shared by every replica
 * through Redis (first one wins, re-offered on every reconnect); else random for this process.
 */
async function stateSecret (app: FastifyInstance): Promise<SecretRing> {
  if (app.config.stateSecret !== undefined && app.redis === null) throw new ConfigError(`Invalid configuration: STATE_SECRET ${STATE_SECRET_NEEDS_REDIS}`)
  if (app.config.stateSecret !== undefined) return fixedRing(Buffer.from(app.config.stateSecret, 'utf8'))
  if (app.redis === null) return fixedRing(randomBytes(32))
  const client = app.redis.client
  const ring = new SharedSecretRing(randomBytes(32))
  await ring.sync(client)
  const onReady = (): void => { ring.sync(client).catch((err: Error) => { app.log.warn({ err: err.message }, 'requestState key sync failed') }) }
  client.on('ready', onReady)
  app.addHook('onClose', async () => { client.off('ready', onReady) })
  return ring
}

// Redeems a nonce (SET NX) only while Redis is the one the state was sealed under: its run id
// changes on every restart and failover, so a Redis that lost nonces (restarted empty, restored
// from an older snapshot, a lagging replica promoted) refuses every state sealed before.
// Returns { 1 | 0 | -1 (other dataset), current run id }.
const CONSUME = `
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if id ~= ARGV[2] then return { -1, id } end
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return { 1, id } end
return { 0, id }`

/** Bound on the Redis calls of requestState redemption, run leases and the clock. */
const REDIS_CALL_MS = 2000

/**
 * Single use of requestState: a nonce redeemed with SET NX in Redis (shared by the replicas) and
 * bound to Redis's run id (see CONSUME), else in memory (one process: STATE_SECRET needs Redis).
 */
async function nonceStore (app: FastifyInstance): Promise<NonceStore> {
  const redis = app.redis?.client
  if (redis === undefined) return new MemoryNonceStore()
  let dataset: string | undefined
  const refresh = async (): Promise<void> => {
    const info = await bounded(redis.info('server'), REDIS_CALL_MS, 'Redis run id')
    dataset = /run_id:(\w+)/.exec(info)?.[1]
  }
  await refresh().catch(logFailure(app.log, 'reading the Redis run id failed; requestStates are refused until it is known'))
  const onReady = (): void => { refresh().catch(logFailure(app.log, 'reading the Redis run id failed')) }
  redis.on('ready', onReady)
  app.addHook('onClose', async () => { redis.off('ready', onReady) })
  return {
    dataset: () => dataset,
    async consume (nonce, ttlMs, who) {
      const [ok, id] = await bounded(redis.eval(CONSUME, 1, redisKeys.nonce(nonce), ttlMs, who?.dataset ?? '') as Promise<[number, string]>, REDIS_CALL_MS, 'requestState redemption')
      dataset = id
      return ok === 1
    }
  }
}

/**
 * Redis's clock as seen from this process (local clock + measured offset, re-measured on every
 * reconnect and each minute), so requestState expiry set on one replica and checked on another
 * never compares two replicas' clocks.
 */
async function sharedClock (app: FastifyInstance): Promise<() => number> {
  const redis = app.redis?.client
  if (redis === undefined) return Date.now
  let offset = 0
  const sync = async (): Promise<void> => {
    const before = Date.now()
    const [sec, usec] = await bounded(redis.time(), REDIS_CALL_MS, 'Redis TIME')
    const after = Date.now()
    offset = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - Math.round((before + after) / 2)
  }
  await sync().catch(logFailure(app.log, 'reading the Redis clock failed; using the local clock until it answers'))
  const onReady = (): void => { sync().catch(logFailure(app.log, 'reading the Redis clock failed')) }
  redis.on('ready', onReady)
  const timer = setInterval(onReady, 60_000)
  timer.unref()
  app.addHook('onClose', async () => { redis.off('ready', onReady); clearInterval(timer) })
  return () => Date.now() + offset
}

/**
 * Session requests whose response became a stream, across replicas (Redis only). The runner holds
 * a lease on the stream (src/mcp/leases.ts: RUN_LEASE_MS, renewed every RUN_RENEW_MS) and marks
 * it done after the response; a replica serving a resumed stream of it watches the lease, and when
 * the runner died appends a JSON-RPC error for the request and ends the stream.
 */
export interface RequestRuns {
  /** Takes the lease for request `id` of session `sid` answering on stream `streamKey`; returns the release to call after the response. */
  hold (sid: string, id: RequestId, streamKey: string): Promise<() => Promise<void>>
  /** Watches the runner of a resumed request stream; returns the stop function. */
  watch (streamKey: string): () => void
}

/** What a resumed stream says when its runner died. */
export const RUNNER_DIED = 'The server running this request stopped before it answered; retry the request'

/**
 * Scale-out bookkeeping in Redis: which replica awaits a server→client request's answer and
 * which runs a session request (only once it has run TRACK_RUNNING_AFTER_MS: quick ones are not
 * worth a round trip, and a cancel that arrives after the answer has nothing to do anyway).
 */
function redisTracker (redis: Redis, replica: string, leases: RunLeases, cancel: (sid: string, id: RequestId) => void): ScaleOutTracker {
  return {
    async awaiting (sid, id, ttlMs) { await redis.set(awaitKey(sid, id), replica, 'PX', ttlMs) },
    settled (sid, id) { redis.del(awaitKey(sid, id)).catch(ignore('the await key expires with its TTL')) },
    running (sid, id) {
      if (String(id).length > MAX_TRACKED_ID) return () => {}
      // A lease (RUN_LEASE_MS, renewed): a dead runner is named for seconds, not a minute.
      let release: Promise<(() => Promise<void>) | undefined> | undefined
      const timer = setTimeout(() => {
        // Guarded by the session's record: a session ended anywhere stops this run within one
        // renewal, even if the end-of-session message between replicas was lost.
        release = leases.hold(runKey(sid, id), () => { cancel(sid, id) }, [], 0, redisKeys.session(sid)).catch((): undefined => undefined)
      }, TRACK_RUNNING_AFTER_MS)
      timer.unref()
      return () => {
        clearTimeout(timer)
        release?.then(async (r) => { await r?.() }).catch(ignore('the run key lapses with its lease'))
      }
    }
  }
}

// Claims an awaited answer: the replica that awaits it, deleting the key so one answer is relayed once.
const CLAIM = `
local r = redis.call('GET', KEYS[1])
if r then redis.call('DEL', KEYS[1]) end
return r`

/** RequestRuns on Redis: leases through RunLeases, watches through watchRun, errors through the hub (the log). */
function requestRuns (app: FastifyInstance, redis: Redis, leases: RunLeases, server: McpServer): RequestRuns {
  const keepMs = app.config.sessionIdleTimeoutMs
  return {
    async hold (sid, id, streamKey) {
      const release = await leases.hold(redisKeys.streamRunner(streamKey), () => { server.cancel(sid, id, 'another replica declared this run dead') },
        [[redisKeys.streamRequest(streamKey), JSON.stringify(id)]], keepMs)
      return async () => { await release(RUN_DONE, keepMs) }
    },
    watch (streamKey) {
      return watchRun(redis, redisKeys.streamRunner(streamKey), redisKeys.streamRequest(streamKey), (id) => {
        const error = errorResponse(id, ErrorCode.InternalError, RUNNER_DIED)
        app.hub.publish(streamKey, { event: 'message', data: JSON.stringify(error) })
          .then(async () => { await app.hub.end(streamKey) })
          .catch(logFailure(app.log, 'ending the stream of a request whose runner died failed'))
      })
    }
  }
}

export interface McpPluginOptions {
  /** Registers the demo tools, resource and prompt (src/tools/builtin.ts); default true. */
  builtins?: boolean
}

/** The MCP server as `app.mcp`: registration API, catalog, sessions, observers. */
const mcpPlugin: FastifyPluginAsync<McpPluginOptions> = async (app, opts) => {
  const sessions = sessionStore(app)
  const replica = randomBytes(9).toString('base64url')
  const redis = app.redis?.client
  const leases = redis === undefined ? undefined : new RunLeases(redis, replica)
  const server = new McpServer({
    name: SERVER_NAME,
    version: SERVER_VERSION,
    title: 'SSE MCP Server',
    sessions,
    maxInflightPerSession: app.config.maxInflightPerSession,
    toolTimeoutMs: app.config.toolTimeoutMs,
    clientInfoBytes: app.config.budgets.clientInfoBytes,
    warn: (fields, message) => { app.log.warn(fields, message) },
    maxSubscriptionsPerSession: app.config.budgets.subscriptionsPerSession,
    maxUriBytes: app.config.budgets.uriBytes,
    tracker: redis === undefined || leases === undefined ? undefined : redisTracker(redis, replica, leases, (sid, id) => { server.cancel(sid, id, 'the session ended, or another replica declared this run dead') }),
    notify: async (session, message) => {
      await app.hub.publish(sessionStreamKey(session), { event: 'message', data: JSON.stringify(message) })
    }
  })
  const ledger = new SessionLedger(
    new Quota('MAX_SESSIONS_PER_CLIENT', app.config.budgets.sessionsPerClient),
    async (id) => await sessions.get(id) !== undefined,
    redis === undefined ? undefined : new RedisSessionUnits(redis)
  )
  /**
   * Ends a session on every path (DELETE, idle eviction, HTTP+SSE stream close): its calls running
   * here are aborted, its record goes, and so does every hub key it owns (session stream, HTTP+SSE
   * ring, request streams, broadcast target) and its unit of the client's session quota.
   */
  const endSession = async (id: string, reason: string): Promise<void> => {
    server.cancelSession(id, reason)
    const keys = [...sessionOwnedStreams(id), ...ledger.end(id)]
    await Promise.all([
      // Its calls running on other replicas stop too (each replica forgets the request streams it knows).
      bounded(publish(CONTROL_CHANNEL, { t: 'end', from: replica, sid: id, reason: cap(reason, 200) }), REDIS_CALL_MS, 'session end relay').catch(logFailure(app.log, 'telling the other replicas a session ended failed')),
      sessions.delete(id).catch(logFailure(app.log, 'deleting a session record failed')),
      ...keys.map(async (key) => { await app.hub.forget(key).catch(logFailure(app.log, 'forgetting a session stream failed')) })
    ])
  }
  /** A session ended on another replica: its calls running here stop, and the request streams this replica knows go. */
  const endedElsewhere = (id: string, reason: string): void => {
    server.cancelSession(id, reason)
    for (const key of ledger.end(id)) app.hub.forget(key).catch(logFailure(app.log, 'forgetting a session stream failed'))
  }
  sessions.onEvict((id) => { endSession(id, 'session evicted for idleness').catch(logFailure(app.log, 'ending an idle session failed')) })
  if (opts.builtins !== false) registerBuiltins(server, app.lifecycle.startedAt)
  if (app.config.fixtures === 'conformance') registerConformanceFixtures(server)
  const bus = app.redis?.bus
  const publish = async (channel: string, c: Directed | Broadcast): Promise<void> => { await bus?.publish(channel, JSON.stringify(c)) }
  const relay: Relay = {
    async response (sid, msg) {
      if (redis === undefined) return
      const payload = JSON.stringify({ t: 'response', sid, msg } satisfies Directed)
      if (Buffer.byteLength(payload) > MAX_RELAY_BYTES) return
      const owner = await redis.eval(CLAIM, 1, awaitKey(sid, msg.id ?? 'null')) as string | null
      if (owner === null || owner === replica) return
      await bus?.publish(replicaChannel(owner), payload)
    },
    async cancel (sid, id, reason) {
      if (redis === undefined || String(id).length > MAX_TRACKED_ID) return
      const owner = await redis.get(runKey(sid, id))
      if (owner === null || owner === replica) return
      await publish(replicaChannel(owner), { t: 'cancel', sid, id, reason: reason === undefined ? undefined : cap(reason, 200) })
    }
  }
  const listeners = new ListenStreams()
  // A change reaches this process's listen streams at once and the other replicas' through the bus.
  const changed = async (change: Change): Promise<void> => {
    await Promise.all([listeners.deliver(change), publish(CONTROL_CHANNEL, { t: 'change', from: replica, change })])
  }
  // Registry changes are local: in Redis mode the registry is locked once ready (below), so a
  // replica's start-up registrations are never announced to the others' listen streams.
  server.registry.onChange((kind) => { listeners.deliver({ kind }).catch(logFailure(app.log, 'list change delivery failed')) })
  if (bus !== undefined) {
    const offChanges = await bus.subscribe(CONTROL_CHANNEL, (payload) => {
      try {
        const c = JSON.parse(payload) as Broadcast
        if (c.from === replica) return
        if (c.t === 'change') listeners.deliver(c.change).catch(logFailure(app.log, 'change delivery from another replica failed'))
        else if (c.t === 'end') endedElsewhere(c.sid, c.reason)
      } catch {}
    })
    const offDirected = await bus.subscribe(replicaChannel(replica), (payload) => {
      try {
        const c = JSON.parse(payload) as Directed
        if (c.t === 'response') server.response(c.msg, c.sid)
        else if (c.t === 'cancel') server.cancel(c.sid, c.id, c.reason)
      } catch {}
    })
    app.addHook('onClose', async () => { await Promise.all([offChanges(), offDirected()]) })
    // Handlers cannot cross processes: registrations happen on every replica before ready.
    app.addHook('onReady', async () => {
      server.registry.lock('with REDIS_URL every replica must serve the same tools, resources and prompts; register them at start-up on every replica (before the app is ready)')
    })
  }
  const stateCodec = new RequestStateCodec(await stateSecret(app), {
    ttlMs: app.config.stateTtlMs, maxBytes: app.config.budgets.stateBytes, nonces: await nonceStore(app), now: await sharedClock(app)
  })
  const modern = new StatelessEngine(server, {
    serverInfo: { name: SERVER_NAME, version: SERVER_VERSION, title: 'SSE MCP Server' },
    codec: stateCodec,
    listTtlMs: app.config.cacheTtlMs,
    readTtlMs: 0,
    privateReads: app.config.authTokens.length > 0 || app.config.oauth !== undefined
  })
  const statelessInflight = clientBudget('MAX_INFLIGHT_PER_CLIENT', app.config.budgets.inflightPerClient, redis)
  const runs = redis === undefined || leases === undefined ? undefined : requestRuns(app, redis, leases, server)
  app.decorate('mcp', createMcp(server, modern, listeners, changed, relay, { ledger, statelessInflight, stateCodec, endSession, runs }))
  // SIGTERM: in-flight calls may finish (their streams stay open) until the drain deadline.
  app.lifecycle.onDrain(async () => { await listeners.endAll() })
  app.lifecycle.onDrain(async (deadline) => {
    while (server.inflight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  })
  app.addHook('preClose', async () => { server.close() })
  app.addHook('onClose', async () => {
    ledger.clear()
    statelessInflight.close()
    leases?.close()
    await sessions.close()
  })
}

export default fp(mcpPlugin, { name: 'mcp', dependencies: ['config', 'lifecycle', 'redis', 'sse-hub'] })
