import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { build } from './helper.js'
import type { App } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { missing, startRedis } from './e2e/services.js'
import { kEngine } from '../src/mcp/engine.js'

/** resources/subscribe budgets (MAX_SUBSCRIPTIONS_PER_SESSION, MAX_URI_BYTES) and cost (issue 13 findings 2, 11). */

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

async function session (t: TestContext, overrides: Partial<Config> = {}) {
  const app = await build(t, overrides)
  const init = await app.inject({ method: 'POST', url: '/mcp', headers: HEADERS, payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } } })
  const sid = String(init.headers['mcp-session-id'])
  const rpc = async (id: number, method: string, params: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url: '/mcp', headers: { ...HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }, payload: { jsonrpc: '2.0', id, method, params } })
    return res.json<{ result?: Record<string, unknown>, error?: { code: number, message: string } }>()
  }
  return { app, sid, rpc }
}

async function subscribed (app: App, sid: string): Promise<number> {
  return (await app[kEngine].sessions.subscriptionsOf(sid)).length
}

test('a session holds at most MAX_SUBSCRIPTIONS_PER_SESSION URIs; the next is -32602 naming the budget', async (t) => {
  const { app, sid, rpc } = await session(t, { budgets: { ...loadConfig({}).budgets, subscriptionsPerSession: 5 } })
  for (let i = 0; i < 5; i++) assert.deepEqual((await rpc(i + 1, 'resources/subscribe', { uri: `test://r/${i}` })).result, {})
  assert.deepEqual((await rpc(9, 'resources/subscribe', { uri: 'test://r/0' })).result, {}, 'subscribing again is not a new one')
  const over = await rpc(10, 'resources/subscribe', { uri: 'test://r/5' })
  assert.equal(over.error?.code, -32602)
  assert.match(over.error?.message ?? '', /MAX_SUBSCRIPTIONS_PER_SESSION budget \(5/)
  assert.equal(await subscribed(app, sid), 5)
  assert.deepEqual((await rpc(11, 'resources/unsubscribe', { uri: 'test://r/0' })).result, {})
  assert.deepEqual((await rpc(12, 'resources/subscribe', { uri: 'test://r/5' })).result, {}, 'room again after an unsubscribe')
})

test('a URI longer than MAX_URI_BYTES is -32602 naming the budget, the URI capped in the message', async (t) => {
  const { app, sid, rpc } = await session(t)
  const uri = `test://${'é'.repeat(1500)}`
  const res = await rpc(1, 'resources/subscribe', { uri })
  assert.equal(res.error?.code, -32602)
  assert.match(res.error?.message ?? '', /MAX_URI_BYTES budget \(2048 bytes\)/)
  assert.ok((res.error?.message.length ?? 0) < 400, 'the URI is not echoed whole')
  assert.equal(await subscribed(app, sid), 0)
})

/** 300 subscribes of 100 KB URIs of equal length (a shared prefix: the worst case for hashing and comparing). */
async function subscribeMany (t: TestContext, overrides: Partial<Config>, where: string): Promise<void> {
  const defaults = loadConfig({}).budgets
  const { app, sid, rpc } = await session(t, { ...overrides, budgets: { ...defaults, subscriptionsPerSession: 1000, uriBytes: 200_000 } })
  const body = 'u'.repeat(100_000)
  const cpu = process.cpuUsage()
  for (let i = 0; i < 300; i++) {
    const res = await rpc(i + 1, 'resources/subscribe', { uri: `test://${body}${String(i).padStart(4, '0')}` })
    assert.deepEqual(res.result, {})
  }
  const used = process.cpuUsage(cpu)
  const ms = (used.user + used.system) / 1000
  t.diagnostic(`${where}: 300 subscribes × 100 KB URIs: ${ms.toFixed(0)} ms CPU (this process: client and server)`)
  assert.equal(await subscribed(app, sid), 300)
  assert.ok(ms < 4000, `${ms.toFixed(0)} ms CPU`)
  assert.deepEqual(await app[kEngine].sessions.subscribers(`test://${body}0150`), [sid])
}

test('300 subscribes of 100 KB URIs cost linear CPU, not quadratic (in memory)', async (t) => {
  await subscribeMany(t, {}, 'memory')
})

test('300 subscribes of 100 KB URIs cost linear CPU, not quadratic (Redis)', { skip: missing('redis-server'), timeout: 120_000 }, async (t) => {
  const redis = await startRedis(t)
  await subscribeMany(t, { redisUrl: redis.url }, 'redis')
})
