import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { HubStats, StreamKind } from '../src/hub/types.js'
import { MemoryEventLog } from '../src/hub/memory.js'
import { BUDGETS, type BudgetName } from '../src/budget.js'
import { kEngine } from '../src/mcp/engine.js'

const STREAM_KINDS: StreamKind[] = ['public', 'session', 'request', 'http+sse', 'listen']

/** The `budget` label of mcp_budget_refusals_total: the names of the budgets registry (src/budget.ts). */
export { BUDGETS }
type Budget = BudgetName

/** Label values that come from clients (method names, tool names) are capped so a client cannot blow up cardinality. */
const MAX_LABEL_VALUES = 100
const OTHER = 'other'

/** Reads a counter-like total the hub or MCP layer keeps, for a counter mirrored at scrape time. */
type Total = () => number

interface MetricsSources {
  hubStats: () => Partial<HubStats>
  sessions: () => number
  startedAt: number
  /** Refusals per budget so far (running totals kept by their owners); missing ones read 0. */
  budgetRefusals?: () => Partial<Record<Budget, number>>
  /** Failed authentications and lockouts (plugins/auth.ts FailureCounter). */
  auth?: () => { lockouts: number, untracked: number }
  /** Bytes held by the replay log (in-memory log only). */
  replayBytes?: () => number | undefined
  /** The service's sockets (src/connections.ts); absent for the plugin inside someone else's app. */
  connections?: () => { open: number, refused: number } | undefined
}

/** A bounded set of label values: the first MAX_LABEL_VALUES distinct values are kept, the rest become `other`. */
function boundedLabel () {
  const seen = new Set<string>()
  return (value: string): string => {
    if (seen.has(value)) return value
    if (seen.size >= MAX_LABEL_VALUES) return OTHER
    seen.add(value)
    return value
  }
}

/**
 * The metrics of one app instance, on their own prom-client Registry (never the global one: tests
 * build many apps in one process). HTTP and MCP traffic is counted as it happens; the hub and
 * session figures are read from their owners at scrape time.
 */
