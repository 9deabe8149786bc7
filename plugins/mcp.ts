import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { McpServer } from '../src/mcp/server.js'
import type { SessionStore } from '../src/mcp/sessions/store.js'
import { MemorySessionStore } from '../src/mcp/sessions/memory.js'
import { RedisSessionStore, RedisSessionUnits } from '../src/mcp/sessions/redis.js'
import { SessionLedger } from '../src/mcp/sessions/ledger.js'
import { Quota, clientBudget } from '../src/budget.js'
import { ConfigError, STATE_SECRET_NEEDS_REDIS } from '../src/config.js'
import { registerBuiltins } from '../src/tools/builtin.js'
import { registerConformanceFixtures } from '../src/tools/conformance.js'
import { SERVER_NAME } from '../src/meta.js'
import { ListenStreams, StatelessEngine, type Change } from '../src/mcp/stateless.js'
import { RequestStateCodec } from '../src/mcp/mrtr.js'
import { sessionOwnedStreams, sessionStreamKey } from '../src/mcp/keys.js'
import { ScaleOut, changeFeed, nonceStore, sharedClock, stateSecret } from '../src/mcp/scale-out.js'
import { kEngine, publicApi, type McpEngine } from '../src/mcp/engine.js'
import type { McpPluginOptions } from '../src/mcp/api.js'
import { logFailure } from '../src/ignore.js'
import { registeringFrom } from '../src/mcp/registry.js'

/** Where sessions live: in memory by default, in Redis when scaled out. */
function sessionStore (app: FastifyInstance): SessionStore {
  return app.redis === null
    ? new MemorySessionStore(app.config.sessionIdleTimeoutMs)
    : new RedisSessionStore(app.redis.client, app.config.sessionIdleTimeoutMs)
}

/**
 * The MCP server: `app.mcp` (the public API, src/mcp/api.ts) and the engine the routes use
 * (`app[kEngine]`, src/mcp/engine.ts). Wiring only: the protocol is in src/mcp/server.ts and
 * stateless.ts, sessions in src/mcp/sessions/, cross-replica coordination in src/mcp/scale-out.ts.
 */
