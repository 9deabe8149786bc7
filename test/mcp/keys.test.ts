import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  PUBLIC_STREAM, channels, httpSseStream, isRequestPart, newListenStream, newRequestPart, newStatelessStream,
  redisKeys, requestStream, sessionOwnedStreams, sessionStream, streamPartOf
} from '../../src/mcp/keys.js'
import { formatEventId, parseEventId } from '../../src/hub/types.js'

test('stream keys are spelled as the wire and the Redis data expect', () => {
  assert.equal(PUBLIC_STREAM, 'public')
  assert.equal(sessionStream('abc'), 's:abc:g')
  assert.equal(httpSseStream('abc'), 'l:abc')
  assert.equal(requestStream('abc', 'r0a'), 's:abc:r0a')
  assert.deepEqual(sessionOwnedStreams('abc'), ['s:abc:g', 'l:abc'])
  assert.match(newStatelessStream(), /^m:[0-9a-f]{12}$/)
  assert.match(newListenStream(), /^n:[0-9a-f]{16}$/)
})

test('a request part is r + hex, fresh each time, and recognised in a Last-Event-ID', () => {
  const a = newRequestPart()
  assert.match(a, /^r[0-9a-f]{10}$/)
  assert.notEqual(a, newRequestPart())
  assert.equal(isRequestPart(a), true)
  assert.equal(isRequestPart('g'), false)
  assert.equal(isRequestPart('rX1'), false)
  const id = formatEventId(streamPartOf(requestStream('sid', a)), 'e1', 3)
  assert.deepEqual(parseEventId(id), { streamPart: a, epoch: 'e1', seq: 3 })
})

test('the stream part of a key is what its event ids start with', () => {
  assert.equal(streamPartOf(PUBLIC_STREAM), 'p')
  assert.equal(streamPartOf(httpSseStream('x:y')), 'l')
  assert.equal(streamPartOf(sessionStream('abc')), 'g')
  assert.equal(streamPartOf(requestStream('abc', 'r12')), 'r12')
})

test('Redis keys and channels', () => {
  assert.equal(redisKeys.log('s:a:g'), 'mcp:log:s:a:g')
  assert.equal(redisKeys.seq('public'), 'mcp:seq:public')
  assert.equal(redisKeys.end('l:a'), 'mcp:end:l:a')
  assert.equal(redisKeys.targets, 'mcp:targets')
  assert.equal(redisKeys.session('a'), 'mcp:session:a')
  assert.equal(redisKeys.sessionSubscriptions('a'), 'mcp:session-subs:a')
  assert.equal(redisKeys.resourceSubscribersPrefix + 'file:///x', 'mcp:resource-subs:file:///x')
  assert.equal(redisKeys.sessions, 'mcp:sessions')
  assert.equal(redisKeys.awaiting('a', 7), 'mcp:await:a:7')
  assert.equal(redisKeys.running('a', 'x'), 'mcp:run:a:x')
  assert.equal(redisKeys.stateSecret, 'mcp:state-secret')
  assert.equal(redisKeys.nonce('n'), 'mcp:nonce:n')
  assert.equal(channels.control, 'mcp:control')
  assert.equal(channels.replica('r1'), 'mcp:control:r1')
  assert.equal(channels.hub('public'), 'hub:public')
})
