import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readJson } from '../src/json.js'
import { build } from './helper.js'

const limits = { maxDepth: 64, maxKeys: 100, maxStringBytes: 1000 }

test('a body nested deeper than the limit is refused before parsing, without recursion', () => {
  const bomb = '['.repeat(200_000) + ']'.repeat(200_000)
  const r = readJson(bomb, limits)
  assert.equal(r.ok, false)
  assert.equal(r.ok ? '' : r.reason, 'depth')
})

test('nesting at the limit parses; brackets inside strings do not count', () => {
  const ok = '['.repeat(64) + '"[[[[{{{{\\"["' + ']'.repeat(64)
  const r = readJson(ok, limits)
  assert.equal(r.ok, true)
})

test('too many keys and too long strings are refused; bad JSON is a syntax error', () => {
  const many = JSON.stringify(Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, i])))
  assert.equal((readJson(many, limits) as { reason: string }).reason, 'keys')
  assert.equal((readJson(JSON.stringify({ s: 'x'.repeat(1001) }), limits) as { reason: string }).reason, 'string')
  assert.equal((readJson('{"a":', limits) as { reason: string }).reason, 'syntax')
})

test('a depth bomb sent to a JSON route outside MCP is a 400, not a 500', async (t) => {
  const app = await build(t)
  const data = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000)
  const res = await app.inject({ method: 'POST', url: '/broadcast', headers: { 'content-type': 'application/json' }, payload: `{"event":"x","data":${data}}` })
  assert.equal(res.statusCode, 400)
  assert.match(res.json().message, /nesting is deeper than 64/)
})
