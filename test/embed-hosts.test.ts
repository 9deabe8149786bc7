import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify'
import cors from '@fastify/cors'
import env from '@fastify/env'
import sensible from '@fastify/sensible'
import rateLimit from '@fastify/rate-limit'
import sseMcp from '../src/index.js'

/**
 * The plugin in someone else's app: registered before or after the usual Fastify plugins, with and
 * without a prefix, every host route answers exactly as in the same app without the plugin
 * (status, headers, body, CORS preflight), and the plugin's own routes still work.
 */

type HostPlugin = 'cors' | 'env' | 'sensible' | 'rate-limit'
const HOST_PLUGINS: HostPlugin[] = ['cors', 'env', 'sensible', 'rate-limit']

async function registerHostPlugin (app: FastifyInstance, name: HostPlugin): Promise<void> {
  if (name === 'cors') await app.register(cors, { origin: ['https://host.example'], methods: ['GET', 'POST'] })
  if (name === 'env') await app.register(env, { schema: { type: 'object', properties: { GREETING: { type: 'string', default: 'hi' } } }, data: {} })
  if (name === 'sensible') await app.register(sensible)
  if (name === 'rate-limit') await app.register(rateLimit, { max: 50, timeWindow: 60_000 })
}

interface HostShape { plugins: HostPlugin[], order: 'before' | 'after' | 'none', prefix: string }

async function host (shape: HostShape): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  const withPlugin = async (): Promise<void> => {
    await app.register(sseMcp, { allowedOrigins: ['https://client.example'], ...(shape.prefix === '' ? {} : { prefix: shape.prefix }) })
  }
  if (shape.order === 'before') await withPlugin()
  for (const p of shape.plugins) await registerHostPlugin(app, p)
  app.get('/hello', async () => ({ hello: 'world', greeting: (app as FastifyInstance & { config?: { GREETING?: string } }).config?.GREETING ?? null }))
  app.delete('/hello', async () => ({ deleted: true }))
  app.post('/echo', async (request) => ({ got: request.body }))
  app.get('/boom', async () => { throw Object.assign(new Error('host failure'), { statusCode: 418 }) })
  app.get('/gone', async (_request, reply) => {
    const errors = (app as FastifyInstance & { httpErrors?: { notFound: (m: string) => Error } }).httpErrors
    if (errors !== undefined) throw errors.notFound('gone for good')
    return await reply.code(404).send({ gone: true })
  })
  if (shape.order === 'after') await withPlugin()
  await app.ready()
  return app
}

/** What a host route's caller sees; the headers that change by the clock are dropped. */
const VOLATILE = new Set(['date', 'x-ratelimit-reset', 'retry-after', 'keep-alive', 'connection'])
const HOST_REQUESTS: InjectOptions[] = [
  { method: 'GET', url: '/hello' },
  { method: 'GET', url: '/hello', headers: { origin: 'https://host.example' } },
  { method: 'GET', url: '/hello', headers: { origin: 'https://client.example' } },
  { method: 'OPTIONS', url: '/hello', headers: { origin: 'https://client.example', 'access-control-request-method': 'DELETE' } },
  { method: 'OPTIONS', url: '/hello', headers: { origin: 'https://host.example', 'access-control-request-method': 'POST' } },
  { method: 'DELETE', url: '/hello', headers: { origin: 'https://client.example' } },
  { method: 'POST', url: '/echo', payload: { a: [1, 2, { b: 'c' }] } },
  { method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{"broken' },
  { method: 'POST', url: '/echo', headers: { 'content-type': 'text/plain' }, payload: 'plain' },
  { method: 'GET', url: '/boom' },
  { method: 'GET', url: '/gone' },
  { method: 'GET', url: '/no-such-route' },
  { method: 'PUT', url: '/hello' }
]

async function seen (app: FastifyInstance): Promise<unknown[]> {
  const out: unknown[] = []
  for (const req of HOST_REQUESTS) {
    const res = await app.inject(req)
    const headers = Object.fromEntries(Object.entries(res.headers).filter(([k]) => !VOLATILE.has(k)))
    out.push({ request: `${req.method ?? 'GET'} ${req.url as string} ${JSON.stringify(req.headers ?? {})}`, status: res.statusCode, headers, body: res.body })
  }
  return out
}

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } }
}

const shapes: HostShape[] = []
for (const order of ['before', 'after'] as const) {
  for (const prefix of ['', '/ai']) {
    shapes.push({ plugins: HOST_PLUGINS, order, prefix })
    for (const p of HOST_PLUGINS) shapes.push({ plugins: [p], order, prefix })
  }
}

for (const shape of shapes) {
  test(`host with ${shape.plugins.join('+')}, plugin registered ${shape.order}, prefix '${shape.prefix}'`, async (t) => {
    const bare = await host({ ...shape, order: 'none' })
    t.after(() => bare.close())
    const app = await host(shape)
    t.after(() => app.close())

    // Every host route answers exactly as without the plugin.
    assert.deepEqual(await seen(app), await seen(bare))

    // The plugin adds one namespaced decorator (and nothing a host may already use).
    for (const name of ['hub', 'redis', 'lifecycle', 'auth', 'routePolicies', 'limitRequest']) {
      assert.equal(app.hasDecorator(name), false, `the host gained a '${name}' decorator`)
    }
    assert.equal(app.hasDecorator('config'), shape.plugins.includes('env'), 'config belongs to @fastify/env')
    assert.equal(typeof app.mcp.tool, 'function')
    assert.equal(typeof app.mcp.broadcast, 'function')

    // The plugin's own routes still work under its prefix.
    const health = await app.inject({ method: 'GET', url: `${shape.prefix}/health` })
    assert.equal(health.statusCode, 200)
    const init = await app.inject({
      method: 'POST',
      url: `${shape.prefix}/mcp`,
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      payload: INIT
    })
    assert.equal(init.statusCode, 200, init.body)
    assert.match(init.body, /"protocolVersion":"2025-06-18"/)
    const foreign = await app.inject({ method: 'POST', url: `${shape.prefix}/mcp`, headers: { origin: 'https://evil.example', 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, payload: INIT })
    assert.equal(foreign.statusCode, 403)
    // Its preflight answers its own routes with its allow-list. A host-wide @fastify/cors answers
    // every OPTIONS in its root onRequest hook, before any scope's: then the host's policy decides
    // for the plugin's routes too (README "Embedding beside other plugins").
    if (!shape.plugins.includes('cors')) {
      const preflight = await app.inject({ method: 'OPTIONS', url: `${shape.prefix}/mcp`, headers: { origin: 'https://client.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'mcp-session-id' } })
      assert.equal(preflight.statusCode, 204)
      assert.equal(preflight.headers['access-control-allow-origin'], 'https://client.example')
      assert.match(String(preflight.headers['access-control-allow-headers']), /Mcp-Session-Id/)
    }
  })
}

test('the service (buildApp) still answers a preflight on its routes and nothing else', async (t) => {
  const { buildApp } = await import('../src/index.js')
  const app = await buildApp({ logger: false, allowedOrigins: ['https://client.example'] })
  t.after(() => app.close())
  const ok = await app.inject({ method: 'OPTIONS', url: '/mcp', headers: { origin: 'https://client.example', 'access-control-request-method': 'POST' } })
  assert.equal(ok.statusCode, 204)
  assert.equal(ok.headers['access-control-allow-origin'], 'https://client.example')
  const none = await app.inject({ method: 'OPTIONS', url: '/no-such-route', headers: { origin: 'https://client.example', 'access-control-request-method': 'POST' } })
  assert.equal(none.statusCode, 404)
})
