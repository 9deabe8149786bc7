import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { ErrorCode, RpcError } from './jsonrpc.js'

/**
 * Multi Round-Trip Requests (MCP 2026-07-28, SEP-2322): how a stateless request obtains client
 * input (elicitation, sampling, roots). A handler calls `ctx.request(method, params, { key })` as
 * it does in the session era; in the stateless era the call is answered from the retry's
 * `inputResponses` (or from answers carried in the signed `requestState`), and when the answer
 * is not there yet the handler is stopped and the client gets an `InputRequiredResult` asking for
 * it. The client retries with the answers and the handler runs again from the top, this time
 * getting them: handlers must be deterministic up to their `ctx.request` calls (side effects
 * after the last one).
 */

/** A server→client request embedded in an InputRequiredResult. */
export interface InputRequest { method: string, params: Record<string, unknown> }

/** Thrown out of a handler when it needs client input it does not have yet. */
export class InputRequiredSignal extends Error {
  override name = 'InputRequiredSignal'
  constructor (readonly asks: Map<string, InputRequest>) { super('input required') }
}

/** What the signed requestState carries between rounds. */
export interface RequestState {
  /** method + name/uri + arguments digest: state is valid only for the request that produced it. */
  b: string
  /** Auth identity the state was issued to (null when auth is off). */
  p: string | null
  /** Expiry, epoch ms. */
  e: number
  /** Answers already given in earlier rounds, by input key. */
  r: Record<string, Record<string, unknown>>
}

const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : undefined

/** JSON with sorted keys, so the same arguments always give the same digest. */
function canonical (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  const o = obj(value)
  if (o !== undefined) return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`
  return JSON.stringify(value) ?? 'null'
}

/** Binds state to one request: its method, target (tool/prompt name or resource URI) and arguments. */
export function requestBinding (method: string, params: Record<string, unknown> | undefined): string {
  const target = params?.name ?? params?.uri ?? null
  return createHash('sha256').update(canonical([method, target, params?.arguments ?? null])).digest('base64url')
}

/**
 * Seals and opens requestState: base64url(JSON) + '.' + HMAC-SHA256. Replicas that share the
 * secret accept each other's state; anything altered, expired, issued to someone else or for
 * another request is refused with -32602.
 */
export class RequestStateCodec {
  readonly #secret: Buffer
  readonly ttlMs: number
  constructor (secret: Buffer, ttlMs: number) {
    this.#secret = secret
    this.ttlMs = ttlMs
  }

  seal (state: RequestState): string {
    const body = Buffer.from(JSON.stringify(state)).toString('base64url')
    return `${body}.${this.#mac(body)}`
  }

  open (token: unknown, binding: string, identity: string | null, now = Date.now()): RequestState {
    const invalid = (why: string): RpcError => new RpcError(ErrorCode.InvalidParams, `Invalid requestState: ${why}`)
    if (typeof token !== 'string' || token.length > 1_000_000) throw invalid('must be the string the server sent')
    const dot = token.lastIndexOf('.')
    const body = token.slice(0, dot)
    const mac = Buffer.from(token.slice(dot + 1), 'base64url')
    const expected = Buffer.from(this.#mac(body), 'base64url')
    if (dot < 1 || mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw invalid('integrity check failed')
    let state: RequestState
    try {
      state = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as RequestState
    } catch {
      throw invalid('unreadable')
    }
    if (typeof state.e !== 'number' || state.e < now) throw invalid('expired; start the request again without it')
    if (state.b !== binding) throw invalid('it was issued for a different request')
    if (state.p !== identity) throw invalid('it was issued to a different caller')
    if (obj(state.r) === undefined) throw invalid('unreadable')
    return state
  }

  #mac (body: string): string {
    return createHmac('sha256', this.#secret).update(body).digest('base64url')
  }
}

/**
 * One stateless request's view of client input: answers from state and from the retry, and the
 * asks still missing. `ask` returns an answer or throws InputRequiredSignal (after a microtask,
 * so sibling asks made in the same tick, e.g. with Promise.all, are collected into one result).
 */
export class InputCollector {
  readonly #answers: Record<string, Record<string, unknown>>
  /** Answers the handler consumed (carried forward in the next requestState). */
  readonly used: Record<string, Record<string, unknown>> = {}
  readonly asks = new Map<string, InputRequest>()
  #auto = 0

  constructor (previous: Record<string, Record<string, unknown>>, inputResponses: unknown) {
    this.#answers = { ...previous }
    if (inputResponses === undefined) return
    const given = obj(inputResponses)
    if (given === undefined) throw new RpcError(ErrorCode.InvalidParams, 'inputResponses must be an object mapping input keys to results')
    for (const [key, value] of Object.entries(given)) {
      if (key === '__proto__') continue
      // Unrecognised keys are ignored; a malformed answer to a key is checked when it is asked for.
      this.#answers[key] = value as Record<string, unknown>
    }
  }

  async ask (method: string, params: Record<string, unknown>, key: string | undefined): Promise<Record<string, unknown>> {
    const k = key ?? `input-${++this.#auto}`
    if (Object.prototype.hasOwnProperty.call(this.#answers, k)) {
      const answer = this.#answers[k]
      if (obj(answer) === undefined) throw new RpcError(ErrorCode.InvalidParams, `inputResponses.${k} must be the ${method} result object`)
      this.used[k] = answer
      return answer
    }
    this.asks.set(k, { method, params })
    await Promise.resolve()
    throw new InputRequiredSignal(this.asks)
  }
}
