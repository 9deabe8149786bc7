import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { ErrorCode, RpcError } from './jsonrpc.js'
import { obj } from '../values.js'
import type { CountRefusal } from '../budget.js'

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
  /** method + real target (tool/prompt name or resource URI) + arguments digest: valid only for that request. */
  b: string
  /** Auth identity the state was issued to (null when auth is off). */
  p: string | null
  /** Expiry, epoch ms. */
  e: number
  /** Answers already given in earlier rounds, by input key. */
  r: Record<string, Record<string, unknown>>
  /** The input keys this state asked for: the retry's inputResponses may answer only these. */
  k: string[]
  /** Nonce: the state is redeemed at most once within its TTL. */
  n: string
  /** The shared nonce store's identity when sealed (NonceStore.dataset); absent in memory. */
  d?: string
}

/** Who redeems a state: the client (per-client share of a bounded store) and the dataset the state was sealed under. */
export interface Redemption {
  /** The client key (auth identity, else ip:<ip>). */
  client?: string
  /** The state's `d`: the shared store's identity when it was sealed. */
  dataset?: string
}

/** Records redeemed nonces: true the first time a nonce is seen within `ttlMs`, false after. */
export interface NonceStore {
  consume (nonce: string, ttlMs: number, who?: Redemption): Promise<boolean>
  /**
   * The identity of the shared store right now (Redis: its run id), sealed into every state:
   * a state sealed under another identity is refused, so a store that lost its nonces (an empty
   * restart, an older snapshot, a failover) cannot redeem a state twice. Undefined in memory.
   */
  dataset?: () => string | undefined
}

/**
 * Redeemed nonces of one process, bounded in count (a full store refuses rather than forgets),
 * with a per-client share (a hundredth of the whole by default) so one client cannot fill it for
 * everyone.
 */
export class MemoryNonceStore implements NonceStore {
  readonly #seen = new Map<string, { expires: number, client: string }>()
  readonly #perClient = new Map<string, number>()
  readonly #max: number
  readonly perClientMax: number
  constructor (max = 100_000, perClientMax = Math.max(1, Math.floor(max / 100))) {
    this.#max = max
    this.perClientMax = perClientMax
  }

