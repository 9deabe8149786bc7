import { createRequire } from 'node:module'
import { Kind, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ignore } from '../ignore.js'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { Ajv2019 } from 'ajv/dist/2019.js'
import { Ajv as AjvDraft7 } from 'ajv'
import type { ErrorObject, Options as AjvOptions, ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { cap } from '../budget.js'

/**
 * One validator per schema form: TypeBox (compiled), plain JSON Schema (Ajv, 2020-12 by default,
 * `$schema` honoured) and Standard Schema (zod 4 and others). Every schema is compiled once, at
 * registration; a schema that cannot be compiled is refused there, never left unchecked.
 */

/** The Standard Schema interface (https://standardschema.dev), declared here: it is a tiny spec. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': StandardSchemaV1.Props<Input, Output>
}
export declare namespace StandardSchemaV1 {
  export interface Props<Input = unknown, Output = Input> {
    readonly version: 1
    readonly vendor: string
    readonly validate: (value: unknown) => Result<Output> | Promise<Result<Output>>
    readonly types?: { readonly input: Input, readonly output: Output } | undefined
    /** Standard JSON Schema (optional): converts the schema to JSON Schema. */
    readonly jsonSchema?: {
      readonly input: (options: { target: string }) => Record<string, unknown>
      readonly output: (options: { target: string }) => Record<string, unknown>
    }
  }
  export type Result<Output> = { readonly value: Output, readonly issues?: undefined } | { readonly issues: readonly Issue[] }
  export interface Issue {
    readonly message: string
    readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined
  }
  export type InferInput<S extends StandardSchemaV1> = NonNullable<S['~standard']['types']>['input']
  export type InferOutput<S extends StandardSchemaV1> = NonNullable<S['~standard']['types']>['output']
}

/** A plain JSON Schema object (draft 2020-12 unless its `$schema` says otherwise). */
export type JsonSchemaObject = Record<string, unknown>

/** Any schema form a tool, prompt or template may declare. */
export type AnySchema = TSchema | StandardSchemaV1 | JsonSchemaObject

/** What a handler receives for a schema: inferred for Standard Schema and TypeBox, an object otherwise. */
export type Infer<S> = S extends StandardSchemaV1
  ? StandardSchemaV1.InferOutput<S>
  : S extends TSchema ? Static<S> : Record<string, unknown>

export type Outcome = { ok: true, value: unknown } | { ok: false, problems: string[] }

export interface Validator {
  /** The JSON Schema clients see (tools/list): TypeBox's symbols stripped, Standard Schema converted. */
  readonly json: Record<string, unknown>
  /** Which engine checks values: for logs and tests. */
  readonly engine: 'typebox' | 'ajv' | 'standard'
  /** Checks a value; Standard Schema may return a transformed value (defaults, coercions). */
  validate: (value: unknown) => Outcome | Promise<Outcome>
  /** Drops what the engine cached for this schema (the tool was removed or replaced). */
  release: () => void
}

/** At most this many problems are named, each at most PROBLEM_CHARS, the whole at most TEXT_CHARS. */
const MAX_PROBLEMS = 5
const PROBLEM_CHARS = 160
const TEXT_CHARS = 1000

/** "what: path: message; path: message" — bounded, safe to send to the client and to log. */
export function describeProblems (what: string, problems: string[]): string {
  const named = problems.slice(0, MAX_PROBLEMS).map((p) => cap(p, PROBLEM_CHARS))
  const more = problems.length > MAX_PROBLEMS ? ' (and more)' : ''
  return cap(`${what}: ${named.join('; ')}${more}`, TEXT_CHARS)
}

export function isStandardSchema (schema: unknown): schema is StandardSchemaV1 {
  if (typeof schema !== 'object' || schema === null) return false
  const props = (schema as Record<string, unknown>)['~standard']
  return typeof props === 'object' && props !== null && typeof (props as Record<string, unknown>).validate === 'function'
}

function isTypeBox (schema: object): schema is TSchema {
  return Kind in schema
}

/** Strips TypeBox's symbol keys (and anything not JSON): what clients see is plain JSON Schema. */
function plain (schema: object): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
}

type AjvInstance = InstanceType<typeof Ajv2020> | InstanceType<typeof AjvDraft7>
type Draft = '2020-12' | '2019-09' | 'draft-07'

const addFormats = addFormatsModule as unknown as (ajv: AjvInstance) => AjvInstance

