import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StreamChecker, type Received } from './stream-checker.js'

/** A checker fed `events` (ids `p-<epoch>-<seq>`, payload `x<seq>` unless given) at times 1, 2, 3 … */
function fed (events: Array<Received | [epoch: string, seq: number, payload?: string] | 'evicted'>): StreamChecker {
  const c = new StreamChecker('s')
  events.forEach((ev, i) => {
    if (ev === 'evicted') c.record({ event: 'evicted' }, i + 1)
    else if (Array.isArray(ev)) c.record({ id: `p-${ev[0]}-${ev[1]}`, event: 'tick', payload: ev[2] ?? `x${ev[0]}${ev[1]}` }, i + 1)
    else c.record(ev, i + 1)
  })
  return c
}

test('a clean stream, with an announced new epoch, has no problems', () => {
  assert.deepEqual(fed([['e1', 1], ['e1', 2], ['e1', 3], 'evicted', ['e2', 1], ['e2', 2]]).problems(), [])
  // A resume past trimmed history: evicted, then a jump forward in the same epoch.
  assert.deepEqual(fed([['e1', 1], 'evicted', ['e1', 7]]).problems(), [])
})

test('a silent gap is flagged', () => {
  assert.match(fed([['e1', 1], ['e1', 2], ['e1', 4]]).problems().join('\n'), /silent gap: seq 2 then 4/)
})

test('a duplicate (the same id twice, or the same payload under another id) is flagged', () => {
  assert.match(fed([['e1', 1], ['e1', 2], ['e1', 2]]).problems().join('\n'), /id p-e1-2 delivered twice/)
  assert.match(fed([['e1', 1], ['e1', 2, 'same'], ['e1', 3, 'same']]).problems().join('\n'), /same delivered twice/)
})

test('an out-of-order delivery is flagged (by seq and by source order)', () => {
  assert.match(fed([['e1', 1], ['e1', 3], ['e1', 2]]).problems().join('\n'), /silent gap: seq 1 then 3[\s\S]*out of order: seq 3 then 2/)
  const c = fed([
    { id: 'p-e1-1', event: 'tick', payload: 'A.2', source: 'A', n: 2 },
    { id: 'p-e1-2', event: 'tick', payload: 'A.1', source: 'A', n: 1 }
  ])
  assert.match(c.problems().join('\n'), /out of order: A 2 then 1/)
})

test('a new epoch without evicted, or a return to an old epoch, is flagged', () => {
  assert.match(fed([['e1', 1], ['e2', 1]]).problems().join('\n'), /new epoch e1 → e2 .* without evicted/)
  assert.match(fed([['e1', 1], 'evicted', ['e2', 1], 'evicted', ['e1', 2]]).problems().join('\n'), /back to epoch e1/)
})

test('a reused id after a rewind is flagged, even with evicted announced', () => {
  // The log came back from an older snapshot: same epoch, lower seq, other events under old ids.
  const rewound = fed([['e1', 1], ['e1', 2], ['e1', 3], 'evicted', ['e1', 2, 'new-2'], ['e1', 3, 'new-3']])
  assert.match(rewound.problems().join('\n'), /id p-e1-2 reused for another event/)
  // Not yet seen ids at or below what was delivered are reused too.
  const c = new StreamChecker('s')
  c.record({ id: 'p-e1-5', event: 'tick', payload: 'a' }, 1)
  c.record({ event: 'evicted' }, 2)
  c.record({ id: 'p-e1-4', event: 'tick', payload: 'b' }, 3)
  assert.match(c.problems().join('\n'), /id p-e1-4 reused after a rewind/)
})

test('an accepted payload that never arrives is a silent loss unless an evicted (or an announced end) came after it was sent', () => {
  const c = new StreamChecker('s')
  c.expect('a', 1)
  c.expect('b', 2)
  c.record({ id: 'p-e1-1', event: 'tick', payload: 'a' }, 3)
  assert.deepEqual(c.missing(), ['b'])
  assert.deepEqual(c.checkpoint('phase 1'), ['b'])
  assert.match(c.problems().join('\n'), /1 lost silently by phase 1 \(e\.g\. b\)/)
  // A later evicted does not excuse a loss already reported at a checkpoint.
  c.record({ event: 'evicted' }, 10)
  assert.deepEqual(c.missing(), [])
  assert.equal(c.problems().length, 1)

  const announced = new StreamChecker('t')
  announced.expect('x', 1)
  announced.record({ event: 'evicted' }, 2)
  announced.expect('y', 3)
  announced.end('session gone', 4)
  announced.expect('z', 5)
  assert.deepEqual(announced.missing(), ['z'])
  // An evicted received before the payload was sent does not announce its loss.
  const early = new StreamChecker('u')
  early.record({ event: 'evicted' }, 1)
  early.expect('late', 2)
  assert.deepEqual(early.missing(), ['late'])
})
