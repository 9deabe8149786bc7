import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'

// Placeholder until the MCP core lands (issue 3): the decorator shape other plugins rely on.
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
export interface McpObserver {
  rpc?(e: { method: string, outcome: 'ok' | 'error', code?: number, ms: number }): void
  tool?(e: { name: string, ms: number, isError: boolean }): void
}

function createMcp () {
  const observers: McpObserver[] = []
  return {
    stats () { return { sessions: 0 } },
    catalog (): Catalog { return { tools: [], resources: [], resourceTemplates: [], prompts: [] } },
    observe (observer: McpObserver) { observers.push(observer) }
  }
}
export type Mcp = ReturnType<typeof createMcp>

declare module 'fastify' {
  interface FastifyInstance {
    mcp: Mcp
  }
}

const mcpPlugin: FastifyPluginAsync = async (app) => {
  app.decorate('mcp', createMcp())
}

export default fp(mcpPlugin, { name: 'mcp', dependencies: ['config', 'sse-hub'] })
