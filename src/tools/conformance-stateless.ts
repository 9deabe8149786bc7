import { Type } from '@sinclair/typebox'
import type { McpServer } from '../mcp/server.js'
import { UserError } from '../mcp/errors.js'

// Fixtures the 2026-07-28 scenarios of the conformance suite call by name (stateless era:
// MRTR input requests, capability checks, log opt-in, list changes for subscriptions/listen,
// x-mcp-header mirroring). Registered with MCP_FIXTURES=conformance, next to the 2025 fixtures.

const NoArgs = Type.Object({})
const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] })
const asText = (v: unknown): string => typeof v === 'string' ? v : JSON.stringify(v ?? null)
const form = (message: string, property: string, type = 'string') => ({
  mode: 'form',
  message,
  requestedSchema: { type: 'object', properties: { [property]: { type } }, required: [property] }
})
const content = (r: Record<string, unknown>): Record<string, unknown> =>
  typeof r.content === 'object' && r.content !== null ? r.content as Record<string, unknown> : {}
const sampledText = (r: Record<string, unknown>): string => asText((r.content as { text?: unknown } | undefined)?.text)

export function registerStatelessFixtures (mcp: McpServer): void {
  mcp.tool({
    name: 'test_input_required_result_elicitation',
    description: 'Asks the client for a name (MRTR elicitation, key user_name), then greets',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const r = await ctx.request('elicitation/create', form('What is your name?', 'name'), { key: 'user_name' })
      return text(`Hello, ${asText(content(r).name)}!`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_sampling',
    description: 'Asks the client LLM a question (MRTR sampling, key capital_question)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const r = await ctx.request('sampling/createMessage', {
        messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }],
        maxTokens: 100
      }, { key: 'capital_question' })
      return text(`Sampling result: ${sampledText(r)}`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_list_roots',
    description: 'Asks for the client roots (MRTR roots/list, key client_roots)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const r = await ctx.request('roots/list', {}, { key: 'client_roots' })
      const roots = Array.isArray(r.roots) ? r.roots as Array<{ uri?: unknown }> : []
      return text(`Client roots: ${roots.map((x) => asText(x.uri)).join(', ') || '(none)'}`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_request_state',
    description: 'Asks for a confirmation; completes with "state-ok" once its signed requestState came back intact',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const r = await ctx.request('elicitation/create', form('Please confirm', 'ok', 'boolean'), { key: 'confirm' })
      return text(`${ctx.resumed ? 'state-ok' : 'state-missing'}: confirmed=${asText(content(r).ok)}`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_multiple_inputs',
    description: 'Asks for elicitation, sampling and roots in one InputRequiredResult',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const [name, greeting, roots] = await Promise.all([
        ctx.request('elicitation/create', form('What is your name?', 'name'), { key: 'user_name' }),
        ctx.request('sampling/createMessage', { messages: [{ role: 'user', content: { type: 'text', text: 'Generate a greeting' } }], maxTokens: 50 }, { key: 'greeting' }),
        ctx.request('roots/list', {}, { key: 'client_roots' })
      ])
      const count = Array.isArray(roots.roots) ? roots.roots.length : 0
      return text(`name=${asText(content(name).name)}, greeting=${sampledText(greeting)}, roots=${count}`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_multi_round',
    description: 'Two rounds of elicitation (step1, then step2), state carried in requestState',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const step1 = await ctx.request('elicitation/create', form('Step 1: What is your name?', 'name'), { key: 'step1' })
      const step2 = await ctx.request('elicitation/create', form('Step 2: What is your favorite color?', 'color'), { key: 'step2' })
      return text(`${asText(content(step1).name)} likes ${asText(content(step2).color)}`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_tampered_state',
    description: 'Asks for a confirmation with HMAC-signed requestState; a tampered state is refused',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const r = await ctx.request('elicitation/create', form('Please confirm', 'ok', 'boolean'), { key: 'confirm' })
      return text(`confirmed=${asText(content(r).ok)}`)
    }
  })
  mcp.tool({
    name: 'test_input_required_result_capabilities',
    description: 'Asks only with the capabilities the request declared (sampling and/or elicitation)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const asks: Array<Promise<Record<string, unknown>>> = []
      if (ctx.clientCapabilities.sampling !== undefined) {
        asks.push(ctx.request('sampling/createMessage', { messages: [{ role: 'user', content: { type: 'text', text: 'Say hello' } }], maxTokens: 20 }, { key: 'sampling_input' }))
      }
      if (ctx.clientCapabilities.elicitation !== undefined) asks.push(ctx.request('elicitation/create', form('What is your name?', 'name'), { key: 'elicitation_input' }))
      const answers = await Promise.all(asks)
      return text(`answered ${answers.length} input request(s)`)
    }
  })
  mcp.tool({
    name: 'test_missing_capability',
    description: 'Needs the client sampling capability (without it: -32021)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const r = await ctx.request('sampling/createMessage', { messages: [{ role: 'user', content: { type: 'text', text: 'Hi' } }], maxTokens: 10 }, { key: 'sample' })
      return text(`Sampled: ${sampledText(r)}`)
    }
  })
  mcp.tool({
    name: 'test_streaming_elicitation',
    description: 'Reports progress, then asks for input by MRTR (never a server→client request on the stream)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      await ctx.progress(0, 1, 'starting')
      const r = await ctx.request('elicitation/create', form('What is your name?', 'name'), { key: 'user_name' })
      return text(`Hello, ${asText(content(r).name)}!`)
    }
  })
  mcp.tool({
    name: 'test_logging_tool',
    description: 'Logs three messages (sent only when the request set _meta logLevel)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      await ctx.log('info', 'Tool execution started')
      await ctx.log('info', 'Tool processing data')
      await ctx.log('info', 'Tool execution completed')
      return text('Logging complete')
    }
  })
  let extraTool = false
  mcp.tool({
    name: 'test_trigger_tool_change',
    description: 'Adds or removes the tool test_dynamic_tool (tools list_changed)',
    inputSchema: NoArgs,
    handler: () => {
      try {
        if (extraTool) mcp.registry.removeTool('test_dynamic_tool')
        else mcp.tool({ name: 'test_dynamic_tool', description: 'Appears and disappears with test_trigger_tool_change', inputSchema: NoArgs, handler: () => text('dynamic') })
      } catch (err) {
        // With REDIS_URL the registry is locked after start-up: the caller reads why.
        throw new UserError(err instanceof Error ? err.message : String(err))
      }
      extraTool = !extraTool
      return text(`test_dynamic_tool ${extraTool ? 'added' : 'removed'}`)
    }
  })
  let extraPrompt = false
  mcp.tool({
    name: 'test_trigger_prompt_change',
    description: 'Adds or removes the prompt test_dynamic_prompt (prompts list_changed)',
    inputSchema: NoArgs,
    handler: () => {
      try {
        if (extraPrompt) mcp.registry.removePrompt('test_dynamic_prompt')
        else mcp.prompt({ name: 'test_dynamic_prompt', description: 'Appears and disappears with test_trigger_prompt_change', get: () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'dynamic' } }] }) })
      } catch (err) {
        throw new UserError(err instanceof Error ? err.message : String(err))
      }
      extraPrompt = !extraPrompt
      return text(`test_dynamic_prompt ${extraPrompt ? 'added' : 'removed'}`)
    }
  })
  mcp.tool({
    name: 'test_header_params',
    description: 'Mirrors region (Mcp-Param-Region) and count (Mcp-Param-Count) into HTTP headers',
    inputSchema: Type.Object({
      region: Type.String({ description: 'Region to run in', 'x-mcp-header': 'Region' }),
      count: Type.Optional(Type.Integer({ description: 'How many', 'x-mcp-header': 'Count' })),
      query: Type.Optional(Type.String({ description: 'Anything' }))
    }),
    handler: ({ region, count }) => text(`region=${region}${count === undefined ? '' : `, count=${count}`}`)
  })
  mcp.prompt({
    name: 'test_input_required_result_prompt',
    description: 'A prompt that asks the client for context first (MRTR on prompts/get, key user_context)',
    get: async (_args, ctx) => {
      const r = await ctx.request('elicitation/create', form('What context should the prompt use?', 'context'), { key: 'user_context' })
      return { messages: [{ role: 'user', content: { type: 'text', text: `Use this context: ${asText(content(r).context)}` } }] }
    }
  })
}
