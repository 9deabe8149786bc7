import type { JsonLimits } from './config.js'

/**
 * The one JSON reader every request body goes through. A linear, non-recursive scan checks the
 * limits (nesting depth, object keys, string length) before JSON.parse runs, so a depth bomb or a
 * key flood is refused up front: it never reaches a recursive walk (schema validation, canonical
 * JSON, JSON.stringify) where it would end in a RangeError and a 500.
 */
export type JsonReadResult =
  | { ok: true, value: unknown }
  | { ok: false, reason: 'syntax' | 'depth' | 'keys' | 'string', message: string }

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d

/** Checks `text` against the limits; undefined when within them, else why not. */
export function checkJsonLimits (text: string, limits: JsonLimits): Exclude<JsonReadResult, { ok: true }> | undefined {
  let depth = 0
  let keys = 0
  let inString = false
  let stringStart = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) {
        inString = false
        // UTF-16 units; a fair bound on the UTF-8 bytes for the text a client can send.
        if (i - stringStart > limits.maxStringBytes) {
          return { ok: false, reason: 'string', message: `a string is longer than ${limits.maxStringBytes} bytes` }
        }
      }
      continue
    }
    if (c === QUOTE) {
      inString = true
      stringStart = i + 1
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limits.maxDepth) {
        return { ok: false, reason: 'depth', message: `nesting is deeper than ${limits.maxDepth} levels` }
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--
    } else if (c === COLON) {
      if (++keys > limits.maxKeys) {
        return { ok: false, reason: 'keys', message: `more than ${limits.maxKeys} object keys` }
      }
    }
  }
  return undefined
}

/** Parses `text` within the limits. Never throws. */
export function readJson (text: string, limits: JsonLimits): JsonReadResult {
  const over = checkJsonLimits(text, limits)
  if (over !== undefined) return over
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch {
    return { ok: false, reason: 'syntax', message: 'the body is not valid JSON' }
  }
}
