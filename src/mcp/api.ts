import type { AnySchema, Catalog, PromptDefinition, ResourceDefinition, ResourceTemplateDefinition, ToolDefinition } from './registry.js'

/**
 * `app.mcp`: what a tool author uses. Registration, the catalog clients see, change notices and
 * observers; nothing of the engine (sessions, transports, budgets, scale-out), which the routes
 * reach through an internal decorator (src/mcp/engine.ts) that is not part of the package's types.
 */
export interface Mcp {
  /** Registers a tool; its handler's argument type is inferred from a TypeBox or Standard Schema inputSchema. */
  tool<S extends AnySchema, O extends AnySchema = AnySchema> (def: ToolDefinition<S, O>): void
  resource (def: ResourceDefinition): void
  resourceTemplate (def: ResourceTemplateDefinition): void
  /** Registers a prompt; `get`'s argument type is inferred from a TypeBox or Standard Schema argsSchema. */
  prompt<A extends AnySchema = AnySchema> (def: PromptDefinition<A>): void
  /** Removes a tool; false when there was none. */
  removeTool (name: string): boolean
  removeResource (uri: string): boolean
  removePrompt (name: string): boolean
  /** Tells subscribed sessions and listen streams that a resource changed (notifications/resources/updated). */
  resourceUpdated (uri: string): Promise<void>
  /** What clients see in the list methods (the /docs page renders it). */
  catalog (): Catalog
  /** Watches every JSON-RPC call and tool run (metrics use it). */
  observe (observer: McpObserver): void
  /**
   * The hub's broadcast, as POST /broadcast does it: `event: <event>` on every public stream, a
   * `notifications/message` (logger `broadcast`) on every MCP session, on every replica.
   */
  broadcast (event: string, data: unknown): Promise<void>
}

export interface McpObserver {
  rpc?(e: { method: string, outcome: 'ok' | 'error', code?: number, ms: number }): void
  tool?(e: { name: string, ms: number, isError: boolean }): void
}

export interface McpPluginOptions {
  /** Registers the demo tools, resource and prompt (src/tools/builtin.ts); default false (the service's buildApp turns them on). */
  builtins?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The MCP server's public API: tools, resources, prompts, catalog, observers. */
    mcp: Mcp
  }
}
