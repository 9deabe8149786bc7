import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { POLICY } from '../plugins/policy.js'
import { resourceMetadata } from '../src/oauth.js'

/**
 * RFC 9728 protected-resource metadata, when OAuth mode is configured (public, like /health), at
 * the origin's /.well-known followed by the resource's path (what WWW-Authenticate names) and by
 * `<prefix>/mcp`; without a prefix also at the bare /.well-known/oauth-protected-resource.
 */
const oauthMetadataRoutes: FastifyPluginAsyncTypebox<{ mcpPrefix?: string }> = async (app, opts) => {
  const oauth = app.config.oauth
  if (oauth === undefined) return
  const document = resourceMetadata(oauth)
  const base = '/.well-known/oauth-protected-resource'
  const prefix = opts.mcpPrefix ?? ''
  const resourcePath = new URL(oauth.resource).pathname.replace(/\/$/, '')
  const urls = new Set([`${base}${prefix}/mcp`, `${base}${resourcePath}`])
  if (prefix === '') urls.add(base)
  for (const url of urls) {
    app.get(url, { config: { policy: POLICY.open } }, async (_request, reply) => await reply.header('cache-control', 'public, max-age=3600').send(document))
  }
}

export default oauthMetadataRoutes
