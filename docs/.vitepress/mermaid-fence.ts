// ```mermaid fences become a placeholder holding the diagram's source; theme/mermaid.ts draws it in the browser.
// The source stays visible as text until then, so a reader without JavaScript still sees what the diagram says.
import type MarkdownIt from 'markdown-it'

export function mermaidFences(md: MarkdownIt): void {
  const fence = md.renderer.rules.fence!
  md.renderer.rules.fence = (tokens, index, options, env, self) => {
    const token = tokens[index]
    if (token.info.trim() !== 'mermaid') return fence(tokens, index, options, env, self)
    const source = md.utils.escapeHtml(token.content)
    return `<div v-pre class="mermaid-diagram" data-source="${source}"><pre class="mermaid-source">${source}</pre></div>\n`
  }
}
