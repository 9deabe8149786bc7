import type { JsonRpcNotification } from './jsonrpc.js'

/**
 * An operator broadcast (POST /broadcast) as the sessions see it: `notifications/message` from the
 * `broadcast` logger with `{ event, data }` (the public stream gets the event as it is).
 */
export function broadcastNotification (event: string, data: unknown): JsonRpcNotification {
  return { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', logger: 'broadcast', data: { event, data: data ?? null } } }
}
