#!/usr/bin/env node
// The `sse-mcp-server` bin and `npm start`: environment → config → buildApp (MCP_TOOLS loaded) → listen → drain.
import closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig, type Config } from './config.js'
import { buildApp } from './app.js'

let config: Config
let app: Awaited<ReturnType<typeof buildApp>>
try {
  config = loadConfig()
  // Building checks what the environment only names (an OAuth key file, MCP_TOOLS modules): also a
  // one-line ConfigError.
  app = await buildApp(config)
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(err.message + '\n')
    process.exit(1)
  }
  throw err
}

// SIGTERM/SIGINT: refuse new work (503, /ready too), let in-flight calls finish for up to
// DRAIN_TIMEOUT_MS, then close: every stream gets a `shutdown` event before its socket ends.
closeWithGrace({ delay: config.drainTimeoutMs + 5_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'fatal error, shutting down')
  else app.log.info({ signal }, 'draining')
  await app.lifecycle.drain(err ? 0 : config.drainTimeoutMs)
  await app.close()
  app.log.info('closed')
})

try {
  await app.listen({ host: config.host, port: config.port })
} catch (err) {
  // One line that says what to do, like a configuration error (not a stack in a log line).
  process.stderr.write(`${listenFailure(err, config)}\n`)
  process.exit(1)
}
const address = app.server.address()
const port = typeof address === 'object' && address !== null ? address.port : config.port
const scheme = config.tls ? 'https' : 'http'
const host = config.host.includes(':') ? `[${config.host}]` : config.host
const base = `${scheme}://${host}:${port}`
app.log.info(`MCP endpoint (Streamable HTTP): ${base}/mcp`)
app.log.info(`HTTP+SSE endpoint: ${base}/sse`)
app.log.info(`Health: ${base}/health`)
app.log.info(`Docs: ${base}/docs`)

function listenFailure (err: unknown, { host, port }: Config): string {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
  const code = (err as { code?: unknown }).code
  if (code === 'EADDRINUSE') return `Cannot listen on ${where}: the port is in use by another process; stop that process or set PORT to a free port`
  if (code === 'EACCES') return `Cannot listen on ${where}: permission denied (ports below 1024 need privileges); set PORT to 1024 or above`
  if (code === 'EADDRNOTAVAIL') return `Cannot listen on ${where}: ${host} is not an address of this machine; set HOST to one of its addresses, 127.0.0.1 or 0.0.0.0`
  return `Cannot listen on ${where}: ${err instanceof Error ? err.message : String(err)}`
}
