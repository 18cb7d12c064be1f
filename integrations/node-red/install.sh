#!/usr/bin/env bash
# Installs Node-RED 4.1 and the Dashboard 2.0 palette pinned in package.json /
# package-lock.json into integrations/node-red/node_modules (`npm ci`, from the npm cache
# when it holds them). Called by `make test`; safe to run again (skips when up to date).
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node-red install: node and npm are needed (scripts/install-deps.sh test installs them)" >&2
  exit 1
}
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "node-red install: Node $(node --version) is too old; Node-RED 4.1 needs Node >= 18.5" >&2
  exit 1
fi
stamp=node_modules/.edgebench-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp" && [ -x node_modules/.bin/node-red ]; then
  exit 0
fi
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
