import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { refuse } from '../src/http-error.js'
import { clientOf } from './auth.js'
import { StoreUnavailableError, bounded } from '../src/budget.js'
import { redisKeys } from '../src/mcp/keys.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Counts one request against RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_MS for its caller and answers
     * 429 + Retry-After when over; null when rate limiting is off. Called by plugins/policy.ts after
     * auth, so the caller is the auth identity when there is one, else the client IP.
     */
    limitRequest: ((request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>) | null
  }
}

/**
 * Rate limiting per caller: the auth identity when there is one, else the client IP (behind nginx,
 * with TRUST_PROXY, the real client's). @fastify/rate-limit's store is an LRU of bounded size, or
 * with REDIS_URL its Redis store (shared by the replicas; 503 + Retry-After when Redis does not
 * answer within 2 s); it
 * runs for no route by itself (global: false): the policy hook applies it by the route's policy.
 * A long-lived stream counts once, when it opens.
 */
const rateLimitPlugin: FastifyPluginAsync = async (app) => {
  const { rateLimitMax, rateLimitWindowMs } = app.config
  if (rateLimitMax === 0) {
    app.decorate('limitRequest', null)
    return
  }
  // With REDIS_URL the counters live in Redis (one window per client across every replica).
  const redis = app.redis?.client
  await app.register(rateLimit, {
    global: false,
    max: rateLimitMax,
    timeWindow: rateLimitWindowMs,
    ...(redis === undefined ? {} : { redis, nameSpace: redisKeys.rateLimit })
  })
  // max and window given here too: a host's own @fastify/rate-limit registered first owns createRateLimit.
  const check = app.createRateLimit({ keyGenerator: clientOf, max: rateLimitMax, timeWindow: rateLimitWindowMs })
  app.decorate('limitRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    let result
    try {
      // Bounded: a Redis that does not answer makes a 503, never a request that waits.
      result = await bounded(check(request), 2000, 'rate limit')
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err
      return await refuse(reply, 503, err.message, { retryAfter: err.retryAfterSeconds })
    }
    if (result.isAllowed || !result.isExceeded) return undefined
    return await refuse(reply, 429, `Rate limit exceeded: ${result.max} requests per ${Math.round(result.timeWindow / 1000)} s; retry later`, { retryAfter: result.ttlInSeconds })
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', dependencies: ['config'] })
