// Raw HTTP clients for the fault tests (chaos, Sentinel): SSE streams followed event by event,
// POSTs that never throw, and the payload of a broadcast, progress or reply as a checker key.
import { createParser } from 'eventsource-parser'
import { ignore } from '../../src/ignore.js'

export const ACCEPT = 'application/json, text/event-stream'
export const MODERN = '2026-07-28'
export const SESSION_ERA = '2025-11-25'
export interface SseEvent { id?: string, event: string, data: string }
export interface Followed {
  status: number
  /** Resolves when the response ends (or fails). */
  done: Promise<void>
  close: () => void
  body?: string
  sessionId?: string
}

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** An SSE request whose events go to `onEvent` as they arrive; a non-SSE answer is read whole into `body`. */
export async function follow (
  url: string,
  init: { method?: string, headers?: Record<string, string>, body?: string },
  onEvent: (ev: SseEvent) => void,
  timeoutMs = 10_000
): Promise<Followed> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), timeoutMs)
  let res: Response
  try {
    res = await fetch(url, { method: init.method ?? 'GET', headers: { accept: 'text/event-stream', ...init.headers }, body: init.body, signal: controller.signal })
  } catch (err) {
    return { status: 0, done: Promise.resolve(), close: () => {}, body: String(err) }
  } finally {
    clearTimeout(timer)
  }
  const sessionId = res.headers.get('mcp-session-id') ?? undefined
  if (res.status !== 200 || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const body = await res.text().catch(() => '')
    return { status: res.status, done: Promise.resolve(), close: () => {}, body, sessionId }
  }
  const parser = createParser({ onEvent: (ev) => onEvent({ id: ev.id, event: ev.event ?? 'message', data: ev.data }) })
  const done = (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of res.body ?? []) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))
    } catch (err) {
      ignore('the stream was aborted or cut: done resolves and the caller judges what arrived')(err)
    }
  })()
  return { status: 200, done, close: () => controller.abort(), sessionId }
}

export async function post (
  url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 5000
): Promise<{ status: number, text: string, headers: Headers }> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs)
    })
    return { status: res.status, text: await res.text(), headers: res.headers }
  } catch (err) {
    return { status: 0, text: String(err), headers: new Headers() }
  }
}

/** A broadcast's tag and source, from a public `tick` or a `notifications/message` of the broadcast logger. */
export function readEvent (ev: SseEvent): { payload?: string, source?: string, n?: number } {
  type Tag = { src?: string, n?: number }
  interface Message {
    id?: unknown
    method?: string
    result?: unknown
    error?: unknown
    params?: { logger?: string, progress?: number, data?: { data?: Tag } }
  }
  let d: Tag & Message
  try { d = JSON.parse(ev.data) } catch { return {} }
  if (ev.event === 'tick' && typeof d.src === 'string') return { payload: `b:${d.src}.${d.n}`, source: d.src, n: d.n }
  if (d.method === 'notifications/message' && d.params?.logger === 'broadcast') {
    const b = d.params.data?.data
    if (typeof b?.src === 'string') return { payload: `b:${b.src}.${b.n}`, source: b.src, n: b.n }
  }
  if (d.method === 'notifications/progress' && typeof d.params?.progress === 'number') return { payload: `p:${d.params.progress}`, source: 'progress', n: d.params.progress }
  if (d.id !== undefined && (d.result !== undefined || d.error !== undefined)) return { payload: `reply:${String(d.id)}` }
  return {}
}

export function modernListen (): { headers: Record<string, string>, body: string } {
  return {
    headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 'listen',
      method: 'subscriptions/listen',
      params: { notifications: { 'dev.sse-mcp-server/broadcasts': true }, _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} } }
    })
  }
}

export async function initialize (base: string): Promise<string | undefined> {
  const r = await post(`${base}/mcp`, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: SESSION_ERA, capabilities: {}, clientInfo: { name: 'chaos', version: '1' } } })
  return r.status === 200 ? r.headers.get('mcp-session-id') ?? undefined : undefined
}

export const sessionHeaders = (sid: string): Record<string, string> => ({ 'mcp-session-id': sid, 'mcp-protocol-version': SESSION_ERA })
