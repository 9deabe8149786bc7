/**
 * SSE wire format (WHATWG HTML, "Server-sent events"). Data that spans lines becomes several
 * `data:` fields; JSON text never does, so the common case is one line.
 */
export function frame (id: string | undefined, event: string | undefined, data: string): string {
  let out = ''
  if (id !== undefined) out += `id: ${id}\n`
  if (event !== undefined && event !== 'message') out += `event: ${event}\n`
  if (data.includes('\n') || data.includes('\r')) {
    for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`
  } else {
    out += `data: ${data}\n`
  }
  return out + '\n'
}

/** A comment line: ignored by clients, keeps proxies and sockets from timing out. */
export function comment (text: string): string {
  return `: ${text}\n\n`
}
