import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { POLICY } from '../plugins/policy.js'
import { resourceMetadata } from '../src/oauth.js'

/** RFC 9728 protected-resource metadata, when OAuth mode is configured (public, like /health). */
const oauthMetadataRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const oauth = app.config.oauth
  if (oauth === undefined) return
  const document = resourceMetadata(oauth)
  for (const url of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
    app.get(url, { config: { policy: POLICY.open } }, async (_request, reply) => await reply.header('cache-control', 'public, max-age=3600').send(document))
  }
}

export default oauthMetadataRoutes
