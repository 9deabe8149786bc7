import { readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync(new URL('../' + (import.meta.url.includes('/dist/') ? '../' : '') + 'package.json', import.meta.url), 'utf8')) as { name: string, version: string }

/** Server identity, as reported by /health and MCP `serverInfo`. */
export const SERVER_NAME: string = pkg.name
export const SERVER_VERSION: string = pkg.version

/**
 * Stateless protocol versions (2026-07-28 and later): stateless, every request carries its version,
 * client info and capabilities in `_meta`; no initialize, no sessions.
 */
export const STATELESS_PROTOCOL_VERSIONS = ['2026-07-28'] as const
/** Session protocol versions: an `initialize` handshake opens a session (2024-11-05 is HTTP+SSE). */
export const SESSION_PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const
/** Every protocol version this server speaks, newest first (both eras, one endpoint). */
export const PROTOCOL_VERSIONS = [...STATELESS_PROTOCOL_VERSIONS, ...SESSION_PROTOCOL_VERSIONS] as const
export type ProtocolVersion = typeof PROTOCOL_VERSIONS[number]
/** The newest session-based version: what `initialize` negotiates to when asked for one we lack. */
export const LATEST_PROTOCOL_VERSION: ProtocolVersion = SESSION_PROTOCOL_VERSIONS[0]
export const LATEST_STATELESS_VERSION: ProtocolVersion = STATELESS_PROTOCOL_VERSIONS[0]

export const isStatelessVersion = (v: unknown): boolean => (STATELESS_PROTOCOL_VERSIONS as readonly unknown[]).includes(v)
export const isSessionVersion = (v: unknown): boolean => (SESSION_PROTOCOL_VERSIONS as readonly unknown[]).includes(v)
