import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { connect } from 'node:net'
import { buildApp, type App } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { testConfig } from '../helper.js'

/**
 * The hostile suite's app: real pino output at level info captured line by line, and every
 * answered status recorded, so each test can prove "no 5xx, no error-level log line" for what it
 * sent (issue 13, acceptance 4).
 */
export interface World {
  app: App
  /** Parsed pino lines. */
  lines: Array<{ level: number, msg?: string, [k: string]: unknown }>
  /** Raw log text (for "this string never reached the logs"). */
  text: () => string
  /** Every status the app answered (onResponse; hijacked streams are not in it). */
  statuses: number[]
  /** The base URL when `listen` was asked for. */
  url: string
  port: number
  /** Asserts no 5xx was answered and no line at level ≥ 50 (error, fatal) was logged. */
  assertClean: () => void
}

export const ACCEPT = 'application/json, text/event-stream'
export const JSON_CT = 'application/json'
export const HEADERS = { accept: ACCEPT, 'content-type': JSON_CT }

export async function hostile (
  t: TestContext, overrides: Partial<Config> = {}, opts: { listen?: boolean, setup?: (app: App) => void | Promise<void> } = {}
): Promise<World> {
  const chunks: string[] = []
  const lines: World['lines'] = []
  const sink = new Writable({
    write (chunk, _enc, cb) {
      const s = String(chunk)
      chunks.push(s)
      for (const l of s.split('\n')) if (l !== '') lines.push(JSON.parse(l))
      cb()
    }
  })
  const app = await buildApp({ ...testConfig({ rateLimitMax: 0, port: 0, ...overrides, logLevel: 'info' }), logger: { level: 'info', stream: sink } })
  t.after(() => app.close())
  const statuses: number[] = []
  app.addHook('onResponse', async (_request, reply) => { statuses.push(reply.statusCode) })
  await opts.setup?.(app)
  await app.ready()
  let url = ''
  let port = 0
  if (opts.listen === true) {
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    port = address.port
    url = `http://127.0.0.1:${port}`
  }
  return {
    app,
    lines,
    text: () => chunks.join(''),
    statuses,
    url,
    port,
    assertClean () {
      assert.deepEqual(statuses.filter((s) => s >= 500), [], 'no 5xx')
      const bad = lines.filter((l) => l.level >= 50)
      assert.deepEqual(bad.map((l) => JSON.stringify(l).slice(0, 300)), [], 'no error-level log line')
      assert.doesNotMatch(chunks.join(''), /"stack"/, 'no stack trace logged')
    }
  }
}

export interface RawReply { status: number, headers: string, body: string }

/**
 * One request over a raw socket with the request target exactly as given (inject and fetch
 * normalise it). Resolves with the head and the body once a Content-Length body arrived, or at the
 * first bytes of a stream (`stream: true`), then closes the socket.
 */
export async function raw (port: number, method: string, target: string, headers: Record<string, string>, body = '', stream = false): Promise<RawReply> {
  const head = [`${method} ${target} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []), 'Connection: close', '', ''].join('\r\n')
  return await new Promise<RawReply>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head + body))
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error(`timeout: ${method} ${target}`)) })
    let data = ''
    const done = (ended: boolean): boolean => {
      const end = data.indexOf('\r\n\r\n')
      if (end === -1) return false
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1])
      const headText = data.slice(0, end)
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(headText)?.[1] ?? -1)
      const got = data.slice(end + 4)
      if (!ended && !stream && (length < 0 || Buffer.byteLength(got, 'latin1') < length)) return false
      resolve({ status, headers: headText, body: got })
      return true
    }
    socket.on('data', (chunk: Buffer) => { data += chunk.toString('latin1'); if (done(false)) socket.destroy() })
    socket.on('end', () => { if (!done(true)) reject(new Error(`no answer: ${method} ${target}`)) })
    socket.on('error', reject)
  })
}

/** Waits (bounded) for a condition the server reaches asynchronously. */
export async function until (ok: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
export const deepObject = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
