import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { McpServer, type McpObserver } from '../src/mcp/server.js'
import { MemorySessionStore, type SessionRecord, type SessionStore } from '../src/mcp/session.js'
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

function createMcp (server: McpServer) {
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
    observe (observer: McpObserver) { server.observe(observer) }
  }
}
export type Mcp = ReturnType<typeof createMcp>

declare module 'fastify' {
  interface FastifyInstance {
    mcp: Mcp
  }
}

/** Where sessions live: in memory by default. */
async function sessionStore (app: Parameters<FastifyPluginAsync>[0]): Promise<SessionStore> {
  // Scale-out: when config.redisUrl is set, the Redis session store is chosen here.
  return new MemorySessionStore(app.config.sessionIdleTimeoutMs)
}

/** The MCP server as `app.mcp`: registration API, catalog, sessions, observers. */
const mcpPlugin: FastifyPluginAsync = async (app) => {
  const sessions = await sessionStore(app)
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
  app.decorate('mcp', createMcp(server))
  // SIGTERM: in-flight calls may finish (their streams stay open) until the drain deadline.
  app.lifecycle.onDrain(async (deadline) => {
    while (server.inflight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  })
  app.addHook('preClose', async () => { server.close() })
  app.addHook('onClose', async () => { await sessions.close() })
}

export default fp(mcpPlugin, { name: 'mcp', dependencies: ['config', 'lifecycle', 'sse-hub'] })
