import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { randomBytes } from 'node:crypto'
import { POLICY } from '../plugins/policy.js'
import { renderDocsPage } from '../src/docs-page.js'

/** Host headers we are willing to print into copy-paste commands. */
const SAFE_HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/

/** GET /docs: the self-contained documentation page with a live console (no CDN, works offline). */
const docsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const policy = app.config.docsPublic ? POLICY.publicGuarded : POLICY.client
  app.get('/docs', { config: { policy } }, async (request, reply) => {
    const address = app.server.address()
    const fallbackPort = typeof address === 'object' && address !== null ? address.port : app.config.port
    const fallbackHost = app.config.host.includes(':') ? `[${app.config.host}]` : app.config.host
    const host = SAFE_HOST.test(request.host) ? request.host : `${fallbackHost}:${fallbackPort}`
    const nonce = randomBytes(16).toString('base64')
    const html = renderDocsPage({
      // Under a plugin prefix the examples and the console use the prefixed routes.
      base: `${request.protocol}://${host}${app.prefix}`,
      prefix: app.prefix,
      // Any credential turns auth on: client tokens, operator tokens or OAuth (then the user pastes an access token).
      authOn: app.auth.enabled,
      catalog: app.mcp.catalog(),
      nonce
    })
    return reply
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        `style-src 'nonce-${nonce}'`,
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'"
      ].join('; '))
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'no-referrer')
      .header('Cache-Control', 'no-store')
      .send(html)
  })
}

export default docsRoutes
