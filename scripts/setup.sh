#!/usr/bin/env bash
# Sets up a fresh machine for deploy-mcp: a virtualenv with the package and its test tools, and the external
# components the test suite drives for real. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

# Debian packages the tests use as real components. Installed only where we may (root or sudo) and only when
# missing; on a laptop without them the component tests skip with a reason (under CI=true they fail instead).
APT_PACKAGES=(prometheus docker-registry postgresql)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# kubectl, the reference client the Kubernetes emulator is checked against: Debian's when none is installed
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=skip; fi
  if [ "$SUDO" != skip ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: cannot install ${missing[*]} (not root, no sudo); their tests will skip" >&2
  fi
fi

# The MCP Inspector CLI, a third-party MCP client the tests drive; cached so tests do not download it.
if command -v npm >/dev/null; then
  if [ ! -x .tools/node_modules/.bin/mcp-inspector ]; then
    mkdir -p .tools
    npm install --silent --no-audit --no-fund --prefix .tools @modelcontextprotocol/inspector@0.15 >/dev/null
  fi
else
  echo "setup: npm not found; the MCP Inspector test will skip" >&2
fi
# The docs site: npm packages (VitePress, playwright-core) and Debian's chromium for the browser test.
./scripts/setup-docs.sh
echo "setup: done (.venv ready)"
