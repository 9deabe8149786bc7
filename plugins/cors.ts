import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { originAllowed } from '../src/config.js'

/** Request headers a browser MCP client sends. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'MCP-Protocol-Version', 'Last-Event-ID',
  'Mcp-Method', 'Mcp-Name'
]
/** Response headers a browser must be allowed to read; without Mcp-Session-Id it loses the session. */
export const CORS_EXPOSED_HEADERS = ['Mcp-Session-Id', 'MCP-Protocol-Version', 'WWW-Authenticate', 'Retry-After']
const CORS_METHODS = 'GET, POST, DELETE, OPTIONS'
/** The policy of the preflight routes this plugin adds: anyone, any origin, not counted. */
const PREFLIGHT_POLICY = { access: 'public', crossOrigin: 'open', rateLimit: false } as const

declare module 'fastify' {
  interface FastifyInstance {
    /** Adds an OPTIONS (preflight) route for every path registered in this scope so far (plugins/cors.ts). */
    corsPreflights: () => void
  }
}

/**
 * CORS for browser clients, driven by ALLOWED_ORIGINS, for this plugin's routes only: an onRequest
 * hook in its encapsulated scope grants an allowed Origin on its responses, and a preflight route
 * per path it serves (`corsPreflights()` once its routes are in) answers OPTIONS — never a global
 * `OPTIONS *`, so a host app's own routes and its own CORS plugin stay as they were.
 */
const corsPlugin: FastifyPluginAsync = async (app) => {
  const allowed = app.config.allowedOrigins
  const grant = (request: FastifyRequest, reply: FastifyReply): boolean => {
    const origin = request.headers.origin
    reply.header('Vary', 'Origin')
    if (origin === undefined || !originAllowed(origin, allowed)) return false
    reply.header('Access-Control-Allow-Origin', origin)
    return true
  }
  app.addHook('onRequest', async (request, reply) => {
    if (request.method === 'OPTIONS') return
    if (grant(request, reply)) reply.header('Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS.join(', '))
  })
  const paths = new Set<string>()
  app.addHook('onRoute', (route) => {
    if ([route.method].flat().includes('OPTIONS')) return
    paths.add(route.url ?? route.path)
  })
  app.decorate('corsPreflights', () => {
    for (const url of [...paths]) {
      paths.delete(url)
      app.options(url, { config: { policy: PREFLIGHT_POLICY } }, async (request, reply) => {
        if (grant(request, reply)) {
          reply.header('Access-Control-Allow-Methods', CORS_METHODS)
          reply.header('Access-Control-Allow-Headers', CORS_ALLOWED_HEADERS.join(', '))
          reply.header('Access-Control-Max-Age', '86400')
        }
        return await reply.code(204).send()
      })
    }
  })
}

export default fp(corsPlugin, { name: 'cors', dependencies: ['config'] })
