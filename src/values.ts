/** Small readers of untyped (JSON) values, shared so that every module narrows them the same way. */

/** `v` when it is a plain object (not null, not an array), else undefined. */
export const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : undefined

/** Type guard form of obj. */
export const isObject = (v: unknown): v is Record<string, unknown> => obj(v) !== undefined

/** `v` when it is a string, else undefined. */
export const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
