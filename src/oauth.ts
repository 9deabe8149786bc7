import { readFileSync } from 'node:fs'
import { createLocalJWKSet, createRemoteJWKSet, importSPKI, jwtVerify, type JWTVerifyGetKey, type JSONWebKeySet } from 'jose'

type PublicKey = Awaited<ReturnType<typeof importSPKI>>

/** OAuth 2.1 resource-server settings (all from the environment; see .env.example). */
export interface OAuthConfig {
  /** This server's resource identifier (RFC 8707/9728): tokens must name it in `aud`. */
  resource: string
  issuer: string | undefined
  jwksUrl: string | undefined
  publicKeyFile: string | undefined
  authorizationServers: string[]
  scopesSupported: string[]
}

export interface VerifiedToken {
  subject: string
  scopes: string[]
}

/** Asymmetric algorithms only: `none` and shared-secret HMAC tokens are refused. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']

function keyFromFile (file: string): JWTVerifyGetKey | Promise<PublicKey> {
  const text = readFileSync(file, 'utf8').trim()
  if (text.startsWith('{')) {
    const parsed = JSON.parse(text) as JSONWebKeySet | Record<string, unknown>
    const jwks = 'keys' in parsed ? parsed as JSONWebKeySet : { keys: [parsed] } as JSONWebKeySet
    return createLocalJWKSet(jwks)
  }
  // PEM public key: the algorithm is fixed by the key type; try the common ones.
  const alg = /BEGIN PUBLIC KEY/.test(text) && text.length < 400 ? 'ES256' : 'RS256'
  return importSPKI(text, alg)
}

/**
 * Verifies JWT access tokens: signature (JWKS URL or local key), `exp`/`nbf`, `iss` when configured,
 * and `aud` = this resource. Returns the subject and scopes, or throws.
 */
export function createTokenVerifier (config: OAuthConfig): (token: string) => Promise<VerifiedToken> {
  let key: JWTVerifyGetKey | Promise<PublicKey>
  if (config.jwksUrl !== undefined) key = createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 })
  else if (config.publicKeyFile !== undefined) key = keyFromFile(config.publicKeyFile)
  else throw new Error('OAuth needs OAUTH_JWKS_URL or OAUTH_PUBLIC_KEY_FILE')
  return async (token) => {
    const options = { audience: config.resource, algorithms: ALGORITHMS, clockTolerance: 5, ...(config.issuer ? { issuer: config.issuer } : {}) }
    const { payload } = typeof key === 'function'
      ? await jwtVerify(token, key, options)
      : await jwtVerify(token, await key, options)
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('token has no subject')
    const scope = typeof payload.scope === 'string' ? payload.scope : Array.isArray(payload.scp) ? payload.scp.join(' ') : ''
    return { subject: payload.sub, scopes: scope.split(' ').filter(Boolean) }
  }
}

/** The RFC 9728 protected-resource metadata document. */
export function resourceMetadata (config: OAuthConfig): Record<string, unknown> {
  return {
    resource: config.resource,
    authorization_servers: config.authorizationServers,
    scopes_supported: config.scopesSupported,
    bearer_methods_supported: ['header'],
    resource_name: 'sse-mcp-server'
  }
}

/** Scopes in `required` that `granted` lacks. */
export function missingScopes (required: readonly string[], granted: readonly string[]): string[] {
  return required.filter((s) => !granted.includes(s))
}
