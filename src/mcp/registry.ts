import { AsyncLocalStorage } from 'node:async_hooks'
import type { CallContext } from './context.js'
import type { Static, TSchema } from '@sinclair/typebox'
import { SchemaCompiler, type AnySchema, type Infer, type StandardSchemaV1, type Validator } from './validate.js'

export type { AnySchema, Infer, StandardSchemaV1, JsonSchemaObject, Validator } from './validate.js'

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

/**
 * What a schema declares about a value: the inferred type for TypeBox and Standard Schema (zod 4, …),
 * `Fallback` for plain JSON Schema or when no schema is given.
 */
export type Declared<S, Fallback> = [S] extends [StandardSchemaV1]
  ? StandardSchemaV1.InferOutput<S>
  : [S] extends [TSchema] ? Static<S> : Fallback

/** A tool's result, with `structuredContent` typed by its outputSchema. */
export type ToolResult<O extends AnySchema = AnySchema> = Omit<CallToolResult, 'structuredContent'> & {
  structuredContent?: Declared<O, Record<string, unknown>>
}

export interface ToolDefinition<S extends AnySchema = AnySchema, O extends AnySchema = AnySchema> {
  name: string
  title?: string
  description?: string
  /**
   * Validated before the handler runs: a TypeBox schema or a Standard Schema (zod 4, …) — the
   * handler's argument type is inferred from either — or plain JSON Schema (2020-12 unless its
   * `$schema` names 2019-09 or draft-07). Must describe an object.
   */
  inputSchema: S
  /** When set, the handler must return `structuredContent` that validates (2025-06-18+). Any schema form. */
  outputSchema?: O
  annotations?: ToolAnnotations
  _meta?: Record<string, unknown>
  /** OAuth scopes a caller's access token must carry to call this tool (OAuth mode only). */
  requiredScopes?: string[]
  /**
   * A plain string is the text of the result (`{ content: [{ type: "text", text }] }`); throw a
   * UserError for a failure the model should read.
   */
  handler: (args: Infer<S>, ctx: CallContext) => ToolResult<O> | string | Promise<ToolResult<O> | string>
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
  /** Checks the template's variables (an object of strings) before `read`; a mismatch is -32602. Any schema form. */
  variablesSchema?: AnySchema
  /** Suggestions for a template variable (completion/complete). */
  complete?: Record<string, (value: string) => string[] | Promise<string[]>>
}

export interface PromptArgument { name: string, description?: string, required?: boolean }

export interface PromptDefinition<A extends AnySchema = AnySchema> {
  name: string
  title?: string
  description?: string
  arguments?: PromptArgument[]
  /**
   * Checks the arguments (an object of strings) before `get`; a mismatch is -32602. Any schema form.
   * When `arguments` is not given, the listing's arguments come from this schema's properties.
   */
  argsSchema?: A
  /** Its arguments, typed from a TypeBox or Standard Schema argsSchema (strings otherwise). */
  get: (args: Declared<A, Record<string, string>>, ctx: CallContext) => GetPromptResult | Promise<GetPromptResult>
  /** Suggestions for an argument (completion/complete). */
  complete?: Record<string, (value: string) => string[] | Promise<string[]>>
}

export interface RegisteredTool {
  def: ToolDefinition
  /** The input schema, compiled at registration. */
  input: Validator
  /** The output schema, compiled at registration (structuredContent is checked against it). */
  output: Validator | undefined
  /** The tools/list entry, built once. */
  listing: Record<string, unknown>
}

interface CompiledTemplate {
  def: ResourceTemplateDefinition
  regex: RegExp
  names: string[]
  listing: Record<string, unknown>
  variables: Validator | undefined
}

interface CompiledPrompt {
  args: Validator | undefined
  listing: Record<string, unknown>
}

export type ListKind = 'tools' | 'resources' | 'prompts'

