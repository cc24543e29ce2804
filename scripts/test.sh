#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole check: lint, format, and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
