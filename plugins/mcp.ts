import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { McpServer, type McpObserver } from '../src/mcp/server.js'
import { MemorySessionStore, type SessionRecord, type SessionStore } from '../src/mcp/session.js'
import { RedisSessionStore } from '../src/mcp/redis-sessions.js'
import type { JsonRpcNotification, JsonRpcResponse, RequestId } from '../src/mcp/jsonrpc.js'
import type { PromptDefinition, ResourceDefinition, ResourceTemplateDefinition, ToolDefinition } from '../src/mcp/registry.js'
import { registerBuiltins } from '../src/tools/builtin.js'
import { registerConformanceFixtures } from '../src/tools/conformance.js'
import { SERVER_NAME, SERVER_VERSION } from '../src/meta.js'

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
const CONTROL_CHANNEL = 'mcp:control'

function createMcp (server: McpServer, relay: (c: Control) => Promise<void>) {
  return {
    /** The protocol engine (the transports use it). */
    server,
    sessions: server.sessions,
    /** Registers a tool; its handler's argument type is inferred from the TypeBox inputSchema. */
    tool<S extends TSchema> (def: ToolDefinition<S>) { server.tool(def) },
    resource (def: ResourceDefinition) { server.resource(def) },
    resourceTemplate (def: ResourceTemplateDefinition) { server.resourceTemplate(def) },
    prompt (def: PromptDefinition) { server.prompt(def) },
    removeTool (name: string) { return server.registry.removeTool(name) },
    removeResource (uri: string) { return server.registry.removeResource(uri) },
    removePrompt (name: string) { return server.registry.removePrompt(name) },
    /** Tells subscribed sessions that a resource changed (notifications/resources/updated). */
    async resourceUpdated (uri: string) { await server.resourceUpdated(uri) },
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
    notify: async (session, message) => {
      await app.hub.publish(sessionStreamKey(session), { event: 'message', data: JSON.stringify(message) })
    }
  })
  sessions.onEvict((id) => {
    for (const key of [`s:${id}:g`, `l:${id}`]) app.hub.forget(key).catch(() => {})
  })
  registerBuiltins(server, app.lifecycle.startedAt)
  if (app.config.fixtures === 'conformance') registerConformanceFixtures(server)
  const bus = app.redis?.bus
  const relay = async (c: Control): Promise<void> => { await bus?.publish(CONTROL_CHANNEL, JSON.stringify(c)) }
  if (bus !== undefined) {
    const off = await bus.subscribe(CONTROL_CHANNEL, (payload) => {
      try {
        const c = JSON.parse(payload) as Control
        if (c.t === 'response') server.response(c.msg, c.sid)
        else server.cancel(c.sid, c.id, c.reason)
      } catch {}
    })
    app.addHook('onClose', async () => { await off() })
  }
  app.decorate('mcp', createMcp(server, relay))
  // SIGTERM: in-flight calls may finish (their streams stay open) until the drain deadline.
  app.lifecycle.onDrain(async (deadline) => {
    while (server.inflight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  })
  app.addHook('preClose', async () => { server.close() })
  app.addHook('onClose', async () => { await sessions.close() })
}

export default fp(mcpPlugin, { name: 'mcp', dependencies: ['config', 'lifecycle', 'redis', 'sse-hub'] })
