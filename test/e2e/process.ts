import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** What `npm start` runs (after the build that `npm test` does first). */
export const SERVER_ENTRY = fileURLToPath(new URL('../../dist/src/server.js', import.meta.url))

/** A free TCP port on loopback. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export interface ServerProcess {
  child: ChildProcess
  url: string
  port: number
  output: () => string
  /** Resolves with the exit code. */
  exited: Promise<number | null>
}

/** Starts the built server as a plain node process on a free port and waits until it listens. */
export async function startServer (t: TestContext, env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort()
  const child = spawn(process.execPath, [SERVER_ENTRY], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const url = `http://127.0.0.1:${port}`
  // Ready when /health answers, whatever LOG_LEVEL hides.
  const deadline = Date.now() + 20_000
  let lastError: unknown
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${out}`)
    if (Date.now() > deadline) throw new Error(`server did not start (last /health attempt: ${String(lastError)}):\n${out}`)
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
      if (res.ok) break
    } catch (err) {
      lastError = err // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { child, url, port, output: () => out, exited }
}
