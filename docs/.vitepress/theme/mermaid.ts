// Draws the .mermaid-diagram placeholders that config's markdown rule writes, with mermaid's prebuilt bundle.
// The bundle (about 3.5 MB) is loaded only by pages that have a diagram, once, from this site itself.
import { withBase } from 'vitepress'

interface Mermaid {
  initialize(config: Record<string, unknown>): void
  render(id: string, source: string): Promise<{ svg: string }>
}

declare global {
  interface Window {
    mermaid?: Mermaid
  }
}

let loading: Promise<Mermaid> | undefined
let queue: Promise<void> = Promise.resolve()
let counter = 0

function loadMermaid(): Promise<Mermaid> {
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement('script')
    script.src = withBase('/vendor/mermaid.min.js')
    script.onload = () => (window.mermaid ? resolve(window.mermaid) : reject(new Error('mermaid did not load')))
    script.onerror = () => reject(new Error(`cannot load ${script.src}`))
    document.head.appendChild(script)
  })
  return loading
}

function scheme(): 'dark' | 'light' {
  return document.documentElement.classList.contains('dark') ? 'dark' : 'light'
}

async function drawAll(): Promise<void> {
  const wanted = scheme()
  const nodes = Array.from(document.querySelectorAll<HTMLElement>('.mermaid-diagram')).filter(
    (node) => node.dataset.rendered !== wanted,
  )
  if (nodes.length === 0) return
  const mermaid = await loadMermaid()
  await document.fonts.ready // labels are measured in the font they are drawn in
  mermaid.initialize({
    startOnLoad: false,
    securityLevel: 'strict',
    theme: wanted === 'dark' ? 'dark' : 'default',
    fontFamily: getComputedStyle(document.documentElement).getPropertyValue('--vp-font-family-base'),
  })
  for (const node of nodes) {
    try {
      const { svg } = await mermaid.render(`mermaid-diagram-${++counter}`, node.dataset.source ?? '')
      node.innerHTML = svg
      node.dataset.rendered = wanted
    } catch (error) {
      // Left as source text; the console error is what the site's browser test fails on.
      console.error(`mermaid: cannot draw a diagram on ${location.pathname}:`, error)
      node.dataset.rendered = 'error'
    }
  }
}

/** Draws every diagram on the page that is not drawn yet in the current colour scheme; calls never overlap. */
export function renderDiagrams(): Promise<void> {
  queue = queue.then(drawAll, drawAll)
  return queue
}

/** Redraws the diagrams when the reader switches between light and dark. */
export function rerenderOnColorSchemeChange(): void {
  let current = scheme()
  new MutationObserver(() => {
    if (scheme() !== current) {
      current = scheme()
      void renderDiagrams()
    }
  }).observe(document.documentElement, { attributes: true, attributeFilter: ['class'] })
}
