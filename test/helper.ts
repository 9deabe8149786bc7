import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { buildApp, type App } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'

/** The default configuration (as with an empty environment) with test overrides. */
export function testConfig (overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}), logLevel: 'silent', ...overrides }
}

/** Called before the app is ready, e.g. to add a test-only route. */
export type Setup = (app: App) => void | Promise<void>

/** Builds the app for `inject` tests and closes it when the test ends. */
export async function build (t: TestContext, overrides: Partial<Config> = {}, setup?: Setup): Promise<App> {
  const app = await buildApp({ ...testConfig(overrides), logger: false })
  t.after(() => app.close())
  await setup?.(app)
  await app.ready()
  return app
}

/** Builds the app and listens on a free loopback port, for real clients. */
export async function listen (t: TestContext, overrides: Partial<Config> = {}, setup?: Setup): Promise<{ app: App, url: string }> {
  const app = await build(t, { port: 0, ...overrides }, setup)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, url: `http://127.0.0.1:${address.port}` }
}

/** Headers of a Streamable HTTP POST. */
export const MCP_POST_HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' }

/** Opens a session-era session over inject (initialize, 2025-11-25) and returns its id; fails the test otherwise. */
export async function injectSession (app: App, headers: Record<string, string> = {}): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_POST_HEADERS, ...headers },
    payload: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }
  })
  assert.equal(res.statusCode, 200, res.body.slice(0, 300))
  const sid = res.headers['mcp-session-id']
  assert.equal(typeof sid, 'string', 'initialize returns Mcp-Session-Id')
  return String(sid)
}
