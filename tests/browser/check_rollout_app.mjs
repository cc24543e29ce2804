// Opens the test host page in headless Chromium, lets it call a tool whose result is drawn by the rollout view (an
// MCP App in a sandboxed iframe), and watches the view the way a person would until the deployment ends.
//
//   node tests/browser/check_rollout_app.mjs --url http://127.0.0.1:PORT/ --tool deploy --arguments '{...}' \
//     [--chromium /usr/bin/chromium] [--screenshot file.png] [--timeout 120]
//
// Prints one JSON line: every status and traffic split the view showed (in order, without repeats), the split
// chart's labels, the rollback banner and mark, the values on the analysis charts and whether the threshold lines
// are drawn, and how many tools/call the view sent through the host.
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]
const { values: options } = parseArgs({
  options: {
    url: { type: 'string' },
    tool: { type: 'string', default: 'deploy' },
    arguments: { type: 'string', default: '{}' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '120' },
  },
})
const ENDED = new Set(['succeeded', 'rolled back', 'aborted', 'failed', 'paused'])

const browser = await chromium.launch({ executablePath: options.chromium, args: CHROMIUM_FLAGS })
const problems = []
try {
  const page = await browser.newPage({ viewport: { width: 820, height: 720 } })
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('console', (message) => { if (message.type() === 'error') problems.push(`console: ${message.text()}`) })
  const target = new URL(options.url)
  target.searchParams.set('tool', options.tool)
  target.searchParams.set('arguments', options.arguments)
  await page.goto(target.href)
  await page.waitForSelector('iframe#view', { timeout: 30_000 })
  const frame = page.frameLocator('iframe#view')
  const statuses = []
  const splits = []
  const deadline = Date.now() + Number(options.timeout) * 1000
  let status = ''
  while (Date.now() < deadline) {
    status = (await frame.locator('#status').textContent({ timeout: 10_000 })) ?? ''
    const split = (await frame.locator('#split-now').textContent()) ?? ''
    if (status && statuses.at(-1) !== status) statuses.push(status)
    if (split && splits.at(-1) !== split) splits.push(split)
    if (ENDED.has(status)) break
    await page.waitForTimeout(150)
  }
  await page.waitForTimeout(300) // the last redraw
  const seen = await frame.locator('body').evaluate(() => {
    const texts = (selector) => [...document.querySelectorAll(selector)].map((node) => node.textContent)
    const banner = document.getElementById('rollback')
    return {
      headline: document.getElementById('headline').textContent,
      labels: texts('#split-chart text.split-label'),
      rollbackMark: texts('#split-chart text.rollback-label'),
      banner: { shown: getComputedStyle(banner).display !== 'none', text: banner.textContent },
      errorValues: texts('#error-chart text.value'),
      errorPhases: [...document.querySelectorAll('#error-chart circle.point')].map((c) => c.getAttribute('class')),
      latencyValues: texts('#latency-chart text.value'),
      thresholdLines: {
        error: document.querySelectorAll('#error-chart .warn-line, #error-chart .critical-line').length,
        latency: document.querySelectorAll('#latency-chart .warn-line, #latency-chart .critical-line').length,
      },
      thresholdLabels: texts('#error-chart text').filter((t) => t.startsWith('warn') || t.startsWith('critical')),
      verdicts: texts('#verdicts li'),
    }
  })
  const host = await page.evaluate(() => window.hostSeen)
  if (options.screenshot) await page.screenshot({ path: options.screenshot })
  console.log(JSON.stringify({ statuses, splits, final: status, ...seen, host, problems }))
} finally {
  await browser.close()
}
