import { readdir, stat } from 'node:fs/promises'
import { extname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { ConfigError } from '../config.js'
import { cap } from '../budget.js'
import type { Mcp } from '../mcp/api.js'
import { registeringFrom, type AnySchema, type PromptDefinition, type ResourceDefinition, type ResourceTemplateDefinition, type ToolDefinition } from '../mcp/registry.js'

/** Anything a tool module may export by default besides a function. */
export type Definition = ToolDefinition | ResourceDefinition | ResourceTemplateDefinition | PromptDefinition
/** A tool module's default export: a setup function, one definition or an array of them. */
export type ToolModule = ((mcp: Mcp, app: FastifyInstance) => void | Promise<void>) | Definition | readonly Definition[]

/**
 * A tool definition checked and inferred as `app.mcp.tool` does (arguments from inputSchema,
 * structuredContent from outputSchema), for a TypeScript tool module's default export or an array
 * of them: `export default [defineTool({ … }), defineTool({ … })]`. Returns the definition unchanged.
 */
export function defineTool<S extends AnySchema, O extends AnySchema = AnySchema> (def: ToolDefinition<S, O>): ToolDefinition {
  return def
}

/** A tool module that cannot be loaded: the start stops with this one line. */
export class ToolModuleError extends ConfigError {
  override name = 'ToolModuleError'
  constructor (file: string, why: string) {
    super(`Cannot load tool module ${file}: ${cap(why.split('\n')[0] ?? '', 300)}`)
  }
}

const TYPESCRIPT_EXTENSIONS = new Set(['.ts', '.mts', '.cts'])
/** Node loads TypeScript itself from 22.18/23.6 (type stripping); older versions cannot. */
const NODE_LOADS_TYPESCRIPT = Boolean((process.features as { typescript?: unknown }).typescript)
const MODULE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', ...(NODE_LOADS_TYPESCRIPT ? TYPESCRIPT_EXTENSIONS : [])])
const isTypeScript = (name: string): boolean => TYPESCRIPT_EXTENSIONS.has(extname(name)) && !/\.d\.[mc]?ts$/.test(name)
const COMPILE_FIRST = 'which this node cannot load: compile them to .js (tsc) and point MCP_TOOLS at the output, or write .mjs modules'

/**
 * The module files MCP_TOOLS names: files as given, directories' .js/.mjs/.cjs files in name order.
 * TypeScript files node cannot load are refused when they are all a directory holds (or named
 * themselves), else listed in `skipped`.
 */
export async function toolModuleFiles (entries: readonly string[], cwd = process.cwd(), skipped: string[] = []): Promise<string[]> {
  const files: string[] = []
  for (const entry of entries) {
    const path = resolve(cwd, entry)
    const info = await stat(path).catch(() => undefined)
    if (info === undefined) throw new ToolModuleError(path, 'no such file or directory (MCP_TOOLS)')
    if (!info.isDirectory()) {
      if (!NODE_LOADS_TYPESCRIPT && isTypeScript(path)) throw new ToolModuleError(path, `it is TypeScript, ${COMPILE_FIRST.replace('them', 'it')}`)
      files.push(path)
      continue
    }
    const all = (await readdir(path)).filter((n) => !n.startsWith('.') && !n.startsWith('_')).sort()
    const names = all.filter((n) => MODULE_EXTENSIONS.has(extname(n)))
    const typescript = NODE_LOADS_TYPESCRIPT ? [] : all.filter(isTypeScript)
    if (names.length === 0 && typescript.length > 0) {
      throw new ToolModuleError(path, `the directory holds only TypeScript files (${cap(typescript.join(', '), 200)}), ${COMPILE_FIRST}`)
    }
    skipped.push(...typescript.map((n) => join(path, n)))
    files.push(...names.map((n) => join(path, n)))
  }
  return files
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Registers one definition, told apart by its fields; throws a plain Error saying what is wrong. */
function register (mcp: Mcp, def: unknown): void {
  if (!isObject(def)) throw new Error(`a definition must be an object, got ${def === null ? 'null' : typeof def}`)
  if (typeof def.handler === 'function' && 'inputSchema' in def) mcp.tool(def as unknown as ToolDefinition)
  else if (typeof def.uriTemplate === 'string' && typeof def.read === 'function') mcp.resourceTemplate(def as unknown as ResourceTemplateDefinition)
  else if (typeof def.uri === 'string' && typeof def.read === 'function') mcp.resource(def as unknown as ResourceDefinition)
  else if (typeof def.name === 'string' && typeof def.get === 'function') mcp.prompt(def as unknown as PromptDefinition)
  else {
    const name = typeof def.name === 'string' ? ` "${cap(def.name, 60)}"` : ''
    throw new Error(`definition${name} is not a tool (inputSchema + handler), resource (uri + read), resource template (uriTemplate + read) or prompt (name + get)`)
  }
}

/** Loads one module and registers what its default export gives. */
export async function loadToolModule (file: string, mcp: Mcp, app: FastifyInstance): Promise<void> {
  try {
    const mod = await import(pathToFileURL(file).href) as { default?: unknown }
    const exported = mod.default
    if (exported === undefined) throw new Error('it has no default export')
    if (typeof exported === 'function') await (exported as (mcp: Mcp, app: FastifyInstance) => unknown)(mcp, app)
    else if (Array.isArray(exported)) for (const def of exported) register(mcp, def)
    else register(mcp, exported)
  } catch (err) {
    if (err instanceof ToolModuleError) throw err
    throw new ToolModuleError(file, err instanceof Error ? err.message : String(err))
  }
}

/**
 * MCP_TOOLS: loads every module, in order, before the app is ready (with REDIS_URL the registry is
 * locked once ready). The first that fails stops the start with one line naming its file.
 */
export async function loadToolModules (entries: readonly string[], app: FastifyInstance, cwd?: string): Promise<string[]> {
  const skipped: string[] = []
  const files = await toolModuleFiles(entries, cwd, skipped)
  if (skipped.length > 0) app.log.warn({ skipped }, `tool modules: skipped TypeScript files, ${COMPILE_FIRST}`)
  // Each module's registrations are its own: a name another module (or the app) took is refused naming both.
  for (const file of files) await registeringFrom(`tool module ${file}`, async () => { await loadToolModule(file, app.mcp, app) })
  return files
}
