// Issue 21 item 6: the plugin's and buildApp's options are checked as the environment is: one
// line per mistake that says what the option must be; unknown and misspelt keys are refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import sseMcp, { buildApp, ConfigError, loadConfig, resolveConfig, type SseMcpOptions } from '../src/index.js'

/** The ConfigError's lines, failing the test when something else (or nothing) is thrown. */
function refused (fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`)
    return err.message.split('\n')
  }
  return assert.fail('accepted')
}

test('a value of the wrong kind is one line naming the option, the value and what it must be', () => {
  assert.deepEqual(refused(() => resolveConfig({ rateLimitMax: 'lots' } as never)), [
    'Invalid option: rateLimitMax="lots" must be a whole number ≥ 0 (like RATE_LIMIT_MAX)'
  ])
  assert.deepEqual(refused(() => resolveConfig({ logLevel: 'verbose' })), [
    'Invalid option: logLevel="verbose" is not a level: use one of fatal, error, warn, info, debug, trace, silent'
  ])
  assert.deepEqual(refused(() => resolveConfig({ metricsPublic: 'yes' } as never)), ['Invalid option: metricsPublic="yes" must be true or false'])
})

test('authTokens as a string (not a list) is refused in words, the token not echoed (was "map is not a function")', () => {
  const lines = refused(() => resolveConfig({ authTokens: 'abc' } as never))
  assert.deepEqual(lines, ['Invalid option: authTokens=<redacted> must be an array of strings, e.g. ["a", "b"]'])
})

test('a misspelt or unknown key is refused with the closest option, nested keys too', () => {
  assert.deepEqual(refused(() => resolveConfig({ rateLimitMx: 5 } as never)), [
    'Invalid option: rateLimitMx is not an option of sse-mcp-server; did you mean rateLimitMax?'
  ])
  assert.deepEqual(refused(() => resolveConfig({ budgets: { sessionPerClient: 3 } } as never)), [
    'Invalid option: budgets.sessionPerClient is not an option of sse-mcp-server; did you mean budgets.sessionsPerClient?'
  ])
  assert.deepEqual(refused(() => resolveConfig({ colour: 'blue' } as never)), ['Invalid option: colour is not an option of sse-mcp-server'])
})

test('every mistake gets its own line', () => {
  const lines = refused(() => resolveConfig({ rateLimitMax: 'lots', authTokens: 'abc', rateLimitMx: 5, json: { maxDepth: -1 } } as never))
  assert.equal(lines.length, 4, lines.join('\n'))
  for (const line of lines) assert.match(line, /^Invalid option: /)
})

test('the plugin in a host app refuses bad options at register with the same lines', async () => {
  const app = Fastify({ logger: false })
  app.register(sseMcp, { rateLimitMax: 'lots', authTokens: 'abc' } as unknown as SseMcpOptions)
  await assert.rejects(async () => { await app.ready() }, (err: Error) => err instanceof ConfigError &&
    err.message === 'Invalid option: rateLimitMax="lots" must be a whole number ≥ 0 (like RATE_LIMIT_MAX)\nInvalid option: authTokens=<redacted> must be an array of strings, e.g. ["a", "b"]')
  await app.close()
})

test('buildApp refuses them too; a full config from the environment, the plugin\'s own switches and a prefix pass', async () => {
  await assert.rejects(buildApp({ authTokens: 'abc', logger: false } as never), /^ConfigError: Invalid option: authTokens=<redacted> must be an array of strings/)
  const app = await buildApp({ ...loadConfig({}), builtins: false, prefix: '/api', logger: false })
  await app.close()
})
