import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'

// Placeholder until the SSE hub lands (issue 4): the decorator shape other plugins rely on.
function createHub () {
  return {
    stats () { return { streams: 0 } }
  }
}
export type Hub = ReturnType<typeof createHub>

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub
  }
}

const hubPlugin: FastifyPluginAsync = async (app) => {
  app.decorate('hub', createHub())
}

export default fp(hubPlugin, { name: 'sse-hub', dependencies: ['config'] })
