#!/usr/bin/env bash
# Installs what the docs site needs: its npm packages (VitePress, mermaid, playwright-core, from package-lock.json)
# and Debian's chromium, which the site's browser test drives. Quiet, and safe to run again: it installs only what
# is missing or out of date. Without Node.js it says so and stops; the docs tests then skip on a laptop (and fail
# under CI=true, which must have everything).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup-docs: Node.js 18+ with npm not found; the docs site tests will skip" >&2
  exit 0
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "setup-docs: Node.js $(node --version) is too old for VitePress; install 18 or newer" >&2
  exit 0
fi

# npm ci wipes node_modules and reinstalls (tens of seconds), so run it only when the lockfile changed since the
# last install, as recorded by a stamp inside node_modules.
stamp=node_modules/.deploy-mcp-docs.lock-sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ] || [ ! -x node_modules/.bin/vitepress ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$wanted" >"$stamp"
fi

# Debian's chromium: playwright-core drives it (no browser download is needed or possible).
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=skip; fi
    if [ "$SUDO" != skip ]; then
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
      echo "setup-docs: cannot install chromium (not root, no sudo); the docs browser test will skip" >&2
    fi
  else
    echo "setup-docs: no apt-get; install Chromium at /usr/bin/chromium for the docs browser test" >&2
  fi
fi
