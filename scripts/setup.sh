#!/usr/bin/env bash
# Set up a development machine: system packages (redis-server, optionally docker-compose)
# from apt when missing, and the project in .venv with its dev extras.
# Usage: scripts/setup.sh [--with-compose] [--with-bench]
set -euo pipefail
cd "$(dirname "$0")/.."

want_compose=0
extras="dev"
for arg in "$@"; do
  case "$arg" in
    --with-compose) want_compose=1 ;;
    --with-bench) extras="dev,bench" ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup.sh: need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_packages=()
command -v redis-server >/dev/null || apt_packages+=(redis-server)
if [ "$want_compose" -eq 1 ] && ! command -v docker-compose >/dev/null; then
  apt_packages+=(docker-compose)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "==> apt-get install ${apt_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${apt_packages[@]}" >/dev/null
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null; then python=$candidate; break; fi
  done
fi
"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup.sh: Python 3.11+ is required, found {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $python"
  if ! "$python" -m venv .venv 2>/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$python" -m venv .venv
  fi
fi
echo "==> installing ai-broker[$extras] into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
