import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { httpError } from '../src/http-error.js'
import { clientOf } from './auth.js'

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
 * with TRUST_PROXY, the real client's). @fastify/rate-limit's store is an LRU of bounded size; it
 * runs for no route by itself (global: false): the policy hook applies it by the route's policy.
 * A long-lived stream counts once, when it opens.
 */
const rateLimitPlugin: FastifyPluginAsync = async (app) => {
  const { rateLimitMax, rateLimitWindowMs } = app.config
  if (rateLimitMax === 0) {
    app.decorate('limitRequest', null)
    return
  }
  await app.register(rateLimit, { global: false, max: rateLimitMax, timeWindow: rateLimitWindowMs })
  const check = app.createRateLimit({ keyGenerator: clientOf })
  app.decorate('limitRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const result = await check(request)
    if (result.isAllowed || !result.isExceeded) return undefined
    return await reply.code(429).header('Retry-After', String(Math.max(1, result.ttlInSeconds))).send(httpError(429, `Rate limit exceeded: ${result.max} requests per ${Math.round(result.timeWindow / 1000)} s; retry later`))
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', dependencies: ['config'] })
