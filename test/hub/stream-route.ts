import type { App } from '../../src/app.js'
import { parseEventId } from '../../src/hub/types.js'
import { POLICY } from '../../plugins/policy.js'

/** A test-only route that attaches the reply to a hub key, the way the MCP routes do. */
export function addTestStreamRoute (app: App): void {
  app.get<{ Querystring: { key?: string } }>('/test-stream', { config: { policy: POLICY.open } }, async (request, reply) => {
    const key = request.query.key ?? 'public'
    const last = request.headers['last-event-id']
    const parsed = parseEventId(typeof last === 'string' ? last : undefined)
    await app.hub.open(reply, { key, kind: key === 'public' ? 'public' : 'session', streamPart: '', afterSeq: parsed?.seq, afterEpoch: parsed?.epoch })
  })
}
