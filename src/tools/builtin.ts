import { Type } from '@sinclair/typebox'
import type { McpServer } from '../mcp/server.js'
import { PROTOCOL_VERSIONS, SERVER_NAME, SERVER_VERSION } from '../meta.js'

/** True when `zone` is an IANA time zone this runtime knows. */
export function isTimeZone (zone: string): boolean {
  try {
    Intl.DateTimeFormat('en-US', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

/** The server's local IANA time zone (TZ, else the system's), UTC when the runtime cannot tell. */
export function localTimeZone (): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC'
}

/**
 * `date` as RFC 3339 local time in `zone` with its UTC offset, to the second:
 * `2026-11-29T19:06:12+09:00` (`Z` is never used: the offset is always written, `+00:00` in UTC).
 */
export function rfc3339InZone (date: Date, zone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'
  }).formatToParts(date)
  const part = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '00'
  const year = part('year').padStart(4, '0')
  const local = `${year}-${part('month')}-${part('day')}T${part('hour')}:${part('minute')}:${part('second')}`
  const seconds = Math.floor(date.getTime() / 1000) * 1000
  const offsetMinutes = Math.round((Date.parse(`${local}Z`) - seconds) / 60_000)
  const sign = offsetMinutes < 0 ? '-' : '+'
  const abs = Math.abs(offsetMinutes)
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`
}

/** The default server's tools, resource and prompt. */
export function registerBuiltins (mcp: McpServer, startedAt: number): void {
  mcp.tool({
    name: 'current_time',
    title: 'Current time',
    description: 'Returns the current date and time (RFC 3339 with its UTC offset, then a readable form), in the server\'s ' +
      'time zone or in an IANA time zone such as Europe/Paris.',
    inputSchema: Type.Object({
      timezone: Type.Optional(Type.String({ description: 'IANA time zone, e.g. America/New_York (default: the server\'s)', maxLength: 64 }))
    }),
    outputSchema: Type.Object({ iso: Type.String(), timezone: Type.String(), formatted: Type.String(), unix: Type.Integer() }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    handler: ({ timezone }) => {
      const zone = timezone ?? localTimeZone()
      if (!isTimeZone(zone)) {
        return { content: [{ type: 'text', text: `Unknown time zone "${zone}". Use an IANA name such as UTC, Europe/Paris or America/New_York.` }], isError: true }
      }
      const now = new Date()
      const formatted = new Intl.DateTimeFormat('en-US', { timeZone: zone, dateStyle: 'full', timeStyle: 'long' }).format(now)
      const iso = rfc3339InZone(now, zone)
      const structured = { iso, timezone: zone, formatted, unix: Math.floor(now.getTime() / 1000) }
      return { content: [{ type: 'text', text: `${iso} — ${formatted} (${zone})` }], structuredContent: structured }
    }
  })

  mcp.tool({
    name: 'echo',
    title: 'Echo',
    description: 'Returns the message it is given.',
    inputSchema: Type.Object({ message: Type.String({ description: 'Text to echo back', maxLength: 100_000 }) }),
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    handler: ({ message }) => ({ content: [{ type: 'text', text: message }] })
  })

  mcp.resource({
    uri: 'server://info',
    name: 'server-info',
    title: 'Server information',
    description: 'Name, version, supported protocol versions and uptime of this server.',
    mimeType: 'application/json',
    read: (uri) => ({
      contents: [{
        uri,
        mimeType: 'application/json',
        text: JSON.stringify({
          name: SERVER_NAME,
          version: SERVER_VERSION,
          protocolVersions: PROTOCOL_VERSIONS,
          uptimeSeconds: Math.round((Date.now() - startedAt) / 1000)
        })
      }]
    })
  })

  mcp.prompt({
    name: 'time_in',
    title: 'Time in a city',
    description: 'Asks the model to tell the current time in a time zone, using the current_time tool.',
    arguments: [{ name: 'timezone', description: 'IANA time zone, e.g. Asia/Tokyo', required: true }],
    get: ({ timezone }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `What time is it now in ${timezone}? Use the current_time tool with timezone "${timezone}".` } }]
    }),
    complete: {
      timezone: (value) => Intl.supportedValuesOf('timeZone').filter((z) => z.toLowerCase().startsWith(value.toLowerCase())).slice(0, 100)
    }
  })
}
