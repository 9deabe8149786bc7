import fp from 'fastify-plugin'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { Config } from '../src/config.js'
import { createTokenVerifier, type OAuthConfig } from '../src/oauth.js'
import type { AuthInfo } from '../src/mcp/context.js'
import type { Authenticate } from '../src/plugin.js'

export type Role = 'client' | 'operator'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request: a stable, non-secret fingerprint of the token (or JWT subject); null when auth is off. */
    identity: string | null
    /** Scopes granted by an OAuth access token; null for static tokens and when auth is off (no scope checks). */
    scopes: string[] | null
    /** The caller's role once authenticated; null when auth is off or the route is public. */
    role: Role | null
    /** Who called (handlers' `ctx.auth`); null when auth is off or the route is public. */
    authInfo: AuthInfo | null
  }
  interface FastifyInstance {
    /** Bearer authentication; plugins/policy.ts decides when it runs (by the route's declared policy). */
    auth: Authenticator
  }
}

export type AuthOutcome =
  | { ok: true, identity: string, role: Role, scopes: string[] | null, auth: AuthInfo }
  | { ok: false, reason: 'missing' | 'invalid' }

export interface Authenticator {
  /** True when any credential is configured (AUTH_TOKENS, OPERATOR_TOKENS or OAuth). */
  readonly enabled: boolean
  /** Checks the request's bearer token (never the query string). */
  authenticate: (request: FastifyRequest) => Promise<AuthOutcome>
  /** The `WWW-Authenticate` value for a 401. */
  challenge: (reason: 'missing' | 'invalid') => string
  /** The `WWW-Authenticate` value for a 403 on an operator route (OAuth mode: the scope to ask for). */
  operatorChallenge: () => string | undefined
  /** Failed authentications per client IP (AUTH_FAILURE_MAX per RATE_LIMIT_WINDOW_MS). */
  readonly failures: FailureCounter
}

/**
 * Whom a per-client limit counts against (rate limit, budgets): the auth identity, else the client's
 * IP (behind a proxy, with TRUST_PROXY, the real client's). One key for every limit.
 */
export function clientOf (request: FastifyRequest): string {
  return request.identity ?? `ip:${request.ip}`
}

/** Auth is on as soon as any credential is configured: client tokens, operator tokens or OAuth. */
export function authEnabled (config: Pick<Config, 'authTokens' | 'operatorTokens' | 'oauth'>): boolean {
  return config.authTokens.length > 0 || config.operatorTokens.length > 0 || config.oauth !== undefined
}

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

interface StaticToken { hash: Buffer, id: string, role: Role, name: string }

/**
 * One AUTH_TOKENS/OPERATOR_TOKENS entry: `name:token` names it (a token has no `:`), a bare token is
 * `client-<n>` / `operator-<n>` by position. Handlers see the name (`ctx.auth.tokenName`), never the token.
 */
function staticToken (entry: string, role: Role, index: number): StaticToken {
  const colon = entry.indexOf(':')
  const token = colon === -1 ? entry : entry.slice(colon + 1)
  const name = colon === -1 ? `${role}-${index + 1}` : entry.slice(0, colon)
  return { hash: digest(token), id: fingerprint(token), role, name }
}

/**
 * Failed authentications per client IP in fixed windows. Memory is bounded: the map is dropped
 * when its window ends (checked on use, no timer) and holds at most `maxClients` addresses; an
 * address beyond that is not tracked for the rest of the window (`untracked` counts them).
 */
export class FailureCounter {
  readonly #counts = new Map<string, number>()
  #windowStart = 0
  /** Failures not recorded because the map was full (a metric for an attack from many addresses). */
  untracked = 0
  /** Requests refused with 429 because their address was over the limit (a metric). */
  lockouts = 0

  constructor (readonly max: number, readonly windowMs: number, readonly maxClients = 100_000, readonly now: () => number = Date.now) {}

