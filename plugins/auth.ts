import fp from 'fastify-plugin'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request: a stable, non-secret fingerprint of the bearer token; null when auth is off. */
    identity: string | null
  }
}

/** Routes anyone may call: probes must work without credentials. */
const PUBLIC_PATHS = new Set(['/health', '/ready'])

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** `Authorization: Bearer <token>` → token; anything else → undefined. Tokens in the query string are never read. */
export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header !== 'string') return undefined
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header)
  return match?.[1]
}

/**
 * Bearer-token auth (AUTH_TOKENS). Runs in onRequest, before the body is parsed. Tokens are compared
 * as SHA-256 digests with timingSafeEqual against every configured token, so neither the length nor
 * the position of a match leaks through timing.
 */
const authPlugin: FastifyPluginAsync = async (app) => {
  app.decorateRequest('identity', null)
  const tokens = app.config.authTokens.map((t) => ({ hash: digest(t), id: digest(t).subarray(0, 8).toString('hex') }))
  if (tokens.length === 0) return

  // METRICS_PUBLIC=true lets a scraper read /metrics without a token.
  const publicPaths = app.config.metricsPublic ? new Set([...PUBLIC_PATHS, '/metrics']) : PUBLIC_PATHS
  app.addHook('onRequest', async (request, reply) => {
    if (request.method === 'OPTIONS' || publicPaths.has(request.url.split('?', 1)[0])) return
    const token = bearerToken(request)
    let match: string | null = null
    if (token !== undefined) {
      const candidate = digest(token)
      for (const t of tokens) {
        if (timingSafeEqual(candidate, t.hash)) match = t.id
      }
    }
    if (match === null) {
      const challenge = token === undefined
        ? 'Bearer realm="mcp"'
        : 'Bearer realm="mcp", error="invalid_token", error_description="The access token is invalid"'
      request.log.info({ reason: token === undefined ? 'missing token' : 'invalid token' }, 'unauthorized')
      return reply
        .code(401)
        .header('WWW-Authenticate', challenge)
        .send({ statusCode: 401, error: 'Unauthorized', message: token === undefined ? 'A bearer token is required' : 'The bearer token is invalid' })
    }
    request.identity = match
  })
}

export default fp(authPlugin, { name: 'auth', dependencies: ['config'] })
