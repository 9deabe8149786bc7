import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import { createHub, type HubOptions } from '../src/hub/hub.js'
import { RedisEventLog, RedisTargets } from '../src/hub/redis.js'
import { MemoryEventLog } from '../src/hub/memory.js'
import { StoreUnavailableError, clientBudget } from '../src/budget.js'
import { OverCapacityError, type AttachOptions, type CloseReason, type Connection, type EventLog, type Hub, type Release, type StreamBudget } from '../src/hub/types.js'
import { sessionOfStream, streamPartOf } from '../src/mcp/keys.js'
import { kEngine } from '../src/mcp/engine.js'
import { broadcastNotification } from '../src/mcp/broadcast.js'
import { SHUTTING_DOWN, refuse, refuseRaw } from '../src/http-error.js'
import { clientOf } from './auth.js'

/** What the Fastify adapter adds to the hub core (src/hub/types.ts `Hub`): attaching a route's reply. */
export interface HubReplies {
  /**
   * Route helper: hijacks the reply and attaches it as an SSE stream, copying the headers Fastify
   * has set so far (CORS!). The client (`reply.request.identity`, else its IP) holds one unit of
   * MAX_STREAMS_PER_CLIENT until the stream closes, on any path. Over capacity it answers 503 +
   * Retry-After, over the client's budget 429 + Retry-After, and returns undefined; when the
   * client's socket is already gone it releases at once (onClose runs) and returns undefined.
   */
  open (reply: FastifyReply, opts: AttachOptions, held?: Release): Promise<Connection | undefined>
  /**
   * MAX_STREAMS_PER_CLIENT (shared by the replicas with REDIS_URL). A route that must know before
   * it starts work whether a stream can open takes a unit here and passes it to `open` as `held`.
   */
  streamBudget: StreamBudget
  /** The replay log the hub appends to (metrics read the in-memory log's bytes). */
  replayLog: EventLog
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The SSE hub: the core (src/hub/types.ts `Hub`) plus `open(reply, opts)` for routes. */
    hub: Hub & HubReplies
  }
}

/** Chooses the replay log, bus and broadcast targets: in memory by default, Redis when scaled out. */
function backends (app: FastifyInstance): Pick<HubOptions, 'log' | 'bus' | 'targets'> {
  const { replayBufferSize, sessionIdleTimeoutMs, budgets } = app.config
  if (app.redis === null) {
    return {
      log: new MemoryEventLog({
        capacity: replayBufferSize,
        ringBytes: budgets.replayBufferBytes,
        totalBytes: budgets.replayTotalBytes,
        clientBytes: budgets.replayClientBytes
      })
    }
  }
  return {
    log: new RedisEventLog(
      app.redis.client, replayBufferSize, sessionIdleTimeoutMs, undefined, budgets.replayBufferBytes, app.redis.dataset
    ),
    bus: app.redis.bus,
    targets: new RedisTargets(app.redis.client)
  }
}

/** The SSE hub as `app.hub`: every stream the server holds goes through it. */
const hubPlugin: FastifyPluginAsync = async (app) => {
  const { maxConnections, heartbeatIntervalMs, budgets } = app.config
  const chosen = backends(app)
  const core = createHub({
    ...chosen,
    maxConnections,
    heartbeatIntervalMs,
    // The MCP side names the keys and says what a broadcast is on a session's stream.
    partOf: streamPartOf,
    targetEvent: (event, data) => ({ event: 'message', data: JSON.stringify(broadcastNotification(event, data)) }),
    onError: (err, what) => { app.log.warn({ err }, what) }
  })
  // Streams whose MCP session is gone (deleted on another replica with the wake-up lost, or lost
  // with Redis) are closed: the owner check asks the session store, once the MCP plugin is there.
  app.addHook('onReady', async () => {
    if (!app.hasDecorator(kEngine)) return
    core.setLiveness(async (keys) => {
      const bySession = new Map<string, string[]>()
      for (const key of keys) {
        const sid = sessionOfStream(key)
        if (sid !== undefined) bySession.set(sid, [...(bySession.get(sid) ?? []), key])
      }
      const dead = new Set<string>()
      await Promise.all([...bySession].map(async ([sid, owned]) => {
        if (await app[kEngine].sessions.get(sid) === undefined) for (const key of owned) dead.add(key)
      }))
      return dead
    })
  })
  const perClient = clientBudget('MAX_STREAMS_PER_CLIENT', budgets.streamsPerClient, app.redis?.client, app.budgetRefusals.counter('streams_per_client'))
  const open: HubReplies['open'] = async (reply, opts, held) => {
    const request = reply.request
    const socket = request.raw.socket
    if (reply.raw.destroyed || socket === null || socket.destroyed) {
      // The client is already gone: nothing to hijack, nothing to count.
      reply.hijack()
      held?.()
      opts.onClose?.('client')
      return undefined
    }
    if (app.lifecycle.draining) {
      held?.()
      // Shutting down is not a capacity problem: a distinct message, and not counted as one.
      await refuse(reply, 503, SHUTTING_DOWN)
      return undefined
    }
    if (!core.hasCapacity()) {
      held?.()
      core.rejectedOverCapacity++
      const err = new OverCapacityError()
      await refuse(reply, 503, err.message, { retryAfter: err.retryAfterSeconds })
      return undefined
    }
    let release: Release | undefined
    try {
      release = held ?? await perClient.take(clientOf(request))
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err
      await refuse(reply, 503, err.message, { retryAfter: err.retryAfterSeconds })
      return undefined
    }
    if (release === undefined) {
      await refuse(reply, 429, `Too many open streams for this client (MAX_STREAMS_PER_CLIENT=${perClient.limit}); close some and retry`)
      return undefined
    }
    reply.hijack()
    // A stream's ring counts against its client's share of REPLAY_TOTAL_BYTES (the public stream's is everyone's).
    if (opts.kind !== 'public' && chosen.log instanceof MemoryEventLog) chosen.log.own(opts.key, clientOf(request))
    const onClose = (reason: CloseReason): void => {
      release()
      opts.onClose?.(reason)
    }
    try {
      return await core.attach(reply.raw, { ...opts, onClose, headers: { ...reply.getHeaders(), ...opts.headers } })
    } catch (err) {
      release()
      if (!(err instanceof OverCapacityError)) throw err
      refuseRaw(reply.raw, 503, err.message, { retryAfter: err.retryAfterSeconds, extraHeaders: reply.getHeaders() })
      return undefined
    }
  }
  app.decorate('hub', Object.assign(core, { open, replayLog: chosen.log, streamBudget: perClient }))
  app.addHook('onClose', async () => { perClient.close() })
  // Streams are told before the server stops accepting and cuts sockets.
  app.addHook('preClose', async () => { await core.close() })
}

export default fp(hubPlugin, { name: 'sse-hub', dependencies: ['config', 'lifecycle', 'budgets', 'redis'] })
