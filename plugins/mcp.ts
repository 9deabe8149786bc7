import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { McpServer, type McpObserver } from '../src/mcp/server.js'
import { MemorySessionStore, SessionLedger, type SessionRecord, type SessionStore } from '../src/mcp/session.js'
import { Quota } from '../src/budget.js'
import { RedisSessionStore } from '../src/mcp/redis-sessions.js'
import type { JsonRpcNotification, JsonRpcResponse, RequestId } from '../src/mcp/jsonrpc.js'
import type { AnySchema, PromptDefinition, ResourceDefinition, ResourceTemplateDefinition, ToolDefinition } from '../src/mcp/registry.js'
import { registerBuiltins } from '../src/tools/builtin.js'
import { registerConformanceFixtures } from '../src/tools/conformance.js'
import { SERVER_NAME, SERVER_VERSION } from '../src/meta.js'
import { ListenStreams, ModernEngine, type Change } from '../src/mcp/modern.js'
import { RequestStateCodec } from '../src/mcp/mrtr.js'
import { randomBytes } from 'node:crypto'

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
  return session.transport === 'legacy' ? `l:${session.id}` : `s:${session.id}:g`
}

/** Messages between replicas about work in flight: responses to our requests, cancellations. */
type Control =
  | { t: 'response', sid: string, msg: JsonRpcResponse }
  | { t: 'cancel', sid: string, id: RequestId, reason?: string }
  | { t: 'change', from: string, change: Change }
const CONTROL_CHANNEL = 'mcp:control'
const STATE_SECRET_KEY = 'mcp:state-secret'

/** What a client holds besides its streams (README "Resource budgets"), and how a session ends. */
interface SessionBudgets {
  /** MAX_SESSIONS_PER_CLIENT units and each session's request stream keys. */
  ledger: SessionLedger
  /** MAX_INFLIGHT_PER_CLIENT: stateless requests running per client. */
  statelessInflight: Quota
  endSession: (id: string, reason: string) => Promise<void>
}

function createMcp (server: McpServer, modern: ModernEngine, listeners: ListenStreams, changed: (c: Change) => Promise<void>, relay: (c: Control) => Promise<void>, budgets: SessionBudgets) {
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
     * reach the replica where the request runs, wherever the client's POST landed.
     */
    async receive (msg: JsonRpcResponse | JsonRpcNotification, session: SessionRecord): Promise<void> {
      if ('method' in msg) {
        await server.notification(msg, session)
        const id = msg.params?.requestId
        if (msg.method === 'notifications/cancelled' && (typeof id === 'string' || typeof id === 'number') && !server.cancel(session.id, id)) {
          await relay({ t: 'cancel', sid: session.id, id, reason: typeof msg.params?.reason === 'string' ? msg.params.reason : undefined })
        }
      } else if (!server.response(msg, session.id)) {
        await relay({ t: 'response', sid: session.id, msg })
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

/**
 * The MRTR requestState key: STATE_SECRET when set; else one random key shared by every replica
 * through Redis (first one wins); else random for this process (one replica needs no sharing).
 */
async function stateSecret (app: FastifyInstance): Promise<Buffer> {
  if (app.config.stateSecret !== undefined) return Buffer.from(app.config.stateSecret, 'utf8')
  if (app.redis === null) return randomBytes(32)
  await app.redis.client.set(STATE_SECRET_KEY, randomBytes(32).toString('base64'), 'NX')
  const shared = await app.redis.client.get(STATE_SECRET_KEY)
  if (shared === null) throw new Error('Redis lost the shared requestState key')
  return Buffer.from(shared, 'base64')
}

/** The MCP server as `app.mcp`: registration API, catalog, sessions, observers. */
const mcpPlugin: FastifyPluginAsync = async (app) => {
  const sessions = sessionStore(app)
  const server = new McpServer({
    name: SERVER_NAME,
    version: SERVER_VERSION,
    title: 'SSE MCP Server',
    sessions,
    maxInflightPerSession: app.config.maxInflightPerSession,
    toolTimeoutMs: app.config.toolTimeoutMs,
    clientInfoBytes: app.config.budgets.clientInfoBytes,
    warn: (fields, message) => { app.log.warn(fields, message) },
    notify: async (session, message) => {
      await app.hub.publish(sessionStreamKey(session), { event: 'message', data: JSON.stringify(message) })
    }
  })
  const ledger = new SessionLedger(
    new Quota('MAX_SESSIONS_PER_CLIENT', app.config.budgets.sessionsPerClient),
    async (id) => await sessions.get(id) !== undefined
  )
  /**
   * Ends a session on every path (DELETE, idle eviction, legacy stream close): its calls running
   * here are aborted, its record goes, and so does every hub key it owns (session stream, legacy
   * ring, request streams, broadcast target) and its unit of the client's session quota.
   */
  const endSession = async (id: string, reason: string): Promise<void> => {
    server.cancelSession(id, reason)
    const keys = [`s:${id}:g`, `l:${id}`, ...ledger.end(id)]
    await Promise.all([
      sessions.delete(id).catch(() => false),
      ...keys.map(async (key) => { await app.hub.forget(key).catch(() => {}) })
    ])
  }
  sessions.onEvict((id) => { endSession(id, 'session evicted for idleness').catch(() => {}) })
  registerBuiltins(server, app.lifecycle.startedAt)
  if (app.config.fixtures === 'conformance') registerConformanceFixtures(server)
  const bus = app.redis?.bus
  const relay = async (c: Control): Promise<void> => { await bus?.publish(CONTROL_CHANNEL, JSON.stringify(c)) }
  const replica = randomBytes(6).toString('hex')
  const listeners = new ListenStreams()
  // A change reaches this process's listen streams at once and the other replicas' through the bus.
  const changed = async (change: Change): Promise<void> => {
    await Promise.all([listeners.deliver(change), relay({ t: 'change', from: replica, change })])
  }
  server.registry.onChange((kind) => { changed({ kind }).catch(() => {}) })
  if (bus !== undefined) {
    const off = await bus.subscribe(CONTROL_CHANNEL, (payload) => {
      try {
        const c = JSON.parse(payload) as Control
        if (c.t === 'response') server.response(c.msg, c.sid)
        else if (c.t === 'cancel') server.cancel(c.sid, c.id, c.reason)
        else if (c.from !== replica) listeners.deliver(c.change).catch(() => {})
      } catch {}
    })
    app.addHook('onClose', async () => { await off() })
  }
  const modern = new ModernEngine(server, {
    serverInfo: { name: SERVER_NAME, version: SERVER_VERSION, title: 'SSE MCP Server' },
    codec: new RequestStateCodec(await stateSecret(app), app.config.stateTtlMs),
    listTtlMs: app.config.cacheTtlMs,
    readTtlMs: 0,
    privateReads: app.config.authTokens.length > 0 || app.config.oauth !== undefined
  })
  const statelessInflight = new Quota('MAX_INFLIGHT_PER_CLIENT', app.config.budgets.inflightPerClient)
  app.decorate('mcp', createMcp(server, modern, listeners, changed, relay, { ledger, statelessInflight, endSession }))
  // SIGTERM: in-flight calls may finish (their streams stay open) until the drain deadline.
  app.lifecycle.onDrain(async () => { await listeners.endAll() })
  app.lifecycle.onDrain(async (deadline) => {
    while (server.inflight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  })
  app.addHook('preClose', async () => { server.close() })
  app.addHook('onClose', async () => {
    ledger.clear()
    await sessions.close()
  })
}

export default fp(mcpPlugin, { name: 'mcp', dependencies: ['config', 'lifecycle', 'redis', 'sse-hub'] })
