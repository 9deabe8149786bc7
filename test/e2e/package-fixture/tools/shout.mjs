// tools/shout.mjs — a function gets the MCP registration API (and the Fastify app).
import { z } from 'zod'

export default async function (mcp) {
  mcp.tool({
    name: 'shout',
    description: 'Upper-cases a text',
    inputSchema: z.object({ text: z.string().max(1000) }),
    handler: ({ text }) => ({ content: [{ type: 'text', text: text.toUpperCase() }] })
  })
  mcp.resource({
    uri: 'memo://motto',
    name: 'motto',
    mimeType: 'text/plain',
    read: (uri) => ({ contents: [{ uri, mimeType: 'text/plain', text: 'Keep it small.' }] })
  })
}
