import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { SignJWT, exportSPKI, generateKeyPair } from 'jose'
import sseMcp, { buildApp, UserError, type App, type BuildAppOptions, type CallContext } from '../src/index.js'

// What a handler sees and what its failures become: ctx.auth (static tokens, OAuth, the app's own
// authenticate hook), UserError vs any other throw (logged with an error id), string returns,
// duplicate names refused at start-up, and serverInfo/instructions from options and environment.

const V = '2026-07-28'
type Inject = Pick<App, 'inject'>

/** A stateless (2026-07-28) request: no session to open. */
async function call (app: Inject, method: string, params: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const named = params.name ?? params.uri
  const name = typeof named === 'string' ? { 'mcp-name': named } : {}
  return await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': V, 'mcp-method': method, ...name, ...headers },
    payload: {
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientInfo': { name: 'test', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {}
        }
      }
    }
  })
}

/** The service with a `whoami` tool that returns its ctx.auth; `lines` collects the JSON log. */
async function service (t: TestContext, options: BuildAppOptions = {}) {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _enc, done) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>); done() } })
  const app = await buildApp({ ...options, logger: { level: 'info', stream } })
  t.after(() => app.close())
  app.mcp.tool({ name: 'whoami', inputSchema: Type.Object({}), handler: (_args, ctx: CallContext) => ({ content: [{ type: 'text', text: JSON.stringify(ctx.auth) }] }) })
  await app.ready()
  return { app, lines }
}

const whoami = async (app: Inject, headers: Record<string, string>) => {
  const res = await call(app, 'tools/call', { name: 'whoami', arguments: {} }, headers)
  assert.equal(res.statusCode, 200, res.body)
  return JSON.parse(res.json().result.content[0].text as string) as Record<string, unknown>
}

test('ctx.auth under static tokens: the token name (name:token), or client-<n> for a bare token; never the token', async (t) => {
  const { app } = await service(t, { authTokens: ['alice:alice-secret-1', 'bare-secret-2'], operatorTokens: ['ops-secret-3'] })
  assert.deepEqual(await whoami(app, { authorization: 'Bearer alice-secret-1' }), { kind: 'token', subject: 'alice', tokenName: 'alice', scopes: [], claims: {}, role: 'client' })
  assert.equal((await whoami(app, { authorization: 'Bearer bare-secret-2' })).tokenName, 'client-2')
  assert.equal((await whoami(app, { authorization: 'Bearer ops-secret-3' })).tokenName, 'operator-1')
  // The name is not a credential, and name:token is not the token.
  assert.equal((await call(app, 'tools/list', {}, { authorization: 'Bearer alice' })).statusCode, 401)
})

