import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { createHub, type HubImpl } from '../src/hub/hub.js'
import { MemoryEventLog } from '../src/hub/memory.js'
import { OverCapacityError, type AttachOptions, type Bus, type Connection, type EventLog } from '../src/hub/types.js'

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

/** Chooses the replay log and bus: in memory by default (one process). */
async function backends (_app: Parameters<FastifyPluginAsync>[0], replayBufferSize: number): Promise<{ log: EventLog, bus?: Bus }> {
  // Scale-out: when config.redisUrl is set, the Redis log and bus are chosen here.
  return { log: new MemoryEventLog(replayBufferSize) }
}

/** The SSE hub as `app.hub`: every stream the server holds goes through it. */
const hubPlugin: FastifyPluginAsync = async (app) => {
  const { maxConnections, heartbeatIntervalMs, replayBufferSize } = app.config
  const { log, bus } = await backends(app, replayBufferSize)
  const core = createHub({ log, bus, maxConnections, heartbeatIntervalMs })
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

export default fp(hubPlugin, { name: 'sse-hub', dependencies: ['config', 'lifecycle'] })
