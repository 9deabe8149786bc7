// A small notes server: a resource template (note://{name}) clients can subscribe to, tools to
// write and delete notes (delete asks the user to confirm, through elicitation) and a prompt.
// Use it as a tool module (MCP_TOOLS=examples/notes/notes.mjs) or with the plugin:
//   await app.register(sseMcp); await notes(app.mcp)
// State lives in the closure of each registration, bounded in count and bytes.

const MAX_NOTES = 1000

/** @param {import('sse-mcp-server').Mcp} mcp */
export default function notes (mcp) {
  /** @type {Map<string, string>} */
  const store = new Map()
  const uriOf = (name) => `note://${encodeURIComponent(name)}`
  const text = (t) => ({ content: [{ type: 'text', text: t }] })

  mcp.resourceTemplate({
    uriTemplate: 'note://{name}',
    name: 'note',
    title: 'Note',
    description: 'A note by name; subscribe to hear when it changes.',
    mimeType: 'text/plain',
    read: (uri, { name }) => {
      const body = store.get(decodeURIComponent(name))
      if (body === undefined) throw new Error(`No note named ${name}`)
      return { contents: [{ uri, mimeType: 'text/plain', text: body }] }
    },
    complete: { name: (prefix) => [...store.keys()].filter((n) => n.startsWith(prefix)).slice(0, 100) }
  })

  mcp.tool({
    name: 'write_note',
    title: 'Write a note',
    description: 'Creates or replaces a note; subscribers of note://<name> are told.',
    inputSchema: {
      type: 'object',
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' },
        text: { type: 'string', maxLength: 10000 }
      },
      required: ['name', 'text'],
      additionalProperties: false
    },
    handler: async ({ name, text: body }) => {
      if (!store.has(name) && store.size >= MAX_NOTES) return { ...text(`Too many notes (${MAX_NOTES}); delete one first`), isError: true }
      store.set(name, body)
      await mcp.resourceUpdated(uriOf(name))
      return text(`Saved ${uriOf(name)}`)
    }
  })

  mcp.tool({
    name: 'delete_note',
    title: 'Delete a note',
    description: 'Deletes a note after the user confirms.',
    inputSchema: {
      type: 'object',
      properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
      required: ['name'],
      additionalProperties: false
    },
    annotations: { destructiveHint: true },
    handler: async ({ name }, ctx) => {
      if (!store.has(name)) return { ...text(`No note named ${name}`), isError: true }
      const answer = await ctx.request('elicitation/create', {
        message: `Delete the note "${name}"?`,
        requestedSchema: { type: 'object', properties: { confirm: { type: 'boolean', title: 'Delete it' } }, required: ['confirm'] }
      })
      if (answer.action !== 'accept' || answer.content?.confirm !== true) return text(`Kept ${name}`)
      store.delete(name)
      await mcp.resourceUpdated(uriOf(name))
      return text(`Deleted ${name}`)
    }
  })

  mcp.prompt({
    name: 'summarize_note',
    title: 'Summarize a note',
    arguments: [{ name: 'name', description: 'The note to summarize', required: true }],
    get: ({ name }) => ({
      messages: [{ role: 'user', content: { type: 'resource', resource: { uri: uriOf(name), mimeType: 'text/plain', text: store.get(name) ?? '' } } },
        { role: 'user', content: { type: 'text', text: 'Summarize this note in one sentence.' } }]
    })
  })
}
