import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import { createHub, type HubImpl, type HubOptions } from '../src/hub/hub.js'
import { RedisEventLog, RedisTargets } from '../src/hub/redis.js'
import { MemoryEventLog } from '../src/hub/memory.js'
import { OverCapacityError, type AttachOptions, type Connection } from '../src/hub/types.js'

export type Hub = HubImpl & {
  /**
   * Route helper: hijacks the reply and attaches it as an SSE stream, copying the headers Fastify
   * has set so far (CORS!). Over capacity it answers 503 + Retry-After instead and returns undefined.
   */
  open (reply: FastifyReply, opts: AttachOptions): Promise<Connection | undefined>
}

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub
  }
}

/** Chooses the replay log, bus and broadcast targets: in memory by default, Redis when scaled out. */
function backends (app: FastifyInstance): Pick<HubOptions, 'log' | 'bus' | 'targets'> {
  const { replayBufferSize, sessionIdleTimeoutMs } = app.config
  if (app.redis === null) return { log: new MemoryEventLog(replayBufferSize) }
  return {
    log: new RedisEventLog(app.redis.client, replayBufferSize, sessionIdleTimeoutMs),
    bus: app.redis.bus,
    targets: new RedisTargets(app.redis.client)
  }
}

/** The SSE hub as `app.hub`: every stream the server holds goes through it. */
const hubPlugin: FastifyPluginAsync = async (app) => {
  const { maxConnections, heartbeatIntervalMs } = app.config
  const core = createHub({ ...backends(app), maxConnections, heartbeatIntervalMs })
  const open: Hub['open'] = async (reply, opts) => {
    if (app.lifecycle.draining || !core.hasCapacity()) {
      core.rejectedOverCapacity++
      const err = new OverCapacityError()
      await reply.code(503).header('retry-after', String(err.retryAfterSeconds))
        .send({ statusCode: 503, error: 'Service Unavailable', message: err.message })
      return undefined
    }
    reply.hijack()
    return await core.attach(reply.raw, { ...opts, headers: { ...reply.getHeaders(), ...opts.headers } })
  }
  app.decorate('hub', Object.assign(core, { open }))
  // Streams are told before the server stops accepting and cuts sockets.
  app.addHook('preClose', async () => { await core.close() })
}

export default fp(hubPlugin, { name: 'sse-hub', dependencies: ['config', 'lifecycle', 'redis'] })
