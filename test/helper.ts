import type { TestContext } from 'node:test'
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
  const app = await buildApp(testConfig(overrides), { logger: false })
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
