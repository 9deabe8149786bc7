/**
 * The hub's own names in Redis and on the bus. The `mcp:` prefix is kept for the data replicas
 * already share (a rolling upgrade must find the logs where older replicas wrote them);
 * src/mcp/keys.ts lists these with every other key.
 */
export const hubKeys = {
  /** A stream key's replay log (a Redis Stream). */
  log: (key: string): string => `mcp:log:${key}`,
  /** A stream key's epoch and sequence counter (a hash). */
  seq: (key: string): string => `mcp:seq:${key}`,
  /** Set once a stream key has ended. */
  end: (key: string): string => `mcp:end:${key}`,
  /** The dataset marker { id, run, n }: which life of the Redis data this is (src/hub/dataset.ts). */
  dataset: 'mcp:dataset',
  /** The set of broadcast targets (stream keys that get operator broadcasts). */
  targets: 'mcp:targets',
  /** The bus channel of a stream key's live events. */
  channel: (key: string): string => `hub:${key}`
} as const

/** The hub's key of the public stream (operator broadcasts go there as they are). */
export const PUBLIC_KEY = 'public'

/** The default event-id prefix of a key: `p` for the public stream, else its last `:` segment (the MCP side passes its own rule). */
export const lastSegment = (key: string): string => key === PUBLIC_KEY ? 'p' : key.slice(key.lastIndexOf(':') + 1)
