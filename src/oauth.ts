import { readFileSync } from 'node:fs'
import { createPublicKey, type JsonWebKey as NodeJwk, type KeyObject } from 'node:crypto'
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWK, type JWTVerifyGetKey } from 'jose'
import { ConfigError } from './config.js'
import { SERVER_NAME } from './meta.js'

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
  /** Every claim of the verified token. */
  claims: Record<string, unknown>
}

const RSA = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const RSA_PSS = ['PS256', 'PS384', 'PS512']
const EDDSA = ['EdDSA', 'Ed25519']
/** By curve: one curve, one algorithm (RFC 7518 §3.4). */
const EC_BY_CURVE: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }
/** Node's curve names for the same curves. */
const NODE_CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
/** Asymmetric algorithms only: `none` and shared-secret HMAC tokens are refused. */
export const ALGORITHMS = [...RSA, 'ES256', 'ES384', 'ES512', ...EDDSA]

/** The key a verifier checks signatures with, and the algorithms that key allows. */
interface VerificationKey {
  key: KeyObject | JWTVerifyGetKey
  algorithms: string[]
}

function bad (file: string, why: string): never {
  throw new ConfigError(`Invalid configuration: OAUTH_PUBLIC_KEY_FILE=${JSON.stringify(file)} ${why}`)
}

/** The algorithms a public key (a Node KeyObject) can verify; the key type decides, never the token. */
export function algorithmsForKey (key: KeyObject): string[] | string {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      if ((details.modulusLength ?? 0) < 2048) return `is an RSA key of ${details.modulusLength ?? 0} bits (2048 or more needed)`
      return key.asymmetricKeyType === 'rsa' ? RSA : RSA_PSS
    case 'ec': {
      const curve = NODE_CURVES[details.namedCurve ?? '']
      const alg = curve === undefined ? undefined : EC_BY_CURVE[curve]
      return alg === undefined ? `is an EC key on ${details.namedCurve ?? 'an unknown curve'} (P-256, P-384 or P-521 needed)` : [alg]
    }
    case 'ed25519':
      return EDDSA
    default:
      return `is a ${key.asymmetricKeyType ?? 'symmetric'} key (RSA, EC P-256/P-384/P-521 or Ed25519 needed)`
  }
}

/** The algorithms a JWK allows: its `alg` when it has one (checked against its type), else by `kty`/`crv`. */
export function algorithmsForJwk (jwk: JWK): string[] | string {
  let byType: string[]
  const ec = jwk.kty === 'EC' && typeof jwk.crv === 'string' && Object.hasOwn(EC_BY_CURVE, jwk.crv) ? EC_BY_CURVE[jwk.crv] : undefined
  if (jwk.kty === 'RSA') byType = RSA
  else if (ec !== undefined) byType = [ec]
  else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') byType = EDDSA
  else return `has a key of type ${String(jwk.kty)}${jwk.crv ? `/${jwk.crv}` : ''} (RSA, EC P-256/P-384/P-521 or OKP Ed25519 needed)`
  if (jwk.alg === undefined) return byType
  return byType.includes(jwk.alg) ? [jwk.alg] : `has a key whose alg ${jwk.alg} does not fit its type ${jwk.kty}`
}