/** The prompt arguments a JSON Schema object describes (name, description, required). */
function argumentsOf (json: Record<string, unknown>): PromptArgument[] {
  const properties = typeof json.properties === 'object' && json.properties !== null ? json.properties as Record<string, Record<string, unknown>> : {}
  const required = Array.isArray(json.required) ? json.required : []
  return Object.entries(properties).map(([name, p]) => entry({
    name,
    description: typeof p?.description === 'string' ? p.description : undefined,
    required: required.includes(name) ? true : undefined
  }) as unknown as PromptArgument)
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
const registrationSource = new AsyncLocalStorage<string>()

/** Runs `fn` with its registrations attributed to `source` (a tool module's file, the built-ins), for duplicate-name errors. */
export async function registeringFrom<T> (source: string, fn: () => T | Promise<T>): Promise<T> {
  return await registrationSource.run(source, fn)
}

/** Where a registration comes from: the source set by registeringFrom, else the caller's first frame outside this package's src. */
function registrationOrigin (): string {
  const given = registrationSource.getStore()
  if (given !== undefined) return given
  const frames = (new Error().stack ?? '').split('\n').slice(1).map((l) => l.trim())
  const caller = frames.find((f) => !/[/\\](src|plugins|dist)[/\\]|node:internal|node_modules/.test(f))
  return caller === undefined ? 'app.mcp' : `app.mcp (${caller.replace(/^at /, '')})`
}

export class Registry {
  /** Who registered each name (`tool:x`, `resource:uri`, …): a second registration is refused naming both. */
  readonly #sources = new Map<string, string>()
  readonly tools = new Map<string, RegisteredTool>()
  readonly resources = new Map<string, ResourceDefinition>()
  readonly templates = new Map<string, CompiledTemplate>()
  readonly prompts = new Map<string, PromptDefinition>()
  /** Each prompt's compiled argsSchema and listing, by name. */
  readonly #promptsCompiled = new Map<string, CompiledPrompt>()
  readonly #schemas = new SchemaCompiler()
  readonly #listeners: Array<(kind: ListKind) => void> = []

  onChange (listener: (kind: ListKind) => void): void { this.#listeners.push(listener) }
  #changed (kind: ListKind): void { for (const l of this.#listeners) l(kind) }

  /** Compiles a schema or throws an Error naming what it belongs to. */
  #compile (schema: unknown, io: 'input' | 'output', what: string, objectOnly: boolean): Validator {
    let v: Validator
    try {
      v = this.#schemas.compile(schema, io)
    } catch (err) {
      throw new Error(`${what}: cannot compile the schema: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (objectOnly && v.json.type !== 'object') {
      v.release()
      throw new Error(`${what}: the schema must describe an object ("type": "object")`)
    }
    return v
  }

  /** Claims a name for its source; a name already taken is refused, naming both sources. */
  #claim (kind: 'tool' | 'resource' | 'resource template' | 'prompt', key: string): void {
    const source = registrationOrigin()
    const first = this.#sources.get(`${kind}:${key}`)
    if (first !== undefined) {
      throw new Error(`Duplicate ${kind} "${key}": registered by ${first} and again by ${source}; names must be unique (remove the first one to replace it)`)
    }
    this.#sources.set(`${kind}:${key}`, source)
  }

  addTool<S extends AnySchema> (def: ToolDefinition<S>): void {
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(def.name)) throw new Error(`Invalid tool name "${def.name}": use 1-128 of A-Z a-z 0-9 _ - .`)
    if (this.tools.has(def.name)) this.#claim('tool', def.name)
    const input = this.#compile(def.inputSchema, 'input', `Tool ${def.name} inputSchema`, true)
    let output: Validator | undefined
    try {
      output = def.outputSchema === undefined ? undefined : this.#compile(def.outputSchema, 'output', `Tool ${def.name} outputSchema`, true)
    } catch (err) {
      input.release()
      throw err
    }
    const listing = entry({
      name: def.name,
      title: def.title,
      description: def.description,
      inputSchema: input.json,
      outputSchema: output?.json,
      annotations: def.annotations,
      _meta: def._meta
    })
    try {
      this.#claim('tool', def.name)
    } catch (err) {
      input.release()
      output?.release()
      throw err
    }
    this.tools.set(def.name, { def, input, output, listing })
    this.#changed('tools')
  }

  #releaseTool (name: string): void {
    const old = this.tools.get(name)
    old?.input.release()
    old?.output?.release()
  }

  removeTool (name: string): boolean {
    this.#releaseTool(name)
    const removed = this.tools.delete(name)
    this.#sources.delete(`tool:${name}`)
    if (removed) this.#changed('tools')
    return removed
  }

  addResource (def: ResourceDefinition): void {
    this.#claim('resource', def.uri)
    this.resources.set(def.uri, def)
    this.#changed('resources')
  }

  removeResource (uri: string): boolean {
    const removed = this.resources.delete(uri)
    this.#sources.delete(`resource:${uri}`)
    if (removed) this.#changed('resources')
    return removed
  }

  addResourceTemplate (def: ResourceTemplateDefinition): void {
    if (this.templates.has(def.uriTemplate)) this.#claim('resource template', def.uriTemplate)
    const { regex, names } = compileTemplate(def.uriTemplate)
    const variables = def.variablesSchema === undefined ? undefined : this.#compile(def.variablesSchema, 'input', `Resource template ${def.uriTemplate} variablesSchema`, true)
    const listing = entry({
      uriTemplate: def.uriTemplate,
      name: def.name,
      title: def.title,
      description: def.description,
      mimeType: def.mimeType
    })
    try {
      this.#claim('resource template', def.uriTemplate)
    } catch (err) {
      variables?.release()
      throw err
    }
    this.templates.set(def.uriTemplate, { def, regex, names, listing, variables })
    this.#changed('resources')
  }

  addPrompt (def: PromptDefinition): void {
    if (this.prompts.has(def.name)) this.#claim('prompt', def.name)
    const args = def.argsSchema === undefined ? undefined : this.#compile(def.argsSchema, 'input', `Prompt ${def.name} argsSchema`, true)
    const listing = entry({
      name: def.name,
      title: def.title,
      description: def.description,
      arguments: def.arguments ?? (args === undefined ? undefined : argumentsOf(args.json))
    })
    try {
      this.#claim('prompt', def.name)
    } catch (err) {
      args?.release()
      throw err
    }
    this.#promptsCompiled.set(def.name, { args, listing })
    this.prompts.set(def.name, def)
    this.#changed('prompts')
  }

  /** The compiled argsSchema of a prompt, if it declared one. */
  promptArgs (name: string): Validator | undefined {
    return this.#promptsCompiled.get(name)?.args
  }

  removePrompt (name: string): boolean {
    this.#promptsCompiled.get(name)?.args?.release()
    this.#promptsCompiled.delete(name)
    const removed = this.prompts.delete(name)
    this.#sources.delete(`prompt:${name}`)
    if (removed) this.#changed('prompts')
    return removed
  }

  resourceListing (def: ResourceDefinition): Record<string, unknown> {
    return entry({ uri: def.uri, name: def.name, title: def.title, description: def.description, mimeType: def.mimeType, size: def.size })
  }

  promptListing (def: PromptDefinition): Record<string, unknown> {
    return this.#promptsCompiled.get(def.name)?.listing ?? entry({
      name: def.name,
      title: def.title,
      description: def.description,
      arguments: def.arguments
    })
  }

  /** Finds the template whose pattern matches `uri` and extracts its variables. */
  /**
   * Finds the template whose pattern matches `uri` and extracts its variables (percent-decoded;
   * a malformed escape leaves the value as sent — `variablesSchema` decides whether that is valid).
   */
  matchTemplate (uri: string): {
    def: ResourceTemplateDefinition,
    variables: Record<string, string>,
    check: Validator | undefined
  } | undefined {
    for (const t of this.templates.values()) {
      const m = t.regex.exec(uri)
      if (m === null) continue
      const variables: Record<string, string> = {}
      t.names.forEach((name, i) => {
        const raw = m[i + 1] ?? ''
        try {
          variables[name] = decodeURIComponent(raw)
        } catch {
          variables[name] = raw
        }
      })
      return { def: t.def, variables, check: t.variables }
    }
    return undefined
  }

  templateListings (): Record<string, unknown>[] {
    return [...this.templates.values()].map((t) => t.listing)
  }
}

/** A tool as clients see it in tools/list (and the /docs page renders it). */
export interface CatalogTool {
  name: string
  title?: string
  description?: string
  inputSchema: Record<string, unknown>
  outputSchema?: Record<string, unknown>
  annotations?: Record<string, unknown>
}
export interface CatalogEntry { name: string, title?: string, description?: string, [key: string]: unknown }
/** What clients see in the list methods. */
export interface Catalog {
  tools: CatalogTool[]
  resources: CatalogEntry[]
  resourceTemplates: CatalogEntry[]
  prompts: CatalogEntry[]
}

/** A registry's catalog: what clients see in the list methods (the /docs page renders it). */
export function catalogOf (r: Registry): Catalog {
  return {
    tools: [...r.tools.values()].map((t) => t.listing as unknown as CatalogTool),
    resources: [...r.resources.values()].map((d) => r.resourceListing(d) as CatalogEntry),
    resourceTemplates: r.templateListings() as CatalogEntry[],
    prompts: [...r.prompts.values()].map((p) => r.promptListing(p) as CatalogEntry)
  }
}
