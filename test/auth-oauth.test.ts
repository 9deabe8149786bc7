import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from '@sinclair/typebox'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose'
import { build } from './helper.js'
import type { Config } from '../src/config.js'

const RESOURCE = 'http://127.0.0.1:8080/mcp'
const ISSUER = 'https://auth.example.test'
const ACCEPT = 'application/json, text/event-stream'

const keys = await generateKeyPair('ES256', { extractable: true })
const otherKeys = await generateKeyPair('ES256', { extractable: true })
const jwk: JWK = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }

async function token (
  claims: Record<string, unknown> = {}, opts: { key?: typeof keys.privateKey, exp?: string | number, aud?: string, iss?: string } = {}
): Promise<string> {
  return await new SignJWT({ scope: 'tools:read', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setSubject('user-42')
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? RESOURCE)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(opts.key ?? keys.privateKey)
}

/** A JWKS endpoint on loopback, as an authorization server would publish it. */
async function jwksServer (t: TestContext): Promise<string> {
  const server = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const address = server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/jwks.json`
}

async function oauthApp (t: TestContext, oauth: Partial<NonNullable<Config['oauth']>>) {
  return await build(t, {
    oauth: { resource: RESOURCE, issuer: ISSUER, jwksUrl: undefined, publicKeyFile: undefined, authorizationServers: [ISSUER], scopesSupported: ['tools:read', 'tools:admin'], ...oauth }
  }, (app) => {
    app.mcp.tool({ name: 'admin_only', requiredScopes: ['tools:admin'], inputSchema: Type.Object({}), handler: () => ({ content: [{ type: 'text', text: 'admin' }] }) })
  })
}

const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth', version: '1' } } }
const post = (bearer: string | undefined, body: unknown = init, session?: string) => ({
  method: 'POST' as const,
  url: '/mcp',
  headers: { accept: ACCEPT, 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(session ? { 'mcp-session-id': session } : {}) },
  payload: body as Record<string, unknown>
})

test('OAuth (JWKS URL): a valid access token for this resource is accepted', async (t) => {
  const app = await oauthApp(t, { jwksUrl: await jwksServer(t) })
  const res = await app.inject(post(await token()))
  assert.equal(res.statusCode, 200, res.body)
  assert.ok(res.headers['mcp-session-id'])
})

test('OAuth: no token → 401 with resource_metadata pointing at the RFC 9728 document', async (t) => {
  const app = await oauthApp(t, { jwksUrl: await jwksServer(t) })
  const res = await app.inject(post(undefined))
  assert.equal(res.statusCode, 401)
  assert.equal(res.headers['www-authenticate'], 'Bearer resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"')
  const meta = await app.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource/mcp' })
  assert.equal(meta.statusCode, 200)
  assert.deepEqual(meta.json(), {
    resource: RESOURCE,
    authorization_servers: [ISSUER],
    scopes_supported: ['tools:read', 'tools:admin'],
    bearer_methods_supported: ['header'],
    resource_name: 'sse-mcp-server'
  })
  assert.equal((await app.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource' })).statusCode, 200)
})

for (const [name, make] of [
  ['an expired token', async () => await token({}, { exp: Math.floor(Date.now() / 1000) - 120 })],
  ['a token for another audience', async () => await token({}, { aud: 'https://other.example/mcp' })],
  ['a token from another issuer', async () => await token({}, { iss: 'https://evil.example' })],
  ['a token signed by another key', async () => await token({}, { key: otherKeys.privateKey })],
  ['an unsigned token (alg none)', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
    return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', aud: RESOURCE, iss: ISSUER, exp: Math.floor(Date.now() / 1000) + 300 })}.`
  }],
  ['a garbage token', async () => 'aaa.bbb.ccc']
] as const) {
  test(`OAuth: ${name} is refused with 401 invalid_token`, async (t) => {
    const app = await oauthApp(t, { jwksUrl: await jwksServer(t) })
    const res = await app.inject(post(await make()))
    assert.equal(res.statusCode, 401)
    assert.match(String(res.headers['www-authenticate']), /^Bearer resource_metadata="[^"]+", error="invalid_token"/)
  })
}

test('OAuth: a tool needing a scope the token lacks → 403 insufficient_scope; with the scope it runs', async (t) => {
  const app = await oauthApp(t, { jwksUrl: await jwksServer(t) })
  const reader = await token({ scope: 'tools:read' })
  const sid = String((await app.inject(post(reader))).headers['mcp-session-id'])
  const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'admin_only', arguments: {} } }
  const denied = await app.inject(post(reader, call, sid))
  assert.equal(denied.statusCode, 403)
  assert.match(String(denied.headers['www-authenticate']), /error="insufficient_scope", scope="tools:admin"/)
  // Another token of the same subject with the admin scope may use the same session.
  const admin = await token({ scope: 'tools:read tools:admin' })
  const ok = await app.inject(post(admin, call, sid))
  assert.equal(ok.statusCode, 200, ok.body)
  assert.deepEqual(ok.json().result.content, [{ type: 'text', text: 'admin' }])
})

test('OAuth (local key file, PEM): valid accepted, wrong signature refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'oauth-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'public.pem')
  writeFileSync(file, await exportSPKI(keys.publicKey))
  const app = await oauthApp(t, { publicKeyFile: file })
  assert.equal((await app.inject(post(await token()))).statusCode, 200)
  assert.equal((await app.inject(post(await token({}, { key: otherKeys.privateKey })))).statusCode, 401)
})

test('OAuth: a token in the query string is never accepted', async (t) => {
  const app = await oauthApp(t, { jwksUrl: await jwksServer(t) })
  const res = await app.inject({ ...post(undefined), url: `/mcp?access_token=${await token()}` })
  assert.equal(res.statusCode, 401)
})

test('without a valid token no route but /health, /ready and the metadata returns data', async (t) => {
  const app = await oauthApp(t, { jwksUrl: await jwksServer(t) })
  for (const url of ['/docs', '/metrics', '/mcp', '/sse', '/broadcast', '/messages?sessionId=x']) {
    const res = await app.inject({ method: url === '/broadcast' || url.startsWith('/messages') ? 'POST' : 'GET', url, headers: { accept: 'text/event-stream' } })
    assert.equal(res.statusCode, 401, url)
  }
  for (const url of ['/health', '/ready', '/.well-known/oauth-protected-resource']) {
    assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
})
