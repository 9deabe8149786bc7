import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { chmod, cp, mkdtemp, mkdir, readdir, rename, rm, symlink, writeFile, realpath, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { ROOT, freePort } from './process.js'

const run = promisify(execFile)
const FIXTURE = join(ROOT, 'test/e2e/package-fixture')
/** What the consumer project depends on besides the package (taken from this checkout's install). */
const CONSUMER_DEPENDENCIES = ['fastify', '@sinclair/typebox', 'zod', 'typescript', '@types/node']

/**
 * A new project with the packed tarball installed as npm would lay it out: the tarball's files in
 * node_modules/sse-mcp-server and its bin in node_modules/.bin. Dependencies are links to this
 * checkout's install (the npm cache is empty offline, and npm must never write into a shared
 * install): the package's own dependencies and the consumer's.
 */
async function consumerProject (dir: string): Promise<string> {
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 })
  const [packed] = JSON.parse(stdout) as Array<{ filename: string }>
  assert.ok(packed !== undefined)
  const project = join(dir, 'consumer')
  const modules = join(project, 'node_modules')
  await mkdir(join(modules, '.bin'), { recursive: true })
  await run('tar', ['xzf', join(dir, packed.filename), '-C', modules])
  await rename(join(modules, 'package'), join(modules, 'sse-mcp-server'))
  const manifest = JSON.parse(await readFile(join(modules, 'sse-mcp-server/package.json'), 'utf8')) as { dependencies: Record<string, string>, bin: Record<string, string> }
  for (const name of new Set([...Object.keys(manifest.dependencies), ...CONSUMER_DEPENDENCIES])) {
    if (name.includes('/')) await mkdir(join(modules, name.split('/')[0] ?? ''), { recursive: true })
    await symlink(await realpath(join(ROOT, 'node_modules', name)), join(modules, name), 'dir')
  }
  const bin = manifest.bin['sse-mcp-server'] ?? ''
  await chmod(join(modules, 'sse-mcp-server', bin), 0o755)
  await symlink(`../sse-mcp-server/${bin}`, join(modules, '.bin/sse-mcp-server'))
  await symlink(await realpath(join(ROOT, 'node_modules/typescript/bin/tsc')), join(modules, '.bin/tsc'))
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  await cp(FIXTURE, project, { recursive: true })
  for (const name of await readdir(project)) {
    if (name.endsWith('.txt')) await rename(join(project, name), join(project, name.slice(0, -4)))
  }
  return project
}

/** Starts a process and resolves with its URL once it prints `listening <url>` or logs the MCP endpoint. */
async function started (
  t: { after: (fn: () => Promise<void>) => void }, cmd: string, args: string[], cwd: string, env: Record<string, string>
): Promise<string> {
  // Its own process group: `npx` starts the server as a child of its own, and both must go.
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.after(async () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
    } catch (err) {
      // ESRCH: the group is already gone.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
    }
    if (child.exitCode === null && child.signalCode === null) await exited
  })
  let out = ''
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start within 20 s:\n${out}`)), 20_000)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = /listening (http:\/\/\S+)/.exec(out) ?? /MCP endpoint \(Streamable HTTP\): (http:\/\/[^\s"]+)\/mcp/.exec(out)
      if (m?.[1] !== undefined) { clearTimeout(timer); resolve(m[1]) }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${String(code)}:\n${out}`)) })
  })
}

/** The environment without the test runner's marker, so a nested `node --test` reports on stdout. */
function outsideTestRunner (): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _marker, ...env } = process.env
  return env
}

async function callBoth (client: Client): Promise<string[]> {
  const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })
  const shout = await client.callTool({ name: 'shout', arguments: { text: 'hi' } })
  const bad = await client.callTool({ name: 'shout', arguments: { text: 7 } })
  assert.equal(bad.isError, true)
  return [add, shout].map((r) => (r.content as Array<{ text: string }>)[0]?.text ?? '')
}

