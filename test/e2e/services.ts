import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { connect, createServer as createNetServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
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
  /** SIGKILL (nothing saved). */
  stop (): Promise<void>
  /** Starts again on the same port (loading dir/dump.rdb when `dir` was given and it exists). */
  start (): Promise<void>
  /** Sends a signal to the running redis-server (SIGSTOP / SIGCONT to pause it). */
  signal (sig: NodeJS.Signals): void
}

/**
 * A throwaway redis-server on a free loopback port, stopped when the test ends. No persistence, unless
 * `dir` is given: then `SAVE` writes dir/dump.rdb and a restart loads it (an older snapshot).
 * `args`: more redis-server options (e.g. `--replicaof`).
 */
export async function startRedis (t: TestContext, options: { dir?: string, args?: string[] } = {}): Promise<RedisServer> {
  const bin = have('redis-server') ?? 'redis-server'
  const port = await freePort()
  let child: ChildProcess | undefined
  const persistence = options.dir === undefined ? [] : ['--dir', options.dir, '--dbfilename', 'dump.rdb']
  const start = async (): Promise<void> => {
    child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...persistence, ...(options.args ?? [])], { stdio: 'ignore' })
    await waitForPort(port)
  }
  const stop = async (): Promise<void> => {
    const c = child
    // Already gone (a SIGKILLed child has signalCode set and exitCode null): nothing to wait for.
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL') })
  }
  const signal = (sig: NodeJS.Signals): void => { if (child !== undefined && child.exitCode === null) child.kill(sig) }
  await start()
  // A paused server would not die of SIGKILL until continued.
  t.after(async () => { signal('SIGCONT'); await stop() })
  return { url: `redis://127.0.0.1:${port}`, port, stop, start, signal }
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

export interface FaultProxy {
  /** redis:// URL of the proxy (give it to the replica whose publishes may be dropped). */
  url: string
  /**
   * While true, every PUBLISH the client sends is turned into HEXISTS (same arity, same integer
   * reply): the client sees a normal answer, the message never reaches a subscriber — as if the
   * publisher died between its log append and its publish.
   */
  dropPublish: boolean
}

const PUBLISH = '$7\r\npublish\r\n'

/**
 * A TCP proxy in front of a Redis on loopback that can drop PUBLISH commands (fault injection with
 * no test hook in the server). A connection closed on either side closes the other, so a Redis
 * restart or CLIENT KILL reaches the client as usual.
 */
export async function startFaultProxy (t: TestContext, redisPort: number): Promise<FaultProxy> {
  const port = await freePort()
  const proxy: FaultProxy = { url: `redis://127.0.0.1:${port}`, dropPublish: false }
  const sockets = new Set<Socket>()
  const server = createNetServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    let held = ''
    client.on('data', (chunk: Buffer) => {
      // latin1 keeps bytes as they are; a command name split across chunks is held back until whole.
      let text = held + chunk.toString('latin1')
      held = ''
      if (proxy.dropPublish) text = text.replace(/\$7\r\npublish\r\n/gi, '$7\r\nhexists\r\n')
      for (let n = Math.min(PUBLISH.length - 1, text.length); n > 0; n--) {
        if (PUBLISH.startsWith(text.slice(-n).toLowerCase())) {
          held = text.slice(-n)
          text = text.slice(0, -n)
          break
        }
      }
      if (text.length > 0) upstream.write(Buffer.from(text, 'latin1'))
    })
    upstream.pipe(client)
    const close = (): void => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('close', close)
    upstream.on('close', close)
    client.on('error', close)
    upstream.on('error', close)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return proxy
}

export interface SentinelSet {
  master: RedisServer
  replica: RedisServer
  /** host:port of the three sentinels (REDIS_SENTINELS). */
  sentinels: string[]
  name: string
  /** The address the sentinels now give for the master. */
  masterAddress (): Promise<string>
}

/**
 * Redis with Sentinel on loopback: a master, one replica and three sentinels (quorum 2), with
 * short down-after and failover timeouts so a failover takes a few seconds. Every process is
 * stopped by its PID when the test ends.
 */
export async function startSentinelSet (
  t: TestContext, opts: { downAfterMs?: number, failoverTimeoutMs?: number } = {}
): Promise<SentinelSet> {
  const name = 'mymaster'
  const bin = have('redis-sentinel') ?? 'redis-sentinel'
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-'))
  // Each Redis in its own dir: a replica's full sync writes dump.rdb there, not in the cwd.
  for (const d of ['master', 'replica']) mkdirSync(join(dir, d))
  const master = await startRedis(t, { dir: join(dir, 'master') })
  const replica = await startRedis(t, { dir: join(dir, 'replica'), args: ['--replicaof', '127.0.0.1', String(master.port)] })
  const sentinels: string[] = []
  const children: ChildProcess[] = []
  t.after(async () => {
    await Promise.all(children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return
      await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL') })
    }))
    rmSync(dir, { recursive: true, force: true })
  })
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const file = join(dir, `sentinel-${i}.conf`)
    // Sentinel rewrites its config file: each needs its own, writable.
    writeFileSync(file, [
      `port ${port}`,
      'bind 127.0.0.1',
      'protected-mode no',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
      `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 3000}`,
      `sentinel parallel-syncs ${name} 1`,
      ''
    ].join('\n'))
    const child = spawn(bin, [file], { stdio: 'ignore' })
    children.push(child)
    await waitForPort(port)
    sentinels.push(`127.0.0.1:${port}`)
  }
  const ask = async (): Promise<string> => {
    const [host, port] = (sentinels[0] ?? '').split(':')
    const client = new Redis(Number(port), host ?? '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 })
    try {
      await client.connect()
      const addr = await client.call('SENTINEL', 'get-master-addr-by-name', name) as string[] | null
      return addr === null ? '' : addr.join(':')
    } finally {
      client.disconnect()
    }
  }
  return { master, replica, sentinels, name, masterAddress: ask }
}
