import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync } from 'fastify'

const EXEMPT = new Set(['/health', '/ready'])

/**
 * Rate limiting (RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS) per caller: the auth identity
 * when there is one, else the client IP (behind nginx, with TRUST_PROXY, the real client's).
 * Over the limit: 429 with Retry-After. A long-lived stream counts once, when it opens.
 */
const rateLimitPlugin: FastifyPluginAsync = async (app) => {
  const { rateLimitMax, rateLimitWindowMs } = app.config
  if (rateLimitMax === 0) return
  await app.register(rateLimit, {
    global: true,
    max: rateLimitMax,
    timeWindow: rateLimitWindowMs,
    hook: 'onRequest',
    keyGenerator: (request) => request.identity ?? request.ip,
    allowList: (request) => request.method === 'OPTIONS' || EXEMPT.has(request.url.split('?', 1)[0]),
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `Rate limit exceeded: ${context.max} requests per ${context.after}; retry later`
    })
  })
}

// Registered after auth, so the limit is per token identity when auth is on.
export default fp(rateLimitPlugin, { name: 'rate-limit', dependencies: ['config', 'auth'] })
