// fastmcp (httpStream transport) with an echo tool.
import { FastMCP } from 'fastmcp'
import { z } from 'zod'

const server = new FastMCP({ name: 'fastmcp-bench', version: '1.0.0' })
server.addTool({ name: 'echo', description: 'Echo', parameters: z.object({ message: z.string() }), execute: async ({ message }) => message })
await server.start({ transportType: 'httpStream', httpStream: { port: Number(process.env.PORT), host: '127.0.0.1', endpoint: '/mcp', enableJsonResponse: process.env.JSON === '1' } })
console.log('listening')
