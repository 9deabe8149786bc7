import { after, before, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { listen } from '../helper.js'
import { ignore } from '../../src/ignore.js'

/** Debian's chromium (`apt-get install chromium`; .ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'
]
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))
const README_SCREENSHOT = fileURLToPath(new URL('../../docs/docs-page.png', import.meta.url))
const WAIT = { timeout: 10_000 }

let browser: Browser

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium`)
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 })
})
after(async () => { await browser?.close() })

/** A fresh page whose script errors, console errors and dialogs (an executed alert!) fail the test. */
async function openPage (t: TestContext): Promise<{ page: Page, problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } })
  t.after(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(WAIT.timeout)
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss().catch(ignore('the dialog is already recorded as a problem')) })
  return { page, problems }
}

async function broadcast (url: string, event: string, data: unknown, token?: string): Promise<void> {
  const res = await fetch(`${url}/broadcast`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ event, data }),
    signal: AbortSignal.timeout(WAIT.timeout)
  })
  assert.ok(res.ok, `POST /broadcast: ${res.status} ${await res.text()}`)
}

/** Clicks Call and waits for the result panel to settle; returns its state and text. */
async function callSelectedTool (page: Page): Promise<{ state: string, text: string }> {
  await page.click('#call')
  const result = await page.waitForSelector('#result[data-state="ok"], #result[data-state="error"]')
  return { state: String(await result.getAttribute('data-state')), text: String(await page.textContent('#result-text')) }
}

test('the docs console connects, shows welcome, heartbeats and a broadcast, and calls current_time', async (t) => {
  const { url } = await listen(t, { heartbeatIntervalMs: 300 })
  const { page, problems } = await openPage(t)
  await page.goto(`${url}/docs`)
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'disconnected')

  await page.click('#connect')
  await page.waitForSelector('#status[data-state="connected"]')
  await page.waitForSelector('#events li[data-event="welcome"]')
  await page.waitForSelector('#events li[data-kind="heartbeat"]')

  const marker = `release ${randomUUID()}`
  await broadcast(url, 'deploy', { text: marker })
  const item = await page.waitForSelector('#events li[data-event="deploy"]')
  assert.match(String(await item.textContent()), new RegExp(marker))

  const selected = String(await page.locator('#tool-select option:checked').textContent())
  assert.match(selected, /^current_time/, 'current_time is preselected')
  const result = await callSelectedTool(page)
  assert.equal(result.state, 'ok', result.text)
  assert.match(result.text, /20\d\d/, 'the result shows the current time')
  assert.match(String(await page.textContent('#session-info')), /session|stateless/)

  // A second call reuses the session.
  const again = await callSelectedTool(page)
  assert.equal(again.state, 'ok', again.text)

  mkdirSync(ARTIFACTS, { recursive: true })
  await page.mouse.wheel(0, -10_000)
  const shot = `${ARTIFACTS}docs-page.png`
  await page.screenshot({ path: shot })
  // The README's picture is refreshed on request (or when missing), not on every run.
  if (process.env.UPDATE_DOCS_SCREENSHOT === '1' || !existsSync(README_SCREENSHOT)) {
    mkdirSync(dirname(README_SCREENSHOT), { recursive: true })
    copyFileSync(shot, README_SCREENSHOT)
  }
  assert.deepEqual(problems, [])
})

test('the console\'s EventSource mode receives broadcasts it listens for', async (t) => {
  const { url } = await listen(t)
  const { page, problems } = await openPage(t)
  await page.goto(`${url}/docs`)
  await page.selectOption('#transport', 'eventsource')
  await page.click('#connect')
  await page.waitForSelector('#status[data-state="connected"]')
  await page.waitForSelector('#events li[data-event="welcome"]')
  await broadcast(url, 'announcement', { text: 'via EventSource' })
  const item = await page.waitForSelector('#events li[data-event="announcement"]')
  assert.match(String(await item.textContent()), /via EventSource/)
  await page.click('#connect') // disconnect
  await page.waitForSelector('#status[data-state="disconnected"]')
  assert.deepEqual(problems, [])
})

test('with auth on, the console sends the token it is given, for the stream and for tool calls', async (t) => {
  const token = 'browser-test-token-42'
  // /broadcast needs an operator credential when auth is on; the console itself uses a client token.
  const operator = 'browser-test-operator-42'
  const { url } = await listen(t, { authTokens: [token], operatorTokens: [operator] })
  const { page, problems } = await openPage(t)
  // A browser cannot add a header to a navigation; the test does it for the page itself only.
  await page.route(`${url}/docs`, (route) => route.continue({ headers: { ...route.request().headers(), authorization: `Bearer ${token}` } }))
  await page.goto(`${url}/docs`)

  // Without the token the stream is refused, and the page says so.
  await page.click('#connect')
  await page.waitForSelector('#status[data-state="error"]')
  await page.waitForSelector('#events li[data-event="HTTP 401"]')

  await page.fill('#token', token)
  await page.click('#connect')
  await page.waitForSelector('#status[data-state="connected"]')
  await page.waitForSelector('#events li[data-event="welcome"]')
  await broadcast(url, 'secured', { ok: true }, operator)
  await page.waitForSelector('#events li[data-event="secured"]')

  const result = await callSelectedTool(page)
  assert.equal(result.state, 'ok', result.text)
  // The browser logs the refused fetch itself as a console error; nothing else may go wrong.
  assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), [])
})

test('a tool description containing <script> shows as text in the browser and never runs', async (t) => {
  const { app, url } = await listen(t)
  const { page, problems } = await openPage(t)
  // The page renders the live catalog; give it a hostile entry the way a plugin's tool would appear.
  const catalog = app.mcp.catalog.bind(app.mcp)
  const hostile = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
  app.mcp.catalog = () => {
    const c = catalog()
    return { ...c, tools: [...c.tools, { name: 'hostile', description: hostile, inputSchema: { type: 'object', properties: { note: { type: 'string', description: hostile } } } }] }
  }
  await page.goto(`${url}/docs`)
  const shown = await page.textContent('article[data-tool="hostile"] .description')
  assert.equal(shown, hostile)
  await page.selectOption('#tool-select', { label: 'hostile' })
  assert.equal(await page.textContent('#tool-desc'), hostile)
  assert.match(String(await page.textContent('#tool-fields')), /<script>alert/)
  assert.equal(await page.locator('script').count(), 3, 'only the page\'s own scripts')
  assert.equal(await page.locator('img').count(), 0)
  assert.deepEqual(problems, [])
})
