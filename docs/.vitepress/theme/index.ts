import type { Theme } from 'vitepress'
import { onContentUpdated } from 'vitepress'
import DefaultTheme from 'vitepress/theme'
import { h, onMounted } from 'vue'
import BuiltStatus from './BuiltStatus.vue'
import HeroCommands from './HeroCommands.vue'
import NotBuiltYet from './NotBuiltYet.vue'
import { renderDiagrams, rerenderOnColorSchemeChange } from './mermaid'
import './custom.css'

export default {
  extends: DefaultTheme,
  Layout: () => h(DefaultTheme.Layout, null, { 'home-hero-actions-after': () => h(HeroCommands) }),
  enhanceApp({ app }) {
    app.component('NotBuiltYet', NotBuiltYet)
    app.component('BuiltStatus', BuiltStatus)
  },
  setup() {
    onContentUpdated(() => void renderDiagrams())
    onMounted(() => rerenderOnColorSchemeChange())
  },
} satisfies Theme
