#!/usr/bin/env bash
# Set everything up, then run ruff, mypy and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-compose --with-bench
echo "==> ruff";  .venv/bin/ruff check .
echo "==> mypy";  .venv/bin/mypy
echo "==> import contracts"; .venv/bin/lint-imports --no-cache
echo "==> pytest"
exec .venv/bin/pytest -q -p no:cacheprovider --durations=15 "$@"
