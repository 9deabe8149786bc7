// A tool for the chaos test (MCP_TOOLS): reports progress `count` times, `ms` apart, then answers.
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from '@sinclair/typebox'

export default {
  name: 'ticker',
  description: 'Reports progress 1..count, ms apart, then answers',
  inputSchema: Type.Object({ count: Type.Integer({ minimum: 1, maximum: 1000 }), ms: Type.Integer({ minimum: 0, maximum: 10_000 }) }),
  handler: async ({ count, ms }, ctx) => {
    for (let i = 1; i <= count; i++) {
      await ctx.progress(i, count)
      await sleep(ms, undefined, { signal: ctx.signal })
    }
    return { content: [{ type: 'text', text: `ticked ${count}` }] }
  }
}
