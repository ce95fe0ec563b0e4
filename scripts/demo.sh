#!/usr/bin/env bash
# Set everything up, then run the broker end to end on this machine (`aibroker demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/aibroker demo "$@"
