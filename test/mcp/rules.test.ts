import { test } from 'node:test'
import assert from 'node:assert/strict'
import { listenAcknowledged, listenComplete } from '../../src/mcp/stateless.js'
import { insufficientScope } from '../../src/oauth.js'

/** Protocol rules that left the routes: the listen stream's first and last messages, the scope step-up. */

test('a listen stream starts with the acknowledgment of its filter and ends with the request\'s result', () => {
  const filter = { toolsListChanged: true }
  assert.deepEqual(listenAcknowledged(7, filter), {
    jsonrpc: '2.0',
    method: 'notifications/subscriptions/acknowledged',
    params: { _meta: { 'io.modelcontextprotocol/subscriptionId': 7 }, notifications: filter }
  })
  assert.deepEqual(listenComplete('s1'), {
    jsonrpc: '2.0', id: 's1', result: { resultType: 'complete', _meta: { 'io.modelcontextprotocol/subscriptionId': 's1' } }
  })
})

test('a call needing scopes the token lacks gets the insufficient_scope challenge naming all it needs', () => {
  const meta = 'https://mcp.example/.well-known/oauth-protected-resource/mcp'
  assert.equal(insufficientScope(['a'], ['a', 'b'], meta), undefined)
  assert.equal(insufficientScope([], [], meta), undefined)
  assert.deepEqual(insufficientScope(['a', 'b'], ['a'], meta), {
    challenge: `Bearer error="insufficient_scope", scope="a b", resource_metadata="${meta}"`,
    message: 'Forbidden: this tool needs the scope(s) b'
  })
})
