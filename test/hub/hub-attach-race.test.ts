import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { HubImpl } from '../../src/hub/hub.js'
import { MemoryBus } from '../../src/hub/memory.js'
import type { Bus } from '../../src/hub/types.js'
import { openSse } from '../sse-client.js'
import { twoReplicas } from './replicas.js'

// Two replicas (hubs) share a log and a bus whose SUBSCRIBE takes a while, as Redis's does over
// the network. A stream opened on B must not miss an event A publishes while B is subscribing,
// nor one A publishes as soon as the client has the stream's first event (its prelude).

class SlowBus implements Bus {
  readonly #inner = new MemoryBus()
  constructor (readonly delayMs: number) {}
  async publish (channel: string, payload: string): Promise<void> { await this.#inner.publish(channel, payload) }
  async subscribe (channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    return await this.#inner.subscribe(channel, handler)
  }

  async close (): Promise<void> { await this.#inner.close() }
}

async function replicas (t: TestContext): Promise<{ a: HubImpl, b: HubImpl, url: string }> {
  return await twoReplicas(t, new SlowBus(150))
}

test('an event published on another replica right after the prelude arrives (the prelude means subscribed)', async (t) => {
  const { a, url } = await replicas(t)
  const s = await openSse(url)
  t.after(() => s.close())
  assert.equal((await s.next())?.event, 'welcome')
  await a.publish('public', { event: 'news', data: '1' })
  assert.equal((await s.next(2000))?.data, '1')
})

test('an event published on another replica while the stream is still subscribing arrives once', async (t) => {
  const { a, b, url } = await replicas(t)
  const s = await openSse(url)
  t.after(() => s.close())
  // The request has reached B and B is waiting for its subscription: publish now, on A.
  while (b.stats().streams === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  await a.publish('public', { event: 'news', data: 'early' })
  await a.publish('public', { event: 'news', data: 'later' })
  assert.equal((await s.next())?.event, 'welcome')
  assert.deepEqual([(await s.next(2000))?.data, (await s.next(2000))?.data], ['early', 'later'])
})
