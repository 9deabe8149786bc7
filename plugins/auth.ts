import fp from 'fastify-plugin'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { createTokenVerifier, type OAuthConfig } from '../src/oauth.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request: a stable, non-secret fingerprint of the token (or JWT subject); null when auth is off. */
    identity: string | null
    /** Scopes granted by an OAuth access token; null for static tokens and when auth is off (no scope checks). */
    scopes: string[] | null
  }
}

/** Routes anyone may call: probes must work without credentials. */
const PUBLIC_PATHS = new Set(['/health', '/ready', '/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp'])

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** `Authorization: Bearer <token>` → token; anything else → undefined. Tokens in the query string are never read. */
export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header !== 'string') return undefined
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header)
  return match?.[1]
}

/** Where the RFC 9728 metadata for `resource` lives (the path-suffixed form). */
export function metadataUrl (oauth: OAuthConfig): string {
  const url = new URL(oauth.resource)
  return `${url.origin}/.well-known/oauth-protected-resource${url.pathname === '/' ? '' : url.pathname}`
}

const fingerprint = (s: string): string => digest(s).subarray(0, 8).toString('hex')

/**
 * Bearer auth, in onRequest (before the body is parsed): static tokens (AUTH_TOKENS) compared as
 * SHA-256 digests with timingSafeEqual against every configured token, so neither length nor
 * position leaks through timing; and/or OAuth 2.1 access tokens (JWTs) checked against a JWKS or a
 * key file, with `aud` = this resource. 401 carries `WWW-Authenticate: Bearer …` (with
 * `resource_metadata` in OAuth mode). Tokens are never read from the query string.
 */
const authPlugin: FastifyPluginAsync = async (app) => {
  app.decorateRequest('identity', null)
  app.decorateRequest('scopes', null)
  const tokens = app.config.authTokens.map((t) => ({ hash: digest(t), id: fingerprint(t) }))
  const oauth = app.config.oauth
  if (tokens.length === 0 && oauth === undefined) return
  const verify = oauth ? createTokenVerifier(oauth) : undefined
  const realm = oauth ? `Bearer resource_metadata="${metadataUrl(oauth)}"` : 'Bearer realm="mcp"'

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
      if (match === null && verify !== undefined && token.split('.').length === 3) {
        try {
          const { subject, scopes } = await verify(token)
          match = `sub:${fingerprint(subject)}`
          request.scopes = scopes
        } catch (err) {
          request.log.info({ reason: err instanceof Error ? err.message : 'invalid' }, 'token rejected')
        }
      }
    }
    if (match === null) {
      const challenge = token === undefined
        ? realm
        : `${realm}, error="invalid_token", error_description="The access token is invalid or expired"`
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