const mcpPlugin: FastifyPluginAsync<McpPluginOptions & { privateReads?: boolean }> = async (app, opts) => {
  const config = app.config
  if (config.stateSecret !== undefined && app.redis === null) throw new ConfigError(`Invalid configuration: STATE_SECRET ${STATE_SECRET_NEEDS_REDIS}`)
  const sessions = sessionStore(app)
  const redis = app.redis?.client
  const scaleOut = app.redis === null ? undefined : new ScaleOut(app.redis.client, app.redis.bus, app.log)
  // SERVER_NAME / SERVER_VERSION / SERVER_INSTRUCTIONS (or the plugin's options): who this server says it is.
  const serverInfo = {
    name: config.serverName,
    version: config.serverVersion,
    ...(config.serverName === SERVER_NAME ? { title: 'SSE MCP Server' } : {})
  }
  const instructions = config.serverInstructions
  const server = new McpServer({
    ...serverInfo,
    ...(instructions === undefined ? {} : { instructions }),
    sessions,
    maxInflightPerSession: config.maxInflightPerSession,
    toolTimeoutMs: config.toolTimeoutMs,
    clientInfoBytes: config.budgets.clientInfoBytes,
    warn: (fields, message) => { app.log.warn(fields, message) },
    log: app.log,
    maxSubscriptionsPerSession: config.budgets.subscriptionsPerSession,
    maxUriBytes: config.budgets.uriBytes,
    countRefusal: (budget) => { app.budgetRefusals.count(budget) },
    tracker: scaleOut?.tracker((sid, id) => { server.cancel(sid, id, 'the session ended, or another replica declared this run dead') }),
    notify: async (session, message) => {
      await app.hub.publish(sessionStreamKey(session), { event: 'message', data: JSON.stringify(message) })
    }
  })
  const ledger = new SessionLedger(
    new Quota('MAX_SESSIONS_PER_CLIENT', config.budgets.sessionsPerClient, app.budgetRefusals.counter('sessions_per_client')),
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
      scaleOut?.ended(id, reason),
      sessions.delete(id).catch(logFailure(app.log, 'deleting a session record failed')),
      ...keys.map(async (key) => { await app.hub.forget(key).catch(logFailure(app.log, 'forgetting a session stream failed')) })
    ])
  }
  sessions.onEvict((id) => { endSession(id, 'session evicted for idleness').catch(logFailure(app.log, 'ending an idle session failed')) })
  if (opts.builtins === true) await registeringFrom('the built-in tools (builtins)', () => { registerBuiltins(server, app.lifecycle.startedAt) })
  if (config.fixtures === 'conformance') await registeringFrom('the conformance fixtures (MCP_FIXTURES)', () => { registerConformanceFixtures(server) })

  const listeners = new ListenStreams()
  // One process: a change reaches the listen streams at once. With Redis it goes through the log
  // (one shared key every replica follows through the hub): this replica's streams get it from there too.
  const feed = scaleOut === undefined ? undefined : changeFeed(app.hub, listeners, app.log)
  const changed = feed?.changed ?? (async (change: Change): Promise<void> => { await listeners.deliver(change) })
  if (feed !== undefined) app.addHook('onClose', async () => { feed.stop() })
  // Registry changes are local: in Redis mode the registry is locked once ready (below), so a
  // replica's start-up registrations are never announced to the others' listen streams.
  server.registry.onChange((kind) => { listeners.deliver({ kind }).catch(logFailure(app.log, 'list change delivery failed')) })
  if (scaleOut !== undefined) {
    const off = await scaleOut.listen({
      // A session ended on another replica: its calls running here stop, and the request streams this replica knows go.
      ended: (sid, reason) => {
        server.cancelSession(sid, reason)
        for (const key of ledger.end(sid)) app.hub.forget(key).catch(logFailure(app.log, 'forgetting a session stream failed'))
      },
      response: (msg, sid) => { server.response(msg, sid) },
      cancel: (sid, id, reason) => { server.cancel(sid, id, reason) }
    })
    app.addHook('onClose', off)
    // Handlers cannot cross processes: registrations happen on every replica before ready.
    app.addHook('onReady', async () => {
      server.registry.lock('with REDIS_URL every replica must serve the same tools, resources and prompts; register them at start-up on every replica (before the app is ready)')
    })
  }
  const onClose = (fn: () => Promise<void>): void => { app.addHook('onClose', fn) }
  const stateCodec = new RequestStateCodec(await stateSecret(config.stateSecret, redis, app.log, onClose), {
    ttlMs: config.stateTtlMs,
    maxBytes: config.budgets.stateBytes,
    countRefusal: app.budgetRefusals.counter('state_bytes'),
    nonces: await nonceStore(redis, app.log, onClose),
    now: await sharedClock(redis, app.log, onClose)
  })
  const stateless = new StatelessEngine(server, {
    serverInfo,
    ...(instructions === undefined ? {} : { instructions }),
    codec: stateCodec,
    listTtlMs: config.cacheTtlMs,
    readTtlMs: 0,
    privateReads: config.authTokens.length > 0 || config.oauth !== undefined || opts.privateReads === true
  })
  const statelessInflight = clientBudget('MAX_INFLIGHT_PER_CLIENT', config.budgets.inflightPerClient, redis, app.budgetRefusals.counter('inflight_per_client'))
  const engine: McpEngine = {
    server,
    stateless,
    listeners,
    changed,
    sessions,
    ledger,
    statelessInflight,
    runs: scaleOut?.requestRuns(server, app.hub, config.sessionIdleTimeoutMs),
    stateCodec,
    endSession,
    async receive (msg, session) {
      if ('method' in msg) {
        await server.notification(msg, session)
        const id = msg.params?.requestId
        if (msg.method === 'notifications/cancelled' && (typeof id === 'string' || typeof id === 'number') && !server.cancel(session.id, id)) {
          await scaleOut?.relayCancel(session.id, id, typeof msg.params?.reason === 'string' ? msg.params.reason : undefined)
        }
      } else if (!server.response(msg, session.id)) {
        await scaleOut?.relayResponse(session.id, msg)
      }
    },
    stats: () => ({ sessions: server.sessions.size })
  }
  app.decorate(kEngine, engine)
  app.decorate('mcp', publicApi(engine, async (event, data) => {
    await Promise.all([app.hub.broadcast(event, data), changed({ kind: 'broadcast', event, data })])
  }))
  // SIGTERM: in-flight calls may finish (their streams stay open) until the drain deadline.
  app.lifecycle.onDrain(async () => { await listeners.endAll() })
  app.lifecycle.onDrain(async (deadline) => {
    while (server.inflight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  })
  app.addHook('preClose', async () => { server.close() })
  app.addHook('onClose', async () => {
    ledger.clear()
    statelessInflight.close()
    scaleOut?.close()
    await sessions.close()
  })
}

export default fp(mcpPlugin, { name: 'mcp', dependencies: ['config', 'lifecycle', 'budgets', 'redis', 'sse-hub'] })
