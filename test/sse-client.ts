import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { ignore } from '../src/ignore.js'

export interface SseOptions {
  headers?: Record<string, string>
  method?: string
  body?: string
}

/**
 * A real SSE client over fetch: yields parsed events (and comments as `{ event: 'comment' }`).
 * `close()` aborts the request (the server sees a disconnect).
 */
export async function openSse (url: string, options: SseOptions = {}) {
  const controller = new AbortController()
  const res = await fetch(url, {
    method: options.method ?? 'GET',
    headers: { accept: 'text/event-stream', ...options.headers },
    body: options.body,
    signal: controller.signal
  })
  const queue: EventSourceMessage[] = []
  const comments: string[] = []
  let wake: (() => void) | undefined
  const state = { done: false }
  const parser = createParser({
    onEvent: (ev) => { queue.push(ev); wake?.() },
    onComment: (c) => { comments.push(c); wake?.() }
  })
  const pump = (async () => {
    if (res.body === null) return
    const decoder = new TextDecoder()
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))
    } catch (err) {
      ignore('the stream was aborted or cut: next() answers undefined, which is what the test checks')(err)
    }
    state.done = true
    wake?.()
  })()

  return {
    res,
    comments,
    /** The next event, or undefined when the stream ended; rejects after `timeoutMs`. */
    async next (timeoutMs = 5000): Promise<EventSourceMessage | undefined> {
      const deadline = Date.now() + timeoutMs
      while (queue.length === 0 && !state.done) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`no SSE event within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          wake = () => { clearTimeout(timer); resolve() }
        })
        wake = undefined
      }
      return queue.shift()
    },
    /** Waits until a comment line has arrived. */
    async nextComment (timeoutMs = 5000): Promise<string> {
      const deadline = Date.now() + timeoutMs
      while (comments.length === 0) {
        if (state.done || Date.now() > deadline) throw new Error('no SSE comment')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      return comments.shift() as string
    },
    get ended () { return state.done },
    close () { controller.abort(); return pump },
    finished: pump
  }
}
