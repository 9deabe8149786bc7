import { Type } from '@sinclair/typebox'
import type { McpServer } from '../mcp/server.js'
import { UserError } from '../mcp/errors.js'
import { registerStatelessFixtures } from './conformance-stateless.js'

// Fixtures the official conformance suite (@modelcontextprotocol/conformance) calls by name.
// Registered with MCP_FIXTURES=conformance.

/** 1×1 red PNG. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=='
/** A 44-byte WAV header with no samples (8 kHz, mono, 8-bit). */
const WAV = Buffer.from('524946462400000057415645666d74201000000001000100401f0000401f0000010008006461746100000000', 'hex').toString('base64')

const sleep = async (ms: number, signal?: AbortSignal): Promise<void> => await new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms)
  signal?.addEventListener('abort', () => { clearTimeout(timer); reject(new Error('cancelled')) }, { once: true })
})

const NoArgs = Type.Object({})

/** The text the elicitation fixtures answer with: what the user chose, and what they entered. */
const elicited = (result: Record<string, unknown>, prefix = 'Elicitation completed') => ({
  content: [{ type: 'text' as const, text: `${prefix}: action=${String(result.action)}, content=${JSON.stringify(result.content ?? {})}` }]
})

export function registerConformanceFixtures (mcp: McpServer): void {
  mcp.tool({
    name: 'test_simple_text',
    description: 'Returns simple text content',
    inputSchema: NoArgs,
    handler: () => ({ content: [{ type: 'text', text: 'This is a simple text response for testing.' }] })
  })
  mcp.tool({
    name: 'test_image_content',
    description: 'Returns image content',
    inputSchema: NoArgs,
    handler: () => ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] })
  })
  mcp.tool({
    name: 'test_audio_content',
    description: 'Returns audio content',
    inputSchema: NoArgs,
    handler: () => ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] })
  })
  mcp.tool({
    name: 'test_embedded_resource',
    description: 'Returns an embedded resource',
    inputSchema: NoArgs,
    handler: () => ({ content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }] })
  })
  mcp.tool({
    name: 'test_multiple_content_types',
    description: 'Returns text, image and resource content',
    inputSchema: NoArgs,
    handler: () => ({
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG, mimeType: 'image/png' },
        { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } }
      ]
    })
  })
  mcp.tool({
    name: 'test_tool_with_logging',
    description: 'Sends three log notifications while it runs',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      await ctx.log('info', 'Tool execution started')
      await sleep(50, ctx.signal)
      await ctx.log('info', 'Tool processing data')
      await sleep(50, ctx.signal)
      await ctx.log('info', 'Tool execution completed')
      return { content: [{ type: 'text', text: 'Tool with logging executed successfully' }] }
    }
  })
  mcp.tool({
    name: 'test_error_handling',
    description: 'Always fails',
    inputSchema: NoArgs,
    handler: () => { throw new UserError('This tool intentionally returns an error for testing') }
  })
  mcp.tool({
    name: 'test_tool_with_progress',
    description: 'Reports progress 0, 50, 100 of 100',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      await ctx.progress(0, 100)
      await sleep(50, ctx.signal)
      await ctx.progress(50, 100)
      await sleep(50, ctx.signal)
      await ctx.progress(100, 100)
      return { content: [{ type: 'text', text: 'Tool with progress executed successfully' }] }
    }
  })
  mcp.tool({
    name: 'test_sampling',
    description: 'Asks the client to sample an LLM',
    inputSchema: Type.Object({ prompt: Type.String() }),
    handler: async ({ prompt }, ctx) => {
      const result = await ctx.request('sampling/createMessage', {
        messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
        maxTokens: 100
      })
      const content = result.content as { type?: string, text?: string } | undefined
      return { content: [{ type: 'text', text: `LLM response: ${content?.type === 'text' ? content.text ?? '' : JSON.stringify(content)}` }] }
    }
  })
  mcp.tool({
    name: 'test_elicitation',
    description: 'Asks the user for input',
    inputSchema: Type.Object({ message: Type.String() }),
    handler: async ({ message }, ctx) => {
      const result = await ctx.request('elicitation/create', {
        message,
        requestedSchema: {
          type: 'object',
          properties: {
            username: { type: 'string', description: "User's response" },
            email: { type: 'string', description: "User's email address" }
          },
          required: ['username', 'email']
        }
      })
      return elicited(result, 'User response')
    }
  })
  mcp.tool({
    name: 'test_elicitation_sep1034_defaults',
    description: 'Elicitation with defaults for every primitive type (SEP-1034)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const result = await ctx.request('elicitation/create', {
        message: 'Please review and update the form fields with defaults',
        requestedSchema: {
          type: 'object',
          properties: {
            name: { type: 'string', description: 'User name', default: 'John Doe' },
            age: { type: 'integer', description: 'User age', default: 30 },
            score: { type: 'number', description: 'User score', default: 95.5 },
            status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
            verified: { type: 'boolean', description: 'Verification status', default: true }
          },
          required: []
        }
      })
      return elicited(result)
    }
  })
  mcp.tool({
    name: 'test_elicitation_sep1330_enums',
    description: 'Elicitation with every enum variant (SEP-1330)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      const result = await ctx.request('elicitation/create', {
        message: 'Please select options from the enum fields',
        requestedSchema: {
          type: 'object',
          properties: {
            untitledSingle: { type: 'string', description: 'Select one option', enum: ['option1', 'option2', 'option3'] },
            titledSingle: {
              type: 'string',
              description: 'Select one option with titles',
              oneOf: [{ const: 'value1', title: 'First Option' }, { const: 'value2', title: 'Second Option' }, { const: 'value3', title: 'Third Option' }]
            },
            // The conformance suite checks these field names (enumNames is the deprecated titled form).
            legacyEnum: { type: 'string', description: 'Select one option (legacy)', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
            untitledMulti: { type: 'array', description: 'Select multiple options', items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
            titledMulti: {
              type: 'array',
              description: 'Select multiple options with titles',
              items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] }
            }
          },
          required: []
        }
      })
      return elicited(result)
    }
  })
  mcp.tool({
    name: 'json_schema_2020_12_tool',
    description: 'Tool with JSON Schema 2020-12 features',
    // Composition, conditional and $anchor keywords must survive tools/list untouched (SEP-2106).
    inputSchema: Type.Unsafe<{ name?: string, address?: { street?: string, city?: string }, contactMethod?: 'phone' | 'email', phone?: string, email?: string }>({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { $anchor: 'addressDef', type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: {
        name: { type: 'string' },
        address: { $ref: '#/$defs/address' },
        contactMethod: { type: 'string', enum: ['phone', 'email'] },
        phone: { type: 'string' },
        email: { type: 'string' }
      },
      allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
      if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
      then: { required: ['phone'] },
      else: { required: ['email'] },
      additionalProperties: false
    }),
    handler: (args) => ({ content: [{ type: 'text', text: `Received: ${JSON.stringify(args)}` }] })
  })
  mcp.tool({
    name: 'test_reconnection',
    description: 'Closes its SSE stream mid-call; the client resumes with Last-Event-ID (SEP-1699)',
    inputSchema: NoArgs,
    handler: async (_args, ctx) => {
      await sleep(50, ctx.signal)
      ctx.closeStream()
      await sleep(200, ctx.signal)
      return { content: [{ type: 'text', text: 'Reconnection test completed' }] }
    }
  })

  // Not a conformance fixture: a tool that takes a while, for drain and cancellation tests.
  mcp.tool({
    name: 'test_sleep',
    description: 'Waits `ms` milliseconds (max 30 s), then answers; with a progressToken, reports progress every 200 ms',
    inputSchema: Type.Object({ ms: Type.Integer({ minimum: 0, maximum: 30_000 }) }),
    handler: async ({ ms }, ctx) => {
      for (let waited = 0; waited < ms; waited += 200) {
        await ctx.progress(waited, ms)
        await sleep(Math.min(200, ms - waited), ctx.signal)
      }
      return { content: [{ type: 'text', text: `slept ${ms} ms` }] }
    }
  })

  mcp.resource({
    uri: 'test://static-text',
    name: 'static-text',
    description: 'A static text resource',
    mimeType: 'text/plain',
    read: (uri) => ({ contents: [{ uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }] })
  })
  mcp.resource({
    uri: 'test://static-binary',
    name: 'static-binary',
    description: 'A static binary resource (PNG)',
    mimeType: 'image/png',
    read: (uri) => ({ contents: [{ uri, mimeType: 'image/png', blob: PNG }] })
  })
  mcp.resource({
    uri: 'test://watched-resource',
    name: 'watched-resource',
    description: 'A resource clients can subscribe to',
    mimeType: 'text/plain',
    read: (uri) => ({ contents: [{ uri, mimeType: 'text/plain', text: 'Watched resource content' }] })
  })
  mcp.resourceTemplate({
    uriTemplate: 'test://template/{id}/data',
    name: 'template-data',
    description: 'Data for an id',
    mimeType: 'application/json',
    read: (uri, { id }) => ({ contents: [{ uri, mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }] }),
    complete: { id: (value) => ['123', '456', '789'].filter((v) => v.startsWith(value)) }
  })

  mcp.prompt({
    name: 'test_simple_prompt',
    description: 'A simple prompt without arguments',
    get: () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }] })
  })
  mcp.prompt({
    name: 'test_prompt_with_arguments',
    description: 'A prompt with two required arguments',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true },
      { name: 'arg2', description: 'Second test argument', required: true }
    ],
    get: ({ arg1, arg2 }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }] }),
    complete: { arg1: (value) => ['paris', 'park', 'party'].filter((v) => v.startsWith(value)) }
  })
  mcp.prompt({
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt that embeds a resource',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
    get: ({ resourceUri }) => ({
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: resourceUri ?? '', mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } }
      ]
    })
  })
  mcp.prompt({
    name: 'test_prompt_with_image',
    description: 'A prompt with an image',
    get: () => ({
      messages: [
        { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
        { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } }
      ]
    })
  })
  registerStatelessFixtures(mcp)
}
