import { after, before, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'

/** Debian's chromium (`apt-get install chromium`; .ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium'
const skip = !existsSync(CHROMIUM) ? `${CHROMIUM} is missing` : false

let browser: Browser | undefined
let certDir = ''

before(async () => {
  if (skip !== false) return
  certDir = mkdtempSync(join(tmpdir(), 'sse-mcp-h2-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'], timeout: 30_000 })
})
after(async () => {
  // Bounded: a browser that does not close must not hold up the run.
  await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())])
  if (certDir !== '') rmSync(certDir, { recursive: true, force: true })
})

async function serve (t: TestContext, http2: boolean): Promise<{ app: App, origin: string }> {
  const env = { TLS_CERT_FILE: join(certDir, 'cert.pem'), TLS_KEY_FILE: join(certDir, 'key.pem'), HTTP2: String(http2) }
  const app = await buildApp({ ...loadConfig(env), logLevel: 'silent', logger: false })
  t.after(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  return { app, origin: `https://localhost:${address.port}` }
}

/** Opens `n` EventSources on the public stream from one page; how many got `welcome` within `ms`, and the page's protocol. */
async function openStreams (t: TestContext, origin: string, n: number, ms: number): Promise<{ welcomed: number, protocol: string }> {
  assert.ok(browser !== undefined)
  const context = await browser.newContext({ ignoreHTTPSErrors: true })
  t.after(() => context.close())
  const page = await context.newPage()
  await page.goto(`${origin}/health`)
  // The protocol the page itself came over (a string: the test's TypeScript has no DOM types).
  const protocol = String(await page.evaluate('performance.getEntriesByType("navigation")[0]?.nextHopProtocol'))
  const welcomed = await page.evaluate(async ({ n, ms }) => {
    let welcomed = 0
    const sources: EventSource[] = []
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      for (let i = 0; i < n; i++) {
        const es = new EventSource('/mcp')
        sources.push(es)
        es.addEventListener('welcome', () => { if (++welcomed === n) { clearTimeout(timer); resolve() } }, { once: true })
      }
    })
    for (const es of sources) es.close()
    return welcomed
  }, { n, ms })
  // The page's sockets go before the server closes: with the server closed first, app.close() sometimes
  // waited on Chromium's HTTP/1.1 sockets for longer than the run (the t.after above stays for failures).
  await context.close()
  return { welcomed, protocol }
}

test('Chromium over HTTP/2 (HTTP2=true): 12 event streams to one origin all open, on one socket', { skip, timeout: 60_000 }, async (t) => {
  const { app, origin } = await serve(t, true)
  let peak = 0
  const sample = setInterval(() => { peak = Math.max(peak, app.connections?.open ?? 0) }, 5)
  t.after(() => { clearInterval(sample) })
  const { welcomed, protocol } = await openStreams(t, origin, 12, 10_000)
  t.diagnostic(`HTTP/2: ${welcomed}/12 streams welcomed, protocol ${protocol}, peak sockets ${peak}`)
  assert.equal(protocol, 'h2')
  assert.equal(welcomed, 12)
  assert.ok(peak <= 2, `one connection carries them (peak ${peak} sockets)`)
})

test('the same page over HTTP/1.1 (HTTP2=false) gets only six: the browser\'s per-origin connection limit', { skip, timeout: 60_000 }, async (t) => {
  const { origin } = await serve(t, false)
  const { welcomed, protocol } = await openStreams(t, origin, 12, 3000)
  t.diagnostic(`HTTP/1.1: ${welcomed}/12 streams welcomed within 3 s, protocol ${protocol}`)
  assert.equal(protocol, 'http/1.1')
  // Six connections per origin: the rest wait for one to close (none does here).
  assert.ok(welcomed > 0 && welcomed <= 6, `${welcomed} of 12`)
})
