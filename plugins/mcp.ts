import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'

// Placeholder until the MCP core lands (issue 3): the decorator shape other plugins rely on.
function createMcp () {
  return {
    stats () { return { sessions: 0 } }
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
