import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { hostAllowed, originAllowed } from '../src/config.js'

/** Paths that carry MCP traffic and so need DNS-rebinding protection. */
const GUARDED = /^\/(mcp|sse|messages|broadcast)(\/|\?|$)/

/**
 * DNS-rebinding protection (MCP spec, Streamable HTTP "Security Warning"): a browser Origin not on
 * ALLOWED_ORIGINS, or a Host header not on ALLOWED_HOSTS, gets 403 before anything else runs.
 */
const originGuard: FastifyPluginAsync = async (app) => {
  const { allowedOrigins, allowedHosts } = app.config
  app.addHook('onRequest', async (request, reply) => {
    if (!GUARDED.test(request.url)) return
    const origin = request.headers.origin
    if (origin !== undefined && !originAllowed(origin, allowedOrigins)) {
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `Origin ${origin} is not allowed` })
    }
    // request.host honours X-Forwarded-Host when TRUST_PROXY is on (behind nginx).
    const host = request.host
    if (!hostAllowed(host, allowedHosts)) {
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `Host ${host} is not allowed` })
    }
  })
}

export default fp(originGuard, { name: 'origin-guard', dependencies: ['config'] })
