#!/usr/bin/env bash
# Fresh machine -> every gate and test: install, ruff, mypy, import-linter, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff format --check src tests bench
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest --durations=25 "$@"
