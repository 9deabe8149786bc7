import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { freePort, ROOT } from './process.js'

/** Whether a binary is on PATH (or in /usr/sbin, where Debian puts nginx). */
export function have (bin: string): string | undefined {
  for (const p of [bin, `/usr/sbin/${bin}`, `/usr/bin/${bin}`]) {
    if (spawnSync(p, ['-v'], { stdio: 'ignore' }).error === undefined) return p
  }
  return undefined
}

/**
 * Skip reason when a service binary is missing — only outside CI: in CI (.ci/run installs them)
 * a missing binary fails the test instead of skipping it.
 */
export function missing (...bins: string[]): string | false {
  const absent = bins.filter((b) => have(b) === undefined)
  if (absent.length === 0) return false
  if (process.env.CI === 'true') throw new Error(`${absent.join(', ')} not installed (.ci/run installs them)`)
  return `${absent.join(', ')} not installed; apt-get install -y ${absent.join(' ')}`
}

export async function waitForPort (port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.end(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export interface RedisServer {
  url: string
  port: number
  stop (): Promise<void>
  start (): Promise<void>
}

/**
 * A throwaway redis-server on a free loopback port, stopped when the test ends. No persistence, unless
 * `dir` is given: then `SAVE` writes dir/dump.rdb and a restart loads it (an older snapshot).
 */
export async function startRedis (t: TestContext, options: { dir?: string } = {}): Promise<RedisServer> {
  const bin = have('redis-server') ?? 'redis-server'
  const port = await freePort()
  let child: ChildProcess | undefined
  const persistence = options.dir === undefined ? [] : ['--dir', options.dir, '--dbfilename', 'dump.rdb']
  const start = async (): Promise<void> => {
    child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...persistence], { stdio: 'ignore' })
    await waitForPort(port)
  }
  const stop = async (): Promise<void> => {
    const c = child
    // Already gone (a SIGKILLed child has signalCode set and exitCode null): nothing to wait for.
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL') })
  }
  await start()
  t.after(stop)
  return { url: `redis://127.0.0.1:${port}`, port, stop, start }
}

/** deploy/nginx.conf with its variables filled in, as the nginx image's template step does. */
function siteConfig (port: number, upstreams: [string, string]): string {
  const vars: Record<string, string> = { NGINX_PORT: `127.0.0.1:${port}`, APP_UPSTREAM_1: upstreams[0], APP_UPSTREAM_2: upstreams[1] }
  return readFileSync(join(ROOT, 'deploy', 'nginx.conf'), 'utf8').replace(/\$\{([A-Z0-9_]+)\}/g, (whole, name: string) => vars[name] ?? whole)
}

/** nginx with the repo's deploy/nginx.conf, templated to loopback ports, in a temp prefix. */
export async function startNginx (t: TestContext, upstreams: [string, string]): Promise<{ url: string, port: number }> {
  return await startNginxSite(t, (port) => siteConfig(port, upstreams))
}

/** nginx in a temp prefix with the http{}-level site config `render(port)` gives for a free loopback port. */
export async function startNginxSite (
  t: { after: (fn: () => Promise<void>) => void },
  render: (port: number) => string
): Promise<{ url: string, port: number }> {
  const bin = have('nginx') ?? 'nginx'
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'nginx-'))
  for (const d of ['logs', 'tmp']) mkdirSync(join(dir, d))
  writeFileSync(join(dir, 'site.conf'), render(port))
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
error_log ${dir}/logs/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  include ${dir}/site.conf;
}
`)
  const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  t.after(async () => {
    // SIGTERM: nginx's master stops its workers before it exits (SIGKILL would orphan them, still
    // holding the port); SIGKILL only if it has not gone within 5 s.
    if (child.exitCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        child.once('exit', () => { clearTimeout(timer); resolve() })
        child.kill('SIGTERM')
      })
    }
    rmSync(dir, { recursive: true, force: true })
  })
  try {
    await waitForPort(port)
  } catch (err) {
    throw new Error(`nginx did not start: ${stderr}`, { cause: err })
  }
  return { url: `http://127.0.0.1:${port}`, port }
}

/** `nginx -t` on the templated config: returns nginx's verdict. */
export function nginxConfigTest (upstreams: [string, string], port: number): { ok: boolean, output: string } {
  const bin = have('nginx') ?? 'nginx'
  const dir = mkdtempSync(join(tmpdir(), 'nginx-t-'))
  try {
    mkdirSync(join(dir, 'logs'))
    const site = siteConfig(port, upstreams)
    writeFileSync(join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log; events {} http { access_log off; client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s; ${site} }`)
    const r = spawnSync(bin, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')], { encoding: 'utf8' })
    return { ok: r.status === 0, output: r.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