  async consume (nonce: string, ttlMs: number, who: Redemption = {}, now = Date.now()): Promise<boolean> {
    // Insertion order is expiry order (one TTL for all): expired entries are at the front.
    for (const [n, e] of this.#seen) {
      if (e.expires > now) break
      this.#forget(n, e.client)
    }
    if (this.#seen.has(nonce)) return false
    const client = who.client ?? ''
    if ((this.#perClient.get(client) ?? 0) >= this.perClientMax) {
      throw new RpcError(ErrorCode.InvalidParams, `Invalid requestState: this client has too many retries in flight (${this.perClientMax}); start the request again later`)
    }
    if (this.#seen.size >= this.#max) throw new RpcError(ErrorCode.InvalidParams, 'Invalid requestState: too many retries in flight; start the request again later')
    this.#seen.set(nonce, { expires: now + ttlMs, client })
    this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1)
    return true
  }

  #forget (nonce: string, client: string): void {
    this.#seen.delete(nonce)
    const left = (this.#perClient.get(client) ?? 1) - 1
    if (left <= 0) this.#perClient.delete(client)
    else this.#perClient.set(client, left)
  }

  get size (): number { return this.#seen.size }
  /** Nonces held for `client`. */
  heldBy (client: string): number { return this.#perClient.get(client) ?? 0 }
}

/** Deepest value canonical() walks; bodies are depth-limited by the JSON reader long before this. */
const MAX_CANONICAL_DEPTH = 256

/** JSON with sorted keys, so the same arguments always give the same digest. Depth-checked. */
function canonical (value: unknown, depth = 0): string {
  if (depth > MAX_CANONICAL_DEPTH) throw new RpcError(ErrorCode.InvalidParams, `Invalid params: nested deeper than ${MAX_CANONICAL_DEPTH} levels`)
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v, depth + 1)).join(',')}]`
  const o = obj(value)
  if (o !== undefined) return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k], depth + 1)}`).join(',')}}`
  return JSON.stringify(value) ?? 'null'
}

/** The target a method acts on: the tool or prompt name, the resource URI; nothing else stands in for it. */
function targetOf (method: string, params: Record<string, unknown> | undefined): unknown {
  switch (method) {
    case 'tools/call':
    case 'prompts/get':
      return params?.name ?? null
    case 'resources/read':
      return params?.uri ?? null
    default:
      return [params?.name ?? null, params?.uri ?? null]
  }
}

/** Binds state to one request: its method, real target (tool/prompt name or resource URI) and arguments. */
export function requestBinding (method: string, params: Record<string, unknown> | undefined): string {
  return createHash('sha256').update(canonical([method, targetOf(method, params), params?.arguments ?? null])).digest('base64url')
}

/** Signs with the current key; verifies with any key of the ring (current, then previous ones). */
export interface SecretRing {
  readonly current: Buffer
  readonly all: readonly Buffer[]
}

/** A fixed ring of one key (STATE_SECRET, or a random key for a single process). */
export function fixedRing (secret: Buffer): SecretRing {
  return { current: secret, all: [secret] }
}

export interface CodecOptions {
  ttlMs: number
  /** Largest requestState issued or accepted (MAX_STATE_BYTES). */
  maxBytes: number
  nonces: NonceStore
  /** Counts a state refused or not issued for MAX_STATE_BYTES (BudgetRefusals). */
  countRefusal?: CountRefusal
  /** The clock expiry is set and checked with (with Redis: Redis's clock, so replicas agree). Default Date.now. */
  now?: () => number
}

/**
 * Seals and opens requestState: base64url(JSON) + '.' + HMAC-SHA256. Replicas that share the
 * secret accept each other's state; anything altered, expired, oversized, issued to someone else
 * or for another request, or redeemed before is refused with -32602.
 */
export class RequestStateCodec {
  readonly #ring: SecretRing
  readonly #nonces: NonceStore
  readonly ttlMs: number
  readonly maxBytes: number
  /** The clock of `e` (CodecOptions.now). */
  readonly now: () => number
  readonly #countRefusal: CountRefusal
  constructor (ring: SecretRing | Buffer, opts: CodecOptions) {
    this.#ring = Buffer.isBuffer(ring) ? fixedRing(ring) : ring
    this.ttlMs = opts.ttlMs
    this.maxBytes = opts.maxBytes
    this.#nonces = opts.nonces
    this.now = opts.now ?? Date.now
    this.#countRefusal = opts.countRefusal ?? (() => {})
  }

  seal (state: Omit<RequestState, 'n' | 'd'>): string {
    const d = this.#nonces.dataset?.()
    const body = Buffer.from(JSON.stringify({ ...state, n: randomBytes(12).toString('base64url'), ...(d === undefined ? {} : { d }) })).toString('base64url')
    const token = `${body}.${this.#mac(body, this.#ring.current)}`
    if (token.length > this.maxBytes) {
      this.#countRefusal()
      throw new RpcError(ErrorCode.InvalidParams, `The answers given so far exceed the requestState budget (MAX_STATE_BYTES ${this.maxBytes}); start the request again with shorter answers`)
    }
    return token
  }

  /** Verifies a retry's state, then redeems its nonce (a state works once). `client` has a share of a bounded store. */
  async redeem (token: unknown, binding: string, identity: string | null, client?: string, now = this.now()): Promise<RequestState> {
    const state = this.open(token, binding, identity, now)
    if (!await this.#nonces.consume(state.n, Math.max(1, state.e - now), { client, dataset: state.d })) throw invalid('it was already used, or the server lost its record of used states; start the request again without it')
    return state
  }

  /** Checks integrity, expiry, binding and caller (does not redeem: see redeem()). */
  open (token: unknown, binding: string, identity: string | null, now = this.now()): RequestState {
    if (typeof token !== 'string') throw invalid('must be the string the server sent')
    if (token.length > this.maxBytes) { this.#countRefusal(); throw invalid(`larger than MAX_STATE_BYTES (${this.maxBytes})`) }
    const dot = token.lastIndexOf('.')
    const body = token.slice(0, dot)
    const mac = Buffer.from(token.slice(dot + 1), 'base64url')
    const ok = dot >= 1 && this.#ring.all.some((key) => {
      const expected = Buffer.from(this.#mac(body, key), 'base64url')
      return mac.length === expected.length && timingSafeEqual(mac, expected)
    })
    if (!ok) throw invalid('integrity check failed')
    let state: RequestState
    try {
      state = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as RequestState
    } catch {
      throw invalid('unreadable')
    }
    if (typeof state.e !== 'number' || state.e < now) throw invalid('expired; start the request again without it')
    if (state.b !== binding) throw invalid('it was issued for a different request')
    if (state.p !== identity) throw invalid('it was issued to a different caller')
    if (obj(state.r) === undefined || !Array.isArray(state.k) || typeof state.n !== 'string') throw invalid('unreadable')
    return state
  }

  #mac (body: string, key: Buffer): string {
    return createHmac('sha256', key).update(body).digest('base64url')
  }
}

const invalid = (why: string): RpcError => new RpcError(ErrorCode.InvalidParams, `Invalid requestState: ${why}`)

/**
 * The answers of a retry the server may use: only those a verified requestState asked for. Answers
 * without a state, or to keys the state did not ask, are ignored (the spec: servers SHOULD ignore
 * unrecognized information), so the handler asks again instead of trusting them.
 */
export function askedAnswers (inputResponses: unknown, state: RequestState | undefined): unknown {
  if (state === undefined || inputResponses === undefined) return undefined
  const given = obj(inputResponses)
  if (given === undefined) return inputResponses
  const out: Record<string, unknown> = {}
  for (const k of state.k) if (Object.prototype.hasOwnProperty.call(given, k)) out[k] = given[k]
  return out
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
      const answer = obj(this.#answers[k])
      if (answer === undefined) throw new RpcError(ErrorCode.InvalidParams, `inputResponses.${k} must be the ${method} result object`)
      this.used[k] = answer
      return answer
    }
    this.asks.set(k, { method, params })
    await Promise.resolve()
    throw new InputRequiredSignal(this.asks)
  }
}
