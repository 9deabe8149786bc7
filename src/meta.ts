import { readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync(new URL('../' + (import.meta.url.includes('/dist/') ? '../' : '') + 'package.json', import.meta.url), 'utf8')) as { name: string, version: string }

/** Server identity, as reported by /health and MCP `serverInfo`. */
export const SERVER_NAME: string = pkg.name
export const SERVER_VERSION: string = pkg.version

/** Protocol versions this server speaks, newest first. */
export const PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const
export type ProtocolVersion = typeof PROTOCOL_VERSIONS[number]
export const LATEST_PROTOCOL_VERSION: ProtocolVersion = PROTOCOL_VERSIONS[0]