/** Loads and checks the key file at start-up: PEM (SPKI, PKCS#1 or a certificate), a JWK or a JWKS. */
export function loadKeyFile (file: string): VerificationKey {
  let text: string
  try {
    text = readFileSync(file, 'utf8').trim()
  } catch (err) {
    return bad(file, `cannot be read (${err instanceof Error && 'code' in err ? String(err.code) : 'error'})`)
  }
  if (text.startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return bad(file, 'is not valid JSON (a JWK or JWKS was expected)')
    }
    const record = parsed as Record<string, unknown>
    const keys = (Array.isArray(record.keys) ? record.keys : [record]) as JWK[]
    if (keys.length === 0) bad(file, 'has no keys')
    const algorithms = new Set<string>()
    for (const jwk of keys) {
      if (typeof jwk !== 'object' || jwk === null) bad(file, 'has a key that is not an object')
      if ('d' in jwk || 'k' in jwk) bad(file, 'holds a private or shared-secret key; give the public key only')
      const algs = algorithmsForJwk(jwk)
      if (typeof algs === 'string') bad(file, algs)
      try {
        const check = algorithmsForKey(createPublicKey({ key: jwk as NodeJwk, format: 'jwk' }))
        if (typeof check === 'string') bad(file, check)
      } catch (err) {
        if (err instanceof ConfigError) throw err
        bad(file, `has a key that is not a valid ${String(jwk.kty)} public key`)
      }
      for (const alg of algs) algorithms.add(alg)
    }
    return { key: createLocalJWKSet({ keys }), algorithms: [...algorithms] }
  }
  if (/PRIVATE KEY/.test(text)) bad(file, 'holds a private key; give the public key only')
  let key: KeyObject
  try {
    key = createPublicKey(text)
  } catch {
    return bad(file, 'is not a PEM public key, certificate, JWK or JWKS')
  }
  const algorithms = algorithmsForKey(key)
  if (typeof algorithms === 'string') bad(file, algorithms)
  return { key, algorithms }
}

/**
 * Verifies JWT access tokens: signature (JWKS URL or local key), `exp` (required) and `nbf`, `iss`
 * when configured, and `aud` = this resource. Returns the subject and scopes, or throws. The key file
 * is read and checked here, at start-up: a bad key is a ConfigError, not a crash on the first token.
 */
export function createTokenVerifier (config: OAuthConfig): (token: string) => Promise<VerifiedToken> {
  let verification: VerificationKey
  if (config.jwksUrl !== undefined) {
    // A remote set is only known at run time: jose picks the key whose kty/crv fit the token's alg.
    verification = {
      key: createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 }),
      algorithms: ALGORITHMS
    }
  } else if (config.publicKeyFile !== undefined) {
    verification = loadKeyFile(config.publicKeyFile)
  } else {
    throw new ConfigError('Invalid configuration: OAuth needs OAUTH_JWKS_URL or OAUTH_PUBLIC_KEY_FILE')
  }
  const { key, algorithms } = verification
  const options = { audience: config.resource, algorithms, requiredClaims: ['exp'], clockTolerance: 5, ...(config.issuer ? { issuer: config.issuer } : {}) }
  return async (token) => {
    const { payload } = typeof key === 'function'
      ? await jwtVerify(token, key, options)
      : await jwtVerify(token, key, options)
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('token has no subject')
    const scope = typeof payload.scope === 'string' ? payload.scope : Array.isArray(payload.scp) ? payload.scp.join(' ') : ''
    return { subject: payload.sub, scopes: scope.split(' ').filter(Boolean), claims: { ...payload } }
  }
}

/** The RFC 9728 protected-resource metadata document; `name` is the server's (package name by default). */
export function resourceMetadata (config: OAuthConfig, name: string = SERVER_NAME): Record<string, unknown> {
  return {
    resource: config.resource,
    authorization_servers: config.authorizationServers,
    scopes_supported: config.scopesSupported,
    bearer_methods_supported: ['header'],
    resource_name: name
  }
}

/** Scopes in `required` that `granted` lacks. */
export function missingScopes (required: readonly string[], granted: readonly string[]): string[] {
  return required.filter((s) => !granted.includes(s))
}

/**
 * A call that needs scopes the token lacks: the `WWW-Authenticate` step-up challenge (RFC 6750
 * `insufficient_scope`, pointing at the RFC 9728 metadata) and the error message; undefined when
 * every required scope is granted.
 */
export function insufficientScope (
  required: readonly string[], granted: readonly string[], metadataUrl: string
): { challenge: string, message: string } | undefined {
  const missing = missingScopes(required, granted)
  if (missing.length === 0) return undefined
  return {
    challenge: `Bearer error="insufficient_scope", scope="${required.join(' ')}", resource_metadata="${metadataUrl}"`,
    message: `Forbidden: this tool needs the scope(s) ${missing.join(', ')}`
  }
}