test('the packed package, installed in a new project: plugin under a prefix, testing helper, bin with MCP_TOOLS, types', { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sse-mcp-pack-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  const project = await consumerProject(dir)

  await t.test('the package carries its LICENSE and its metadata (license, keywords, engines)', async () => {
    const root = join(project, 'node_modules/sse-mcp-server')
    assert.match(await readFile(join(root, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) \d{4} sse-mcp-server contributors\n/)
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, unknown>
    assert.equal(manifest.license, 'MIT')
    assert.ok(Array.isArray(manifest.keywords) && manifest.keywords.includes('mcp') && manifest.keywords.includes('fastify'))
    assert.deepEqual(manifest.engines, { node: '>=20' })
  })

  await t.test('the plugin in the project\'s own app, beside its route: SDK clients over Streamable HTTP and HTTP+SSE', async (t) => {
    const url = await started(t, process.execPath, ['app.mjs'], project, { PORT: '0' })
    assert.deepEqual(await (await fetch(`${url}/hello`)).json(), { hello: 'world' })
    const streamable = new Client({ name: 'pack-e2e', version: '1.0.0' })
    await streamable.connect(new StreamableHTTPClientTransport(new URL('/api/mcp', url)))
    t.after(() => streamable.close())
    assert.deepEqual(await callBoth(streamable), ['5', 'HI'])
    const sse = new Client({ name: 'pack-e2e-sse', version: '1.0.0' })
    const transport = new SSEClientTransport(new URL('/api/sse', url))
    await sse.connect(transport)
    t.after(() => sse.close())
    assert.deepEqual(await callBoth(sse), ['5', 'HI'])
    assert.equal((await fetch(`${url}/sse`)).status, 404)
  })

  await t.test('connectInject against buildApp() with the project\'s tool modules (node --test in the project)', async () => {
    const { stdout } = await run(process.execPath, ['--test', '--test-reporter=tap', 'tools.test.mjs'], { cwd: project, env: outsideTestRunner() })
      .catch((err: { stdout?: string, stderr?: string }) => assert.fail(`${err.stdout ?? ''}${err.stderr ?? ''}`))
    assert.match(stdout, /# pass 1/)
  })

  await t.test('npx sse-mcp-server with MCP_TOOLS=./tools serves the modules', async (t) => {
    const port = await freePort()
    const url = await started(t, 'npx', ['--no', 'sse-mcp-server'], project, { MCP_TOOLS: './tools', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info' })
    const client = new Client({ name: 'pack-e2e-bin', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', url)))
    t.after(() => client.close())
    assert.deepEqual(await callBoth(client), ['5', 'HI'])
    const { tools } = await client.listTools()
    assert.ok(tools.some((tool) => tool.name === 'current_time'), 'the service keeps its built-ins')
  })

  await t.test('tsc: the consumer file type-checks under NodeNext, Node16, bundler and node10 (skipLibCheck off, the app not any); the misuse of inferred arguments and of the engine does not', async () => {
    // consumer.ts holds @ts-expect-error lines that fail (TS2578) if the app, the service or the
    // test client were `any`; skipLibCheck is off, so every declaration file of the package is checked.
    const resolutions = [
      { module: 'NodeNext', moduleResolution: 'NodeNext' },
      { module: 'Node16', moduleResolution: 'Node16' },
      { module: 'ESNext', moduleResolution: 'bundler' },
      // node10 projects set esModuleInterop (pino's and zod's own declarations need it).
      { module: 'ESNext', moduleResolution: 'node10', esModuleInterop: true }
    ]
    // Side by side: each compile checks every declaration file (tens of seconds on a loaded machine).
    await Promise.all(resolutions.map(async (options) => {
      const file = `tsconfig.${options.moduleResolution.toLowerCase()}.json`
      await writeFile(join(project, file), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { ...options, skipLibCheck: false } }))
      await run(join(project, 'node_modules/.bin/tsc'), ['-p', file, '--noEmit'], { cwd: project }).catch((err: { stdout?: string }) => {
        assert.fail(`consumer.ts should type-check with moduleResolution ${options.moduleResolution}:\n${err.stdout ?? String(err)}`)
      })
    }))
    // The misuse errors are the consumer's own: the libraries' declarations were checked above.
    await writeFile(join(project, 'tsconfig.misuse.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { skipLibCheck: true }, files: ['misuse.ts'] }))
    const failed = await run(join(project, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.misuse.json', '--noEmit'], { cwd: project }).then(() => '', (err: { stdout?: string }) => err.stdout ?? '')
    assert.match(failed, /misuse\.ts\(8,\d+\): error TS\d+/, failed)
    assert.match(failed, /misuse\.ts\(12,\d+\): error TS2339: Property 'toUpperCase' does not exist on type 'number'/, failed)
    assert.match(failed, /misuse\.ts\(17,\d+\): error TS2339: Property 'txt' does not exist/, failed)
    // app.mcp is the public API only: the engine's members are no part of its type.
    assert.match(failed, /misuse\.ts\(20,\d+\): error TS2339: Property 'server' does not exist on type 'Mcp'/, failed)
    assert.match(failed, /misuse\.ts\(20,\d+\): error TS2339: Property 'endSession' does not exist on type 'Mcp'/, failed)
    // Prompt arguments are inferred from argsSchema, structuredContent from outputSchema.
    assert.match(failed, /misuse\.ts\(22,\d+\): error TS2339: Property 'topc' does not exist/, failed)
    assert.match(failed, /misuse\.ts\(23,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/, failed)
  })
})
