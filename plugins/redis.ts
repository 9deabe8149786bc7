import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Redis } from 'ioredis'
import { createRedis, redisTarget, RedisBus } from '../src/hub/redis.js'
import { ConfigError } from '../src/config.js'
import { RedisDataset } from '../src/hub/dataset.js'

export interface RedisConnections {
  /** Commands (logs, sessions, targets) and publishing. */
  client: Redis
  /** Pub/sub between replicas (its own subscriber connection). */
  bus: RedisBus
  /**
   * The dataset identity (src/hub/dataset.ts): `current` (no Redis call), `check()` (one round trip),
   * `onChange(listener)` when Redis lost or may have lost data. Checked on every (re)connect and at
   * every heartbeat by the hub; every log append and read checks it too.
   */
  dataset: RedisDataset
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The Redis connections when REDIS_URL (or REDIS_SENTINELS) is set; null for the in-memory default. */
    redis: RedisConnections | null
  }
}

/** REDIS_URL as it may be shown: without its password. */
function shownUrl (url: string): string {
  if (!URL.canParse(url)) return url
  const u = new URL(url)
  if (u.password !== '') u.password = '***'
  return u.href
}

/**
 * At start the server refuses to run without the Redis it was given (rather than serving sessions
 * no other replica can see): the first connection error is a ConfigError, one line that says what
 * to do. The connections are closed, so nothing keeps retrying in the background.
 */
async function connected (clients: Redis[], where: string, fix: string): Promise<void> {
  await Promise.all(clients.map(async (client) => {
    if (client.status === 'ready') return
    await new Promise<void>((resolve, reject) => {
      const onReady = (): void => { client.off('error', onError); resolve() }
      const onError = (err: Error): void => {
        client.off('ready', onReady)
        reject(new ConfigError(`Cannot reach Redis at ${where} (${err.message || (err as { code?: string }).code || 'connection failed'}): start Redis there or fix ${fix}; the server does not start without it`))
      }
      client.once('ready', onReady)
      client.once('error', onError)
    })
  })).catch((err: unknown) => {
    for (const client of clients) client.disconnect()
    throw err
  })
}

/**
 * Scale-out: with REDIS_URL (or REDIS_SENTINELS), one command connection and one subscriber
 * connection shared by the hub (replay log, bus, broadcast targets) and the MCP sessions. Redis
 * unreachable at start refuses the start (one line); Redis going down later makes /ready 503 and
 * requests that need it fail with clear errors; the clients reconnect by themselves.
 */
const redisPlugin: FastifyPluginAsync = async (app) => {
  const url = redisTarget(app.config)
  if (url === undefined) {
    app.decorate('redis', null)
    return
  }
  let lastError = ''
  let starting = true
  const onError = (err: Error): void => {
    // At start the refusal below says it; after, one line per distinct error, not one per retry.
    if (starting) return
    if (err.message !== lastError) app.log.warn({ err: err.message }, 'redis error')
    lastError = err.message
  }
  const client = createRedis(url, onError, app.config.redisCommandTimeoutMs)
  const sub = createRedis(url, onError, app.config.redisCommandTimeoutMs)
  const dataset = new RedisDataset(client)
  dataset.onChange((next, previous) => {
    if (previous === undefined) app.log.info({ dataset: next.id }, 'redis dataset marker written (Redis was empty, or restarted or failed over since the marker was written)')
    else app.log.warn({ dataset: next.id, previous: previous.id }, 'redis dataset changed (Redis restarted, failed over or was flushed): replay logs restart under new epochs')
  })
  client.on('ready', () => {
    if (lastError) app.log.info('redis connection restored')
    lastError = ''
    // After every (re)connect: was the data lost meanwhile? (Listeners are told at once.)
    dataset.check().catch((err: unknown) => { onError(err instanceof Error ? err : new Error(String(err))) })
  })
  app.decorate('redis', { client, bus: new RedisBus(client, sub), dataset })
  // Listeners first (the first 'ready' checks the dataset), then wait: unreachable at start refuses.
  const sentinel = app.config.redisSentinel
  await connected([client, sub],
    typeof url === 'string' ? `REDIS_URL=${shownUrl(url)}` : `REDIS_SENTINELS=${sentinel?.sentinels.map((s) => `${s.host}:${s.port}`).join(',') ?? ''} (master ${sentinel?.name ?? ''})`,
    typeof url === 'string' ? 'REDIS_URL' : 'REDIS_SENTINELS / REDIS_SENTINEL_NAME')
  starting = false
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