test('ctx.auth under OAuth: subject, scopes and the verified claims', async (t) => {
  const keys = await generateKeyPair('ES256', { extractable: true })
  const dir = mkdtempSync(join(tmpdir(), 'embed-oauth-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const keyFile = join(dir, 'key.pem')
  writeFileSync(keyFile, await exportSPKI(keys.publicKey))
  const resource = 'http://127.0.0.1:8080/mcp'
  const { app } = await service(t, { oauth: { resource, issuer: 'https://auth.example.test', jwksUrl: undefined, publicKeyFile: keyFile, authorizationServers: ['https://auth.example.test'], scopesSupported: [] } })
  const jwt = await new SignJWT({ scope: 'tools:read tools:write', tenant: 'acme' })
    .setProtectedHeader({ alg: 'ES256' }).setSubject('user-42').setIssuer('https://auth.example.test').setAudience(resource)
    .setIssuedAt().setExpirationTime('5m').sign(keys.privateKey)
  const auth = await whoami(app, { authorization: `Bearer ${jwt}` })
  assert.equal(auth.kind, 'oauth')
  assert.equal(auth.subject, 'user-42')
  assert.deepEqual(auth.scopes, ['tools:read', 'tools:write'])
  assert.equal((auth.claims as Record<string, unknown>).tenant, 'acme')
  assert.equal(auth.role, 'client')
})

test('ctx.auth from the app\'s own authenticate hook (plugin option), used by the route policy; null refuses with 401', async (t) => {
  const app = Fastify({ logger: false })
  t.after(() => app.close())
  await app.register(sseMcp, {
    authenticate: async (request) => request.headers['x-api-key'] === 'k-1' ? { subject: 'tenant-7', scopes: ['read'], claims: { plan: 'pro' } } : null
  })
  app.mcp.tool({ name: 'whoami', inputSchema: Type.Object({}), handler: (_args, ctx) => JSON.stringify(ctx.auth) })
  await app.ready()
  assert.deepEqual(await whoami(app, { 'x-api-key': 'k-1' }), { kind: 'custom', subject: 'tenant-7', scopes: ['read'], claims: { plan: 'pro' }, role: 'client' })
  const refused = await call(app, 'tools/list', {}, { 'x-api-key': 'wrong' })
  assert.equal(refused.statusCode, 401)
  assert.match(String(refused.headers['www-authenticate']), /^Bearer/)
  // Public routes stay public.
  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

test('a UserError is shown to the model; any other throw is logged with its stack and an error id, and the client gets only that id', async (t) => {
  const { app, lines } = await service(t)
  app.mcp.tool({ name: 'refuses', inputSchema: Type.Object({}), handler: () => { throw new UserError('No order 17 in this account') } })
  app.mcp.tool({ name: 'crashes', inputSchema: Type.Object({}), handler: () => { throw new Error('db password=hunter2 failed') } })
  app.mcp.resource({ uri: 'test://broken', name: 'broken', read: () => { throw new Error('resource secret=s3 failed') } })

  const refused = (await call(app, 'tools/call', { name: 'refuses', arguments: {} })).json().result
  assert.deepEqual(refused, { ...refused, isError: true, content: [{ type: 'text', text: 'No order 17 in this account' }] })

  const crashed = await call(app, 'tools/call', { name: 'crashes', arguments: {} })
  assert.doesNotMatch(crashed.body, /hunter2/)
  const text = crashed.json().result.content[0].text as string
  assert.equal(crashed.json().result.isError, true)
  const errorId = /error id ([0-9a-f-]{36})/.exec(text)?.[1]
  assert.ok(errorId, text)
  const line = lines.find((l) => l.errorId === errorId)
  assert.ok(line, 'an error line with that id')
  assert.equal(line.level, 50)
  assert.equal(typeof line.reqId, 'string', 'the HTTP request id is on the line')
  assert.match(String((line.err as { stack?: string }).stack), /db password=hunter2 failed\n\s+at /)

  const read = await call(app, 'resources/read', { uri: 'test://broken' })
  assert.doesNotMatch(read.body, /s3/)
  const readId = /error id ([0-9a-f-]{36})/.exec(read.json().error.message as string)?.[1]
  assert.ok(readId !== undefined && lines.some((l) => l.errorId === readId && l.level === 50))
})

test('a tool that returns a plain string answers with that text', async (t) => {
  const { app } = await service(t)
  app.mcp.tool({ name: 'greet', inputSchema: Type.Object({ who: Type.String() }), handler: ({ who }) => `hello ${who}` })
  const result = (await call(app, 'tools/call', { name: 'greet', arguments: { who: 'ada' } })).json().result
  assert.deepEqual(result.content, [{ type: 'text', text: 'hello ada' }])
  assert.equal(result.isError, undefined)
})

test('a duplicate name is refused naming both sources: app.mcp over a built-in, and across MCP_TOOLS modules', async (t) => {
  const { app } = await service(t)
  assert.throws(() => { app.mcp.tool({ name: 'echo', inputSchema: Type.Object({}), handler: () => 'mine' }) },
    /Duplicate tool "echo": registered by the built-in tools \(builtins\) and again by app\.mcp \(.*embed-handlers\.test\.ts/)
  assert.throws(() => { app.mcp.prompt({ name: 'p', get: () => ({ messages: [] }) }); app.mcp.prompt({ name: 'p', get: () => ({ messages: [] }) }) }, /Duplicate prompt "p"/)

  const dir = mkdtempSync(join(tmpdir(), 'embed-tools-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const typebox = pathToFileURL(join(process.cwd(), 'node_modules/@sinclair/typebox/build/esm/index.mjs')).href
  const mod = `import { Type } from '${typebox}'\nexport default { name: 'lookup', inputSchema: Type.Object({}), handler: () => 'x' }\n`
  writeFileSync(join(dir, 'a.mjs'), mod)
  writeFileSync(join(dir, 'b.mjs'), mod)
  await assert.rejects(buildApp({ logger: false, tools: [dir] }), (err: Error) => {
    assert.match(err.message, /Duplicate tool "lookup": registered by tool module .*a\.mjs and again by tool module .*b\.mjs/)
    return true
  })
})

test('serverInfo and instructions: plugin options and SERVER_NAME / SERVER_VERSION / SERVER_INSTRUCTIONS, in initialize and server/discover', async (t) => {
  const { loadConfig } = await import('../src/config.js')
  const fromEnv = loadConfig({ SERVER_NAME: 'acme-orders', SERVER_VERSION: '3.1.0', SERVER_INSTRUCTIONS: 'Use lookup before refund.' })
  assert.deepEqual([fromEnv.serverName, fromEnv.serverVersion, fromEnv.serverInstructions], ['acme-orders', '3.1.0', 'Use lookup before refund.'])
  assert.throws(() => loadConfig({ SERVER_NAME: 'x'.repeat(201) }), /SERVER_NAME/)

  const app = Fastify({ logger: false })
  t.after(() => app.close())
  await app.register(sseMcp, { serverName: 'acme-orders', serverVersion: '3.1.0', serverInstructions: 'Use lookup before refund.' })
  await app.ready()
  const init = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }
  })
  const result = init.json().result
  assert.deepEqual(result.serverInfo, { name: 'acme-orders', version: '3.1.0' })
  assert.equal(result.instructions, 'Use lookup before refund.')
  const discover = (await call(app, 'server/discover')).json().result
  assert.deepEqual(discover._meta['io.modelcontextprotocol/serverInfo'], { name: 'acme-orders', version: '3.1.0' })
  assert.equal(discover.instructions, 'Use lookup before refund.')

  // Defaults: this package's name and version, no instructions.
  const { app: plain } = await service(t)
  const info = (await call(plain, 'server/discover')).json().result
  assert.equal(info._meta['io.modelcontextprotocol/serverInfo'].name, 'sse-mcp-server')
  assert.equal(info.instructions, undefined)
})
