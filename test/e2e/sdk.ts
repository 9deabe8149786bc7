import type { TestContext } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { ignore } from '../../src/ignore.js'

export type Capabilities = ConstructorParameters<typeof Client>[1]

/** The official SDK client over Streamable HTTP, closed when the test ends. */
export async function streamableClient (t: TestContext, url: string, options: Capabilities = {}, headers: Record<string, string> = {}) {
  const client = new Client({ name: 'sdk-e2e', version: '1.0.0' }, options)
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', url), { requestInit: { headers } })
  await client.connect(transport)
  t.after(async () => { await client.close().catch(ignore('cleanup: the server may be gone')) })
  return { client, transport }
}

/** The official SDK client over the HTTP+SSE transport, closed when the test ends. */
export async function sseClient (t: TestContext, url: string, options: Capabilities = {}) {
  const client = new Client({ name: 'sdk-e2e-sse', version: '1.0.0' }, options)
  const transport = new SSEClientTransport(new URL('/sse', url))
  await client.connect(transport)
  t.after(async () => { await client.close().catch(ignore('cleanup: the server may be gone')) })
  return { client, transport }
}

/** Resolves when `check` turns true (polled), or rejects after `timeoutMs`. */
export async function until (check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
