import type { TestContext } from 'node:test'
import { createServer } from 'node:http'
import { createHub, type HubImpl } from '../../src/hub/hub.js'
import { streamPartOf } from '../../src/mcp/keys.js'
import { MemoryEventLog } from '../../src/hub/memory.js'
import type { Bus } from '../../src/hub/types.js'

/**
 * Two hubs ("replicas" A and B) on one shared log and the given bus; B's public stream is served on
 * a real port. The bus decides how A's events reach B (slow, manual, out of order…).
 */
export async function twoReplicas (t: TestContext, bus: Bus, gapTimeoutMs = 60_000): Promise<{
  a: HubImpl
  b: HubImpl
  log: MemoryEventLog
  url: string
}> {
  const log = new MemoryEventLog(100)
  const a = createHub({ partOf: streamPartOf, log, bus, replicaId: 'A', maxConnections: 10, heartbeatIntervalMs: 60_000 })
  const b = createHub({ partOf: streamPartOf, log, bus, replicaId: 'B', maxConnections: 10, heartbeatIntervalMs: 60_000, gapTimeoutMs })
  const server = createServer((_req, res) => {
    b.attach(res, { key: 'public', kind: 'public', streamPart: 'p', prelude: [{ event: 'welcome', data: '{}' }] }).catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    await b.close()
    await a.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const addr = server.address()
  return { a, b, log, url: `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}` }
}