  #roll (): number {
    const now = this.now()
    if (now - this.#windowStart >= this.windowMs) {
      this.#counts.clear()
      this.#windowStart = now
    }
    return now
  }

  /** Seconds to wait when `ip` is over the limit; undefined when it may try. */
  retryAfter (ip: string): number | undefined {
    if (this.max === 0) return undefined
    const now = this.#roll()
    if ((this.#counts.get(ip) ?? 0) < this.max) return undefined
    this.lockouts++
    return Math.max(1, Math.ceil((this.#windowStart + this.windowMs - now) / 1000))
  }

  record (ip: string): void {
    if (this.max === 0) return
    this.#roll()
    const n = this.#counts.get(ip)
    if (n === undefined && this.#counts.size >= this.maxClients) {
      this.untracked++
      return
    }
    this.#counts.set(ip, (n ?? 0) + 1)
  }

  /** Addresses tracked in the current window. */
  get size (): number { return this.#counts.size }
}

/**
 * Bearer auth: static tokens (AUTH_TOKENS for clients, OPERATOR_TOKENS for operators) compared as
 * SHA-256 digests with timingSafeEqual against every configured token, so neither length nor
 * position leaks through timing; and/or OAuth 2.1 access tokens (JWTs) checked against a JWKS or a
 * key file (loaded and checked here, at start-up), with `aud` = this resource and `exp` required.
 * An operator credential is also a client credential. This plugin only decorates; the one
 * onRequest hook (plugins/policy.ts) calls it for routes whose policy needs a client or operator.
 */
const authPlugin: FastifyPluginAsync<{ authenticate?: Authenticate }> = async (app, opts) => {
  app.decorateRequest('identity', null)
  app.decorateRequest('scopes', null)
  app.decorateRequest('role', null)
  app.decorateRequest('authInfo', null)
  const { config } = app
  const custom = opts.authenticate
  const tokens = [
    ...config.authTokens.map((t, i) => staticToken(t, 'client', i)),
    ...config.operatorTokens.map((t, i) => staticToken(t, 'operator', i))
  ]
  const oauth = config.oauth
  const verify = oauth ? createTokenVerifier(oauth) : undefined
  const realm = oauth ? `Bearer resource_metadata="${metadataUrl(oauth)}"` : 'Bearer realm="mcp"'
  const operatorScope = config.oauthOperatorScope

  const authenticate = async (request: FastifyRequest): Promise<AuthOutcome> => {
    const token = bearerToken(request)
    if (token === undefined) return await viaHook(request, 'missing')
    const candidate = digest(token)
    let match: StaticToken | undefined
    // Every configured token is compared, match or not: the time taken does not tell which one.
    for (const t of tokens) {
      if (timingSafeEqual(candidate, t.hash) && match === undefined) match = t
    }
    if (match !== undefined) {
      return { ok: true, identity: match.id, role: match.role, scopes: null, auth: { kind: 'token', subject: match.name, tokenName: match.name, scopes: [], claims: {}, role: match.role } }
    }
    if (verify !== undefined && token.split('.').length === 3) {
      try {
        const { subject, scopes, claims } = await verify(token)
        const role: Role = scopes.includes(operatorScope) ? 'operator' : 'client'
        return { ok: true, identity: `sub:${fingerprint(subject)}`, role, scopes, auth: { kind: 'oauth', subject, scopes, claims, role } }
      } catch (err) {
        request.log.info({ reason: err instanceof Error ? err.message : 'invalid' }, 'token rejected')
      }
    }
    return await viaHook(request, 'invalid')
  }

  /** The app's own authentication, when given, for a request the built-in credentials did not accept. */
  const viaHook = async (request: FastifyRequest, reason: 'missing' | 'invalid'): Promise<AuthOutcome> => {
    if (custom === undefined) return { ok: false, reason }
    const found = await custom(request)
    if (found === null) return { ok: false, reason }
    if (typeof found?.subject !== 'string' || found.subject === '') throw new Error('The authenticate hook must return { subject: string, … } or null')
    const role: Role = found.role === 'operator' ? 'operator' : 'client'
    const scopes = found.scopes ?? []
    return { ok: true, identity: `custom:${fingerprint(found.subject)}`, role, scopes: found.scopes ?? null, auth: { kind: 'custom', subject: found.subject, scopes, claims: found.claims ?? {}, role } }
  }

  app.decorate('auth', {
    enabled: authEnabled(config) || custom !== undefined,
    authenticate,
    challenge: (reason: 'missing' | 'invalid') => reason === 'missing'
      ? realm
      : `${realm}, error="invalid_token", error_description="The access token is invalid or expired"`,
    operatorChallenge: () => oauth ? `Bearer error="insufficient_scope", scope="${operatorScope}", resource_metadata="${metadataUrl(oauth)}"` : undefined,
    failures: new FailureCounter(config.authFailureMax, config.rateLimitWindowMs)
  } satisfies Authenticator)
}

export default fp(authPlugin, { name: 'auth', dependencies: ['config'] })
