// Drives the built docs site in headless Chromium the way a reader meets it, and fails on what a reader would see.
//
//   node tests/browser/check_site.mjs --url http://127.0.0.1:PORT/ --dist docs/.vitepress/dist \
//     --search plan_deployment --screenshot artifacts/docs-home.png [--chromium /usr/bin/chromium]
//
// Every page in the built folder is opened: it must render its content, log no console error, raise no page error,
// load nothing that fails, fetch nothing from another host (the site must work offline), and draw every diagram.
// On the home page the local search box must find the tool named by --search. A screenshot of the home page is
// written to --screenshot. Prints one JSON summary line; exits 1 with the problems listed when anything fails.
import { mkdir, readdir } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
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
const PAGE_TIMEOUT_MS = 30_000

const { values: options } = parseArgs({
  options: {
    url: { type: 'string' },
    dist: { type: 'string' },
    search: { type: 'string', default: 'plan_deployment' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
})
for (const required of ['url', 'dist', 'screenshot']) {
  if (!options[required]) {
    console.error(`check_site: --${required} is required`)
    process.exit(2)
  }
}
const siteUrl = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`)

/** Every page of the built site, as a path relative to its root ("index.html", "guides/ecs.html"). */
async function builtPages(folder) {
  const pages = []
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.html')) continue
    const path = relative(folder, join(entry.parentPath ?? entry.path, entry.name)).split(sep).join('/')
    if (path === '404.html') continue
    pages.push(path)
  }
  return pages.sort()
}

/** Records what a reader would notice going wrong on one browser page. */
function watch(page, problems, where) {
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${where()}: console error: ${message.text()}`)
  })
  page.on('pageerror', (error) => problems.push(`${where()}: page error: ${error.message}`))
  page.on('requestfailed', (request) => {
    // Aborted: a prefetch cut short by the next navigation. Blocked: an external request, reported by the route.
    const reason = request.failure()?.errorText ?? ''
    if (reason === 'net::ERR_ABORTED' || reason === 'net::ERR_BLOCKED_BY_CLIENT') return
    problems.push(`${where()}: request failed: ${request.url()} (${reason})`)
  })
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${where()}: HTTP ${response.status()} for ${response.url()}`)
  })
}

async function checkPage(page, path, problems) {
  const started = Date.now()
  const url = new URL(path === 'index.html' ? '' : path, siteUrl).href
  await page.goto(url, { waitUntil: 'load', timeout: PAGE_TIMEOUT_MS })
  if (!(await page.locator('#app').count())) {
    // A standalone page copied from docs/public (the rollout views the examples embed): it must show its heading
    // with no error and no failed load, as watch() records for every page.
    const heading = (await page.locator('h1').first().textContent({ timeout: PAGE_TIMEOUT_MS }))?.trim()
    if (!heading) problems.push(`${path}: no heading rendered`)
    return { path, heading, diagrams: 0, ms: Date.now() - started }
  }
  await page.waitForSelector('.VPContent', { timeout: PAGE_TIMEOUT_MS })
  const heading = (await page.locator('h1').first().textContent({ timeout: PAGE_TIMEOUT_MS }))?.trim()
  if (!heading) problems.push(`${path}: no heading rendered`)
  if (await page.locator('.NotFound').count()) problems.push(`${path}: rendered the not-found page`)
  const diagrams = await page.locator('.mermaid-diagram').count()
  if (diagrams) {
    await page
      .waitForFunction(
        () => [...document.querySelectorAll('.mermaid-diagram')].every((node) => node.dataset.rendered),
        null,
        { timeout: PAGE_TIMEOUT_MS },
      )
      .catch(() => problems.push(`${path}: diagrams were not drawn within ${PAGE_TIMEOUT_MS / 1000} s`))
    const drawn = await page.locator('.mermaid-diagram svg').count()
    if (drawn !== diagrams) problems.push(`${path}: ${drawn} of ${diagrams} diagrams drawn`)
  }
  return { path, heading, diagrams, ms: Date.now() - started }
}

async function checkSearch(page, query, problems) {
  await page.goto(siteUrl.href, { waitUntil: 'load', timeout: PAGE_TIMEOUT_MS })
  await page.locator('.VPNavBarSearch .DocSearch-Button').click()
  const input = page.locator('#localsearch-input')
  await input.waitFor({ timeout: PAGE_TIMEOUT_MS })
  await input.fill(query)
  const results = page.locator('.VPLocalSearchBox .results .result')
  try {
    await results.first().waitFor({ timeout: PAGE_TIMEOUT_MS })
  } catch {
    problems.push(`search: no result for ${JSON.stringify(query)}`)
    return { query, results: 0, titles: [] }
  }
  const titles = (await results.allTextContents()).map((text) => text.replace(/\s+/g, ' ').trim())
  const index = titles.findIndex((title) => title.includes(query))
  if (index === -1) {
    problems.push(`search: no result for ${JSON.stringify(query)} names it; got: ${titles.slice(0, 5).join(' | ')}`)
    return { query, results: titles.length, titles: titles.slice(0, 5) }
  }
  // Following the result that names the tool must land on a page that shows it.
  await results.nth(index).click()
  await page.waitForURL((url) => url.hash.length > 0 || url.pathname !== siteUrl.pathname, { timeout: PAGE_TIMEOUT_MS })
  const landed = page.url()
  if (!(await page.getByText(query).first().isVisible())) problems.push(`search: ${landed} does not show ${query}`)
  return { query, results: titles.length, rank: index + 1, chosen: titles[index], landed }
}

async function main() {
  const started = Date.now()
  const problems = []
  const pages = await builtPages(options.dist)
  if (pages.length === 0) throw new Error(`no pages found in ${options.dist}; build the site first`)
  const browser = await chromium.launch({ executablePath: options.chromium, args: CHROMIUM_FLAGS })
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    // Anything not served by the site itself is refused and reported: the site must work with no network.
    await context.route('**/*', (route) => {
      const target = new URL(route.request().url())
      if (target.host === siteUrl.host || target.protocol === 'data:' || target.protocol === 'blob:') {
        return route.continue()
      }
      problems.push(`external request refused: ${target.href}`)
      return route.abort('blockedbyclient')
    })
    const page = await context.newPage()
    let current = '(start)'
    watch(page, problems, () => current)

    const checked = []
    for (const path of pages) {
      current = path
      try {
        checked.push(await checkPage(page, path, problems))
      } catch (error) {
        problems.push(`${path}: ${error.message.split('\n')[0]}`)
      }
    }

    current = 'search'
    let search = {}
    try {
      search = await checkSearch(page, options.search, problems)
    } catch (error) {
      problems.push(`search: ${error.message.split('\n')[0]}`)
    }

    current = 'screenshot'
    await page.goto(siteUrl.href, { waitUntil: 'load', timeout: PAGE_TIMEOUT_MS })
    await page.waitForSelector('.VPHome', { timeout: PAGE_TIMEOUT_MS })
    await mkdir(dirname(options.screenshot), { recursive: true })
    await page.screenshot({ path: options.screenshot, fullPage: true })

    const summary = {
      browser: browser.version(),
      pages: checked.length,
      diagrams: checked.reduce((total, item) => total + item.diagrams, 0),
      slowest: checked
        .toSorted((a, b) => b.ms - a.ms)
        .slice(0, 3)
        .map((item) => `${item.path} ${item.ms} ms`),
      search,
      screenshot: options.screenshot,
      seconds: (Date.now() - started) / 1000,
      problems,
    }
    console.log(JSON.stringify(summary))
    if (problems.length) {
      console.error(`check_site: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`)
      process.exitCode = 1
    }
  } finally {
    await browser.close()
  }
}

main().catch((error) => {
  console.error(`check_site: ${error.stack || error}`)
  process.exit(1)
})
