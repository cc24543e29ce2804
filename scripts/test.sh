#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole check: lint, format, types, and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # files and strictness from [tool.mypy] in pyproject.toml
.venv/bin/python -m pytest "$@"
