import { Registry, type AnySchema, type PromptDefinition, type ResourceDefinition, type ResourceTemplateDefinition, type ToolDefinition } from './registry.js'

/**
 * A Registry that can be locked: once locked, adding or removing a tool, resource, template or
 * prompt throws (nothing changes, so no list_changed is sent). With REDIS_URL the app locks it
 * when it is ready: a handler cannot cross processes, so a registration made at run time would
 * exist on one replica only ("Unknown tool" on the others). Register on every replica at start-up.
 */
export class LockableRegistry extends Registry {
  #locked: string | undefined

  /** From now on every change throws an Error with `reason`. */
  lock (reason: string): void { this.#locked = reason }
  get locked (): boolean { return this.#locked !== undefined }

  #check (what: string): void {
    if (this.#locked !== undefined) throw new Error(`Cannot ${what} after start-up: ${this.#locked}`)
  }

  override addTool<S extends AnySchema> (def: ToolDefinition<S>): void { this.#check(`add tool ${def.name}`); super.addTool(def) }
  override removeTool (name: string): boolean { this.#check(`remove tool ${name}`); return super.removeTool(name) }
  override addResource (def: ResourceDefinition): void { this.#check(`add resource ${def.uri}`); super.addResource(def) }
  override removeResource (uri: string): boolean { this.#check(`remove resource ${uri}`); return super.removeResource(uri) }
  override addResourceTemplate (def: ResourceTemplateDefinition): void { this.#check(`add resource template ${def.uriTemplate}`); super.addResourceTemplate(def) }
  override addPrompt (def: PromptDefinition): void { this.#check(`add prompt ${def.name}`); super.addPrompt(def) }
  override removePrompt (name: string): boolean { this.#check(`remove prompt ${name}`); return super.removePrompt(name) }
}
