import type { Mcp } from './api.js'
import type { McpServer } from './server.js'
import type { SessionStore, SessionRecord } from './sessions/store.js'
import type { SessionLedger } from './sessions/ledger.js'
import type { ListenStreams, StatelessEngine, Change } from './stateless.js'
import type { RequestStateCodec } from './mrtr.js'
import type { RequestRuns } from './scale-out.js'
import type { JsonRpcNotification, JsonRpcResponse } from './jsonrpc.js'
import type { ClientBudget } from '../budget.js'
import { catalogOf } from './registry.js'

/**
 * The engine behind `app.mcp`, for the routes, metrics and health (and tests): internal, under a
 * symbol no host app can clash with, and typed only here, so it is not in the package's types
 * (test/e2e/public-types.test.ts). plugins/mcp.ts builds it.
 */
export const kEngine = Symbol('sse-mcp-server engine')

export interface McpEngine {
  /** The protocol engine of the session era (the transports use it). */
  server: McpServer
  /** The stateless (2026-07-28) era on the same engine. */
  stateless: StatelessEngine
  /** subscriptions/listen streams open on this process. */
  listeners: ListenStreams
  /** Tells listen streams on every replica about a change (their filters decide who gets it). */
  changed: (change: Change) => Promise<void>
  sessions: SessionStore
  /** MAX_SESSIONS_PER_CLIENT units and each session's request stream keys. */
  ledger: SessionLedger
  /** MAX_INFLIGHT_PER_CLIENT: stateless requests running per client (shared by the replicas with Redis). */
  statelessInflight: ClientBudget
  /** Run leases of session requests (Redis only): see RequestRuns. */
  runs: RequestRuns | undefined
  /** MRTR requestState (MAX_STATE_BYTES refusals are counted in the budgets registry). */
  stateCodec: RequestStateCodec
  /** Ends a session on every path (DELETE, idle eviction, HTTP+SSE stream close). */
  endSession: (id: string, reason: string) => Promise<void>
  /**
   * A client's response or notification. Responses to server→client requests and cancellations
   * reach the replica where the request is awaited or runs, wherever the client's POST landed.
   */
  receive: (msg: JsonRpcResponse | JsonRpcNotification, session: SessionRecord) => Promise<void>
  stats: () => { sessions: number }
}

declare module 'fastify' {
  interface FastifyInstance {
    [kEngine]: McpEngine
  }
}

/** The public API over an engine: what `app.mcp` is. */
export function publicApi (engine: Pick<McpEngine, 'server' | 'changed'>, broadcast: Mcp['broadcast']): Mcp {
  const { server, changed } = engine
  return {
    tool (def) { server.tool(def) },
    resource (def) { server.resource(def) },
    resourceTemplate (def) { server.resourceTemplate(def) },
    prompt (def) { server.prompt(def) },
    removeTool (name) { return server.registry.removeTool(name) },
    removeResource (uri) { return server.registry.removeResource(uri) },
    removePrompt (name) { return server.registry.removePrompt(name) },
    async resourceUpdated (uri) { await Promise.all([server.resourceUpdated(uri), changed({ kind: 'resource', uri })]) },
    catalog () { return catalogOf(server.registry) },
    observe (observer) { server.observe(observer) },
    broadcast
  }
}