/** Which draft a `$schema` names; undefined for one we do not support. */
function draftOf (uri: unknown): Draft | undefined {
  if (uri === undefined) return '2020-12'
  if (typeof uri !== 'string') return undefined
  if (/^https?:\/\/json-schema\.org\/draft\/2020-12\/schema#?$/.test(uri)) return '2020-12'
  if (/^https?:\/\/json-schema\.org\/draft\/2019-09\/schema#?$/.test(uri)) return '2019-09'
  if (/^https?:\/\/json-schema\.org\/draft-07\/schema#?$/.test(uri)) return 'draft-07'
  return undefined
}

/** "/a/b" → the JSON Pointer of a failing value; `required` and `additionalProperties` name the key itself. */
function ajvProblem (e: ErrorObject): string {
  let path = e.instancePath
  const params = e.params as Record<string, unknown>
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') path += `/${params.missingProperty}`
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') path += `/${params.additionalProperty}`
  return `${path === '' ? '/' : path}: ${e.message ?? e.keyword}`
}

/** Errors under a combinator (anyOf, if/then/else, …) are guesses about the branch meant: direct ones first, no repeats. */
const BRANCH = /\/(anyOf|oneOf|allOf|not|if|then|else)(\/|$)/
function ajvProblems (errors: ErrorObject[]): string[] {
  const ranked = [...errors.filter((e) => !BRANCH.test(e.schemaPath)), ...errors.filter((e) => BRANCH.test(e.schemaPath))]
  return [...new Set(ranked.map(ajvProblem))]
}

function issuePath (issue: StandardSchemaV1.Issue): string {
  if (issue.path === undefined || issue.path.length === 0) return '/'
  return issue.path.map((p) => `/${String(typeof p === 'object' && p !== null ? p.key : p)}`).join('')
}

/** Converts a Standard Schema to JSON Schema: Standard JSON Schema when offered, else zod's own converter. */
function standardJson (schema: StandardSchemaV1, io: 'input' | 'output'): Record<string, unknown> {
  const props = schema['~standard']
  if (props.jsonSchema !== undefined) return props.jsonSchema[io]({ target: 'draft-2020-12' })
  if (props.vendor === 'zod') {
    // zod 4 before Standard JSON Schema: its converter, loaded only when the user passed a zod schema.
    const zod = createRequire(import.meta.url)('zod') as { toJSONSchema?: (s: unknown, o: Record<string, unknown>) => Record<string, unknown> }
    if (typeof zod.toJSONSchema === 'function') return zod.toJSONSchema(schema, { io, target: 'draft-2020-12' })
  }
  throw new Error(`a ${props.vendor} Standard Schema without a JSON Schema converter (~standard.jsonSchema) cannot be listed`)
}

/** Compiles schemas; one Ajv instance per draft, made when first needed. Owned by a Registry. */
export class SchemaCompiler {
  readonly #ajv = new Map<Draft, AjvInstance>()

  #ajvFor (draft: Draft): AjvInstance {
    let ajv = this.#ajv.get(draft)
    if (ajv === undefined) {
      // strict off: JSON Schema allows unknown keywords (x-*, vendor annotations); allErrors to name every failing path.
      const opts: AjvOptions = { strict: false, allErrors: true, validateFormats: true }
      ajv = draft === '2020-12' ? new Ajv2020(opts) : draft === '2019-09' ? new Ajv2019(opts) : new AjvDraft7(opts)
      addFormats(ajv)
      this.#ajv.set(draft, ajv)
    }
    return ajv
  }

  /**
   * Compiles `schema` for `io` (a tool's input, or its output). Throws an Error saying why when it
   * cannot be compiled; the caller names the tool.
   */
  compile (schema: unknown, io: 'input' | 'output' = 'input'): Validator {
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error('the schema must be an object')
    if (isStandardSchema(schema)) return this.#standard(schema, io)
    if (isTypeBox(schema)) {
      try {
        const check = TypeCompiler.Compile(schema)
        return {
          json: plain(schema),
          engine: 'typebox',
          validate: (value) => check.Check(value)
            ? { ok: true, value }
            : { ok: false, problems: [...take(check.Errors(value), MAX_PROBLEMS + 1)].map((e) => `${e.path === '' ? '/' : e.path}: ${e.message}`) },
          release: () => {}
        }
      } catch (err) {
        ignore('Type.Unsafe and other kinds TypeBox cannot compile are JSON Schema: Ajv checks them below')(err)
      }
    }
    return this.#jsonSchema(plain(schema))
  }

  #jsonSchema (json: Record<string, unknown>): Validator {
    const draft = draftOf(json.$schema)
    if (draft === undefined) throw new Error(`unsupported $schema ${cap(String(json.$schema), 80)} (use draft 2020-12, 2019-09 or draft-07)`)
    const ajv = this.#ajvFor(draft)
    // A $id is global to an Ajv instance: a tool re-registered with the same schema id replaces it.
    if (typeof json.$id === 'string') ajv.removeSchema(json.$id)
    let fn: ValidateFunction
    try {
      fn = ajv.compile(json)
    } catch (err) {
      throw new Error(err instanceof Error ? err.message : String(err))
    }
    return {
      json,
      engine: 'ajv',
      validate: (value) => fn(value) ? { ok: true, value } : { ok: false, problems: ajvProblems(fn.errors ?? []) },
      release: () => { ajv.removeSchema(json) }
    }
  }

  #standard (schema: StandardSchemaV1, io: 'input' | 'output'): Validator {
    const json = standardJson(schema, io)
    const validate = schema['~standard'].validate
    const outcome = (r: StandardSchemaV1.Result<unknown>): Outcome => r.issues === undefined
      ? { ok: true, value: r.value }
      : { ok: false, problems: r.issues.slice(0, MAX_PROBLEMS + 1).map((i) => `${issuePath(i)}: ${i.message}`) }
    return {
      json,
      engine: 'standard',
      validate: (value) => {
        const r = validate(value)
        return r instanceof Promise ? r.then(outcome) : outcome(r)
      },
      release: () => {}
    }
  }
}

function * take<T> (items: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return
  let i = 0
  for (const item of items) {
    yield item
    if (++i >= n) return
  }
}
