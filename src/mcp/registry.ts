import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { CallContext } from './context.js'

/** Content blocks and results as MCP defines them (kept open: the spec grows). */
export type ContentBlock =
  | { type: 'text', text: string, annotations?: Record<string, unknown>, _meta?: Record<string, unknown> }
  | { type: 'image' | 'audio', data: string, mimeType: string, annotations?: Record<string, unknown> }
  | { type: 'resource', resource: ResourceContents, annotations?: Record<string, unknown> }
  | { type: 'resource_link', uri: string, name: string, mimeType?: string, description?: string }

export interface CallToolResult {
  content: ContentBlock[]
  structuredContent?: Record<string, unknown>
  isError?: boolean
  _meta?: Record<string, unknown>
}

export type ResourceContents =
  | { uri: string, mimeType?: string, text: string, _meta?: Record<string, unknown> }
  | { uri: string, mimeType?: string, blob: string, _meta?: Record<string, unknown> }

export interface ReadResourceResult { contents: ResourceContents[] }

export interface PromptMessage { role: 'user' | 'assistant', content: ContentBlock }
export interface GetPromptResult { description?: string, messages: PromptMessage[] }

export interface ToolAnnotations {
  title?: string
  readOnlyHint?: boolean
  destructiveHint?: boolean
  idempotentHint?: boolean
  openWorldHint?: boolean
}

export interface ToolDefinition<S extends TSchema = TSchema> {
  name: string
  title?: string
  description?: string
  /** A TypeBox schema (validated, and the handler's argument type is inferred from it) or plain JSON Schema. */
  inputSchema: S
  outputSchema?: TSchema
  annotations?: ToolAnnotations
  _meta?: Record<string, unknown>
  /** OAuth scopes a caller's access token must carry to call this tool (OAuth mode only). */
  requiredScopes?: string[]
  handler: (args: Static<S>, ctx: CallContext) => CallToolResult | Promise<CallToolResult>
}

export interface ResourceDefinition {
  uri: string
  name: string
  title?: string
  description?: string
  mimeType?: string
  size?: number
  read: (uri: string, ctx: CallContext) => ReadResourceResult | Promise<ReadResourceResult>
}

export interface ResourceTemplateDefinition {
  uriTemplate: string
  name: string
  title?: string
  description?: string
  mimeType?: string
  read: (uri: string, variables: Record<string, string>, ctx: CallContext) => ReadResourceResult | Promise<ReadResourceResult>
  /** Suggestions for a template variable (completion/complete). */
  complete?: Record<string, (value: string) => string[] | Promise<string[]>>
}

export interface PromptArgument { name: string, description?: string, required?: boolean }

export interface PromptDefinition {
  name: string
  title?: string
  description?: string
  arguments?: PromptArgument[]
  get: (args: Record<string, string>, ctx: CallContext) => GetPromptResult | Promise<GetPromptResult>
  /** Suggestions for an argument (completion/complete). */
  complete?: Record<string, (value: string) => string[] | Promise<string[]>>
}

export interface RegisteredTool {
  def: ToolDefinition
  /** Compiled validator; null for plain JSON Schemas TypeBox cannot compile. */
  check: TypeCheck<TSchema> | null
  /** The tools/list entry, built once. */
  listing: Record<string, unknown>
}

interface CompiledTemplate {
  def: ResourceTemplateDefinition
  regex: RegExp
  names: string[]
  listing: Record<string, unknown>
}

export type ListKind = 'tools' | 'resources' | 'prompts'

/** Strips TypeBox's symbol keys: what clients see is plain JSON Schema. */
function plainSchema (schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
}

function compile (schema: TSchema): TypeCheck<TSchema> | null {
  try {
    return TypeCompiler.Compile(schema)
  } catch {
    return null
  }
}

/** RFC 6570 level-1 templates: `{name}` matches one path segment. */
function compileTemplate (template: string): { regex: RegExp, names: string[] } {
  const names: string[] = []
  const pattern = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([A-Za-z0-9_]+)\}/g, (_m, name: string) => {
    names.push(name)
    return '([^/?#]+)'
  })
  return { regex: new RegExp(`^${pattern}$`), names }
}

function entry (fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v
  return out
}

/** Tools, resources, templates and prompts; tells listeners when a list changes. */
export class Registry {
  readonly tools = new Map<string, RegisteredTool>()
  readonly resources = new Map<string, ResourceDefinition>()
  readonly templates = new Map<string, CompiledTemplate>()
  readonly prompts = new Map<string, PromptDefinition>()
  readonly #listeners: Array<(kind: ListKind) => void> = []

  onChange (listener: (kind: ListKind) => void): void { this.#listeners.push(listener) }
  #changed (kind: ListKind): void { for (const l of this.#listeners) l(kind) }

  addTool<S extends TSchema> (def: ToolDefinition<S>): void {
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(def.name)) throw new Error(`Invalid tool name "${def.name}": use 1-128 of A-Z a-z 0-9 _ - .`)
    const listing = entry({
      name: def.name,
      title: def.title,
      description: def.description,
      inputSchema: plainSchema(def.inputSchema),
      outputSchema: def.outputSchema === undefined ? undefined : plainSchema(def.outputSchema),
      annotations: def.annotations,
      _meta: def._meta
    })
    this.tools.set(def.name, { def: def as unknown as ToolDefinition, check: compile(def.inputSchema), listing })
    this.#changed('tools')
  }

  removeTool (name: string): boolean {
    const removed = this.tools.delete(name)
    if (removed) this.#changed('tools')
    return removed
  }

  addResource (def: ResourceDefinition): void {
    this.resources.set(def.uri, def)
    this.#changed('resources')
  }

  removeResource (uri: string): boolean {
    const removed = this.resources.delete(uri)
    if (removed) this.#changed('resources')
    return removed
  }

  addResourceTemplate (def: ResourceTemplateDefinition): void {
    const { regex, names } = compileTemplate(def.uriTemplate)
    const listing = entry({ uriTemplate: def.uriTemplate, name: def.name, title: def.title, description: def.description, mimeType: def.mimeType })
    this.templates.set(def.uriTemplate, { def, regex, names, listing })
    this.#changed('resources')
  }

  addPrompt (def: PromptDefinition): void {
    this.prompts.set(def.name, def)
    this.#changed('prompts')
  }

  removePrompt (name: string): boolean {
    const removed = this.prompts.delete(name)
    if (removed) this.#changed('prompts')
    return removed
  }

  resourceListing (def: ResourceDefinition): Record<string, unknown> {
    return entry({ uri: def.uri, name: def.name, title: def.title, description: def.description, mimeType: def.mimeType, size: def.size })
  }

  promptListing (def: PromptDefinition): Record<string, unknown> {
    return entry({ name: def.name, title: def.title, description: def.description, arguments: def.arguments })
  }

  /** Finds the template whose pattern matches `uri` and extracts its variables. */
  matchTemplate (uri: string): { def: ResourceTemplateDefinition, variables: Record<string, string> } | undefined {
    for (const t of this.templates.values()) {
      const m = t.regex.exec(uri)
      if (m === null) continue
      const variables: Record<string, string> = {}
      t.names.forEach((name, i) => { variables[name] = decodeURIComponent(m[i + 1]) })
      return { def: t.def, variables }
    }
    return undefined
  }

  templateListings (): Record<string, unknown>[] {
    return [...this.templates.values()].map((t) => t.listing)
  }
}
