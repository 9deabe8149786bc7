import fp from 'fastify-plugin'
import cors from '@fastify/cors'
import type { FastifyPluginAsync } from 'fastify'
import { originAllowed } from '../src/config.js'

/** Request headers a browser MCP client sends. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'MCP-Protocol-Version', 'Last-Event-ID',
  'Mcp-Method', 'Mcp-Name'
]
/** Response headers a browser must be allowed to read; without Mcp-Session-Id it loses the session. */
export const CORS_EXPOSED_HEADERS = ['Mcp-Session-Id', 'MCP-Protocol-Version', 'WWW-Authenticate', 'Retry-After']

/** CORS for browser clients, driven by ALLOWED_ORIGINS. */
const corsPlugin: FastifyPluginAsync = async (app) => {
  const allowed = app.config.allowedOrigins
  await app.register(cors, {
    origin: (origin, cb) => { cb(null, origin === undefined || originAllowed(origin, allowed)) },
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: 86400,
    strictPreflight: false
  })
}

export default fp(corsPlugin, { name: 'cors', dependencies: ['config'] })
