#!/usr/bin/env bash
# What the test suite needs beside Python packages: Node.js with axios (to run the hosted
# service's JavaScript example against Darkroom). Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v curl >/dev/null || need_apt+=(curl)
if ((${#need_apt[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if [ ! -d tests/js/node_modules/axios ]; then
  (cd tests/js && npm install --silent --no-audit --no-fund)
fi
