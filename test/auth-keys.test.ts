import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, UnsecuredJWT } from 'jose'
import { buildApp } from '../src/app.js'
import { ConfigError, type Config } from '../src/config.js'
import { build, testConfig } from './helper.js'

const RESOURCE = 'http://127.0.0.1:8080/mcp'

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'oauth-keys-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const oauth = (publicKeyFile: string): Partial<Config> => ({
  oauth: { resource: RESOURCE, issuer: undefined, jwksUrl: undefined, publicKeyFile, authorizationServers: [], scopesSupported: [] }
})

async function sign (key: KeyObject, alg: string, claims: Record<string, unknown> = {}, exp: string | null = '5m'): Promise<string> {
  const jwt = new SignJWT({ scope: 'tools:read', ...claims }).setProtectedHeader({ alg }).setSubject('user-1').setAudience(RESOURCE).setIssuedAt()
  if (exp !== null) jwt.setExpirationTime(exp)
  return await jwt.sign(key)
}

const docs = (token: string) => ({ method: 'GET' as const, url: '/docs', headers: { authorization: `Bearer ${token}` } })

const KEYS = [
  { name: 'RSA 2048 (RS256, PS384)', pair: () => generateKeyPairSync('rsa', { modulusLength: 2048 }), algs: ['RS256', 'PS384'], wrong: 'ES256' },
  { name: 'EC P-256 (ES256)', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), algs: ['ES256'], wrong: 'ES384' },
  { name: 'EC P-384 (ES384)', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }), algs: ['ES384'], wrong: 'ES256' },
  { name: 'EC P-521 (ES512)', pair: () => generateKeyPairSync('ec', { namedCurve: 'P-521' }), algs: ['ES512'], wrong: 'ES384' },
  { name: 'Ed25519 (EdDSA)', pair: () => generateKeyPairSync('ed25519'), algs: ['EdDSA'], wrong: 'ES256' }
]

for (const k of KEYS) {
  for (const format of ['pem', 'jwk', 'jwks'] as const) {
    test(`OAUTH_PUBLIC_KEY_FILE with an ${k.name} key (${format}) is accepted and its tokens verify`, async (t) => {
      const { publicKey, privateKey } = k.pair()
      const file = join(tempDir(t), `key.${format}`)
      const jwk = publicKey.export({ format: 'jwk' })
      writeFileSync(file, format === 'pem'
        ? publicKey.export({ type: 'spki', format: 'pem' })
        : JSON.stringify(format === 'jwk' ? jwk : { keys: [{ ...jwk, kid: 'k1' }] }))
      const app = await build(t, oauth(file))
      for (const alg of k.algs) assert.equal((await app.inject(docs(await sign(privateKey, alg)))).statusCode, 200, alg)
      // Another key of the same type: refused.
      assert.equal((await app.inject(docs(await sign(k.pair().privateKey, k.algs[0] ?? '')))).statusCode, 401)
    })
  }
}

test('a validly signed JWT without exp is refused with 401', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const file = join(tempDir(t), 'key.pem')
  writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }))
  const app = await build(t, oauth(file))
  const res = await app.inject(docs(await sign(privateKey, 'EdDSA', {}, null)))
  assert.equal(res.statusCode, 401)
  assert.match(String(res.headers['www-authenticate']), /invalid_token/)
  assert.equal((await app.inject(docs(await sign(privateKey, 'EdDSA')))).statusCode, 200)
})

test('an unsigned token is refused even with a JWK file', async (t) => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const file = join(tempDir(t), 'key.jwk')
  writeFileSync(file, JSON.stringify(publicKey.export({ format: 'jwk' })))
  const app = await build(t, oauth(file))
  const token = new UnsecuredJWT({ sub: 'x' }).setAudience(RESOURCE).setExpirationTime('5m').encode()
  assert.equal((await app.inject(docs(token))).statusCode, 401)
})

const BAD_KEYS: Array<{ name: string, content: () => string, why: RegExp }> = [
  { name: 'not a key at all', content: () => 'hello', why: /not a PEM public key/ },
  { name: 'a private key', content: () => String(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })), why: /private key/ },
  { name: 'an RSA key of 1024 bits', content: () => String(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' })), why: /1024 bits/ },
  { name: 'an EC key on secp256k1', content: () => String(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'pem' })), why: /secp256k1/ },
  { name: 'an X25519 key', content: () => String(generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' })), why: /x25519/ },
  { name: 'a JWK whose alg does not fit its type', content: () => JSON.stringify({ ...generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }), alg: 'ES256' }), why: /alg ES256/ },
  { name: 'an HMAC JWK', content: () => JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' }), why: /shared-secret/ },
  { name: 'broken JSON', content: () => '{"keys": [', why: /not valid JSON/ }
]

for (const bad of BAD_KEYS) {
  test(`a key file with ${bad.name} is a one-line ConfigError at build`, async (t) => {
    const file = join(tempDir(t), 'key')
    writeFileSync(file, bad.content())
    await assert.rejects(buildApp({ ...testConfig(oauth(file)), logger: false }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.match(err.message, /^Invalid configuration: OAUTH_PUBLIC_KEY_FILE=/)
      assert.match(err.message, bad.why)
      assert.doesNotMatch(err.message, /\n/)
      return true
    })
  })
}

test('a missing key file is a ConfigError at build', async () => {
  await assert.rejects(buildApp({ ...testConfig(oauth('/nonexistent/key.pem')), logger: false }), (err: unknown) => err instanceof ConfigError && /cannot be read/.test(err.message))
})

test('OAuth: the operator scope grants /broadcast; a token without it gets 403 insufficient_scope', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const file = join(tempDir(t), 'key.pem')
  writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }))
  const app = await build(t, oauth(file))
  const post = (token: string) => ({ method: 'POST' as const, url: '/broadcast', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: { event: 'note', data: 'hi' } })
  const client = await app.inject(post(await sign(privateKey, 'ES384', { scope: 'tools:read' })))
  assert.equal(client.statusCode, 403)
  assert.match(String(client.headers['www-authenticate']), /error="insufficient_scope", scope="mcp:broadcast"/)
  assert.equal((await app.inject(post(await sign(privateKey, 'ES384', { scope: 'tools:read mcp:broadcast' })))).statusCode, 202)
})

test('the server process with a bad OAUTH_PUBLIC_KEY_FILE prints one line and exits 1 (no stack)', async (t) => {
  const { spawn } = await import('node:child_process')
  const { SERVER_ENTRY } = await import('./e2e/process.js')
  const file = join(tempDir(t), 'x25519.pem')
  writeFileSync(file, generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }))
  const child = spawn(process.execPath, [SERVER_ENTRY], { env: { ...process.env, PORT: '0', LOG_LEVEL: 'silent', OAUTH_PUBLIC_KEY_FILE: file }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  assert.equal(code, 1)
  assert.match(stderr, /^Invalid configuration: OAUTH_PUBLIC_KEY_FILE=".*" is a x25519 key \(RSA, EC P-256\/P-384\/P-521 or Ed25519 needed\)\n$/)
})
