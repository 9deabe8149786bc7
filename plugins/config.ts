import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../src/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

/** Makes the validated configuration available as `app.config`. */
const configPlugin: FastifyPluginAsync<{ config: Config }> = async (app, opts) => {
  app.decorate('config', opts.config)
}

export default fp(configPlugin, { name: 'config', fastify: '5.x' })
