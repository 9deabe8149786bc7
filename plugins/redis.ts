import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Redis } from 'ioredis'
import { createRedis, RedisBus } from '../src/hub/redis.js'

export interface RedisConnections {
  /** Commands (logs, sessions, targets) and publishing. */
  client: Redis
  /** Pub/sub between replicas (its own subscriber connection). */
  bus: RedisBus
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The Redis connections when REDIS_URL is set; null for the in-memory default. */
    redis: RedisConnections | null
  }
}

/**
 * Scale-out: with REDIS_URL, one command connection and one subscriber connection shared by the
 * hub (replay log, bus, broadcast targets) and the MCP sessions. Redis being down makes /ready 503
 * and requests that need it fail with clear errors; the clients reconnect by themselves.
 */
const redisPlugin: FastifyPluginAsync = async (app) => {
  const url = app.config.redisUrl
  if (url === undefined) {
    app.decorate('redis', null)
    return
  }
  let lastError = ''
  const onError = (err: Error): void => {
    // One line per distinct error, not one per retry.
    if (err.message !== lastError) app.log.warn({ err: err.message }, 'redis error')
    lastError = err.message
  }
  const client = createRedis(url, onError)
  const sub = createRedis(url, onError)
  client.on('ready', () => { if (lastError) app.log.info('redis connection restored'); lastError = '' })
  app.decorate('redis', { client, bus: new RedisBus(client, sub) })
  app.lifecycle.addReadinessCheck('redis', async () => {
    if (client.status !== 'ready') return false
    return await Promise.race([
      client.ping().then((r) => r === 'PONG', () => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000).unref())
    ])
  })
  app.addHook('onClose', async () => {
    await Promise.allSettled([client.quit(), sub.quit()])
    client.disconnect()
    sub.disconnect()
  })
}

export default fp(redisPlugin, { name: 'redis', dependencies: ['config', 'lifecycle'] })