export function createMetrics (sources: MetricsSources) {
  const registry = new Registry()
  const registers = [registry]
  // Process metrics: CPU, memory, heap, handles, GC, event-loop lag (nodejs_eventloop_lag_*).
  collectDefaultMetrics({ register: registry })

  const counted = { requests: 0 }
  const methodLabel = boundedLabel()
  const toolLabel = boundedLabel()

  const httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers
  })
  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration (for SSE streams: how long the stream stayed open), by method, route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers
  })
  const authFailures = new Counter({
    name: 'http_auth_failures_total',
    help: 'Requests refused with 401 (missing or invalid credentials).',
    registers
  })
  const rateLimited = new Counter({
    name: 'http_rate_limited_total',
    help: 'Requests refused with 429 (rate limit).',
    registers
  })
  const rpcRequests = new Counter({
    name: 'mcp_jsonrpc_requests_total',
    help: 'JSON-RPC requests handled, by method and outcome (ok | error).',
    labelNames: ['method', 'outcome'] as const,
    registers
  })
  const rpcDuration = new Histogram({
    name: 'mcp_jsonrpc_request_duration_seconds',
    help: 'JSON-RPC request handling time, by method.',
    labelNames: ['method'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers
  })
  const toolDuration = new Histogram({
    name: 'mcp_tool_call_duration_seconds',
    help: 'Tool call duration, by tool and outcome (ok | error); _count is the number of calls.',
    labelNames: ['tool', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers
  })

  const sessionsGauge = new Gauge({
    name: 'mcp_sessions',
    help: 'Live MCP sessions on this process.',
    registers,
    collect () { this.set(sources.sessions()) }
  })
  const streamsGauge = new Gauge({
    name: 'sse_streams_open',
    help: `Open SSE streams on this process, by kind (${STREAM_KINDS.join(' | ')}).`,
    labelNames: ['kind'] as const,
    registers,
    collect () {
      const byKind = sources.hubStats().byKind
      for (const kind of STREAM_KINDS) this.set({ kind }, byKind?.[kind] ?? 0)
    }
  })

  /** A counter whose value is a running total someone else keeps (the hub), read at scrape time. */
  const mirrored = (name: string, help: string, total: Total) => new Counter({
    name,
    help,
    registers,
    collect () {
      this.reset()
      this.inc(Math.max(0, total()))
    }
  })
  const hub = (field: 'eventsSent' | 'eventsReplayed' | 'droppedSlowConsumers' | 'rejectedOverCapacity' | 'droppedDeadSockets' | 'evictedNotices' | 'gapReads' | 'caughtUp'): Total =>
    () => sources.hubStats()[field] ?? 0
  mirrored('sse_events_sent_total', 'SSE events written to clients.', hub('eventsSent'))
  mirrored('sse_events_replayed_total', 'SSE events replayed to reconnecting clients (Last-Event-ID).', hub('eventsReplayed'))
  mirrored('sse_slow_consumers_dropped_total', 'SSE connections dropped because the client could not keep up.', hub('droppedSlowConsumers'))
  mirrored('sse_connections_rejected_total', 'SSE connections refused with 503 because MAX_CONNECTIONS was reached.', hub('rejectedOverCapacity'))
  mirrored('sse_dead_sockets_dropped_total', 'SSE connections ended because a write failed or stalled (no drain in time).', hub('droppedDeadSockets'))
  mirrored('sse_evicted_notices_total', 'evicted notices written (replay history gone, or the log restarted under a new epoch).', hub('evictedNotices'))
  mirrored('sse_gap_reads_total', 'Gaps between live events filled by re-reading the replay log.', hub('gapReads'))
  mirrored('sse_catch_up_events_total', 'Events written by the per-heartbeat catch-up: in the log, but their wake-up never came.', hub('caughtUp'))
  mirrored('http_auth_lockouts_total', 'Requests refused with 429 because their address had AUTH_FAILURE_MAX failed authentications in the window.', () => sources.auth?.().lockouts ?? 0)
  mirrored('http_auth_failures_untracked_total', 'Failed authentications not tracked because the per-address table was full (an attack from many addresses).', () => sources.auth?.().untracked ?? 0)

  const budgetRefusals = new Counter({
    name: 'mcp_budget_refusals_total',
    help: `Requests refused because the client was over a resource budget, by budget (${BUDGETS.join(' | ')}).`,
    labelNames: ['budget'] as const,
    registers,
    collect () {
      const totals = sources.budgetRefusals?.() ?? {}
      this.reset()
      for (const budget of BUDGETS) this.inc({ budget }, Math.max(0, totals[budget] ?? 0))
    }
  })
  mirrored('http_connections_refused_total', 'Sockets closed on arrival because their address held MAX_CONNECTIONS_PER_CLIENT.', () => sources.connections?.()?.refused ?? 0)
  new Gauge({ // eslint-disable-line no-new
    name: 'http_connections_open',
    help: 'Open sockets on the service\'s server.',
    registers,
    collect () {
      const open = sources.connections?.()?.open
      if (open !== undefined) this.set(open)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'sse_replay_bytes',
    help: 'Bytes of events held by the in-memory replay log (REPLAY_TOTAL_BYTES bounds it); absent with Redis.',
    registers,
    collect () {
      const bytes = sources.replayBytes?.()
      if (bytes !== undefined) this.set(bytes)
    }
  })

  return {
    registry,
    /** The Content-Type of `text()` (Prometheus text exposition 0.0.4). */
    contentType: registry.contentType,
    httpRequests,
    authFailures,
    rateLimited,
    rpcRequests,
    toolDuration,
    sessionsGauge,
    streamsGauge,
    budgetRefusals,

    /** Counts one answered HTTP request. `route` is the route pattern (never the raw URL), `unmatched` for 404s. */
    recordHttp (method: string, route: string | undefined, statusCode: number, seconds: number) {
      const labels = { method, route: route ?? 'unmatched', status_code: String(statusCode) }
      counted.requests++
      httpRequests.inc(labels)
      httpDuration.observe(labels, seconds)
      if (statusCode === 401) authFailures.inc()
      else if (statusCode === 429) rateLimited.inc()
    },
    /** Counts one JSON-RPC request. Unknown methods (-32601) share one label so clients cannot create series. */
    recordRpc (method: string, outcome: 'ok' | 'error', ms: number, code?: number) {
      const label = code === -32601 ? 'unknown' : methodLabel(method)
      rpcRequests.inc({ method: label, outcome })
      rpcDuration.observe({ method: label }, ms / 1000)
    },
    recordTool (name: string, ms: number, isError: boolean) {
      toolDuration.observe({ tool: toolLabel(name), outcome: isError ? 'error' : 'ok' }, ms / 1000)
    },

    /** Prometheus text exposition. */
    async text (): Promise<string> {
      return await registry.metrics()
    },

    /** The JSON view: the seed's fields first, then the rest. */
    async json () {
      const stats = sources.hubStats()
      const mem = process.memoryUsage()
      const byKind: Record<string, number> = {}
      for (const kind of STREAM_KINDS) byKind[kind] = stats.byKind?.[kind] ?? 0

      const jsonrpc: Record<string, { ok: number, error: number }> = {}
      for (const v of (await rpcRequests.get()).values) {
        const method = String(v.labels.method)
        const entry = jsonrpc[method] ?? (jsonrpc[method] = { ok: 0, error: 0 })
        if (v.labels.outcome === 'error') entry.error += v.value
        else entry.ok += v.value
      }
      const tools: Record<string, { calls: number, errors: number, totalSeconds: number }> = {}
      for (const v of (await toolDuration.get()).values) {
        if (!('metricName' in v) || (v.metricName !== 'mcp_tool_call_duration_seconds_count' && v.metricName !== 'mcp_tool_call_duration_seconds_sum')) continue
        const tool = String(v.labels.tool)
        const entry = tools[tool] ?? (tools[tool] = { calls: 0, errors: 0, totalSeconds: 0 })
        if (v.metricName.endsWith('_sum')) entry.totalSeconds += v.value
        else {
          entry.calls += v.value
          if (v.labels.outcome === 'error') entry.errors += v.value
        }
      }
      const byStatus: Record<string, number> = {}
      for (const v of (await httpRequests.get()).values) {
        const status = String(v.labels.status_code)
        byStatus[status] = (byStatus[status] ?? 0) + v.value
      }

      return {
        active_connections: stats.streams ?? 0,
        total_requests: counted.requests,
        uptime: Math.round((Date.now() - sources.startedAt) / 1000),
        memory_usage: {
          rss: mem.rss,
          heapTotal: mem.heapTotal,
          heapUsed: mem.heapUsed,
          external: mem.external,
          arrayBuffers: mem.arrayBuffers
        },
        sessions: sources.sessions(),
        streams_by_kind: byKind,
        requests_by_status: byStatus,
        jsonrpc_requests: jsonrpc,
        tool_calls: tools,
        events_sent: stats.eventsSent ?? 0,
        events_replayed: stats.eventsReplayed ?? 0,
        dropped_slow_consumers: stats.droppedSlowConsumers ?? 0,
        rejected_over_capacity: stats.rejectedOverCapacity ?? 0,
        auth_failures: (await authFailures.get()).values[0]?.value ?? 0,
        auth_lockouts: sources.auth?.().lockouts ?? 0,
        rate_limited: (await rateLimited.get()).values[0]?.value ?? 0,
        budget_refusals: Object.fromEntries(BUDGETS.map((b) => [b, sources.budgetRefusals?.()[b] ?? 0]))
      }
    }
  }
}
export type Metrics = ReturnType<typeof createMetrics>

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/** Bytes the in-memory replay log holds; undefined with Redis (the log lives there). */
function replayLogBytes (app: FastifyInstance): number | undefined {
  const log = app.hub.replayLog
  return log instanceof MemoryEventLog ? log.bytes : undefined
}

/**
 * Prometheus metrics: decorates `app.metrics`; counts every answered HTTP request (onResponse, by
 * route pattern and status), and JSON-RPC requests and tool calls through `app.mcp.observe`; budget
 * refusals are read from the budgets registry (`app.budgetRefusals`). routes/metrics.ts serves them.
 */

const metricsPlugin: FastifyPluginAsync = async (app) => {
  const metrics = createMetrics({
    // Read defensively: a hub may report only part of HubStats.
    hubStats: (): Partial<HubStats> => app.hub.stats(),
    sessions: () => app[kEngine].stats().sessions,
    startedAt: app.lifecycle.startedAt,
    budgetRefusals: () => app.budgetRefusals.totals(),
    auth: () => ({ lockouts: app.auth.failures.lockouts, untracked: app.auth.failures.untracked }),
    replayBytes: () => replayLogBytes(app),
    connections: () => app.connections
  })
  app.decorate('metrics', metrics)

  app.mcp.observe({
    rpc (e) { metrics.recordRpc(e.method, e.outcome, e.ms, e.code) },
    tool (e) { metrics.recordTool(e.name, e.ms, e.isError) }
  })

  app.addHook('onResponse', async (request, reply) => {
    metrics.recordHttp(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000)
  })

  app.addHook('onClose', async () => { metrics.registry.clear() })
}

export default fp(metricsPlugin, { name: 'metrics', dependencies: ['config', 'lifecycle', 'budgets', 'sse-hub', 'mcp'] })
