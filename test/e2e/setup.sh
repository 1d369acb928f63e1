#!/usr/bin/env bash
# Installs what the real-VS-Code test layers need: Debian chromium, ripgrep, libkrb5-dev, and
# code-server + playwright-core in test/e2e/node_modules. Idempotent: quick when already done.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v rg >/dev/null || need_apt+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v curl >/dev/null || need_apt+=(curl)
command -v setsid >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "e2e setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } >"$log" 2>&1; then
    cat "$log"; exit 1
  fi
  rm -f "$log"
fi

stamp=node_modules/.e2e-installed
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ -x node_modules/.bin/code-server ]; then
  echo "e2e setup: already installed"
  exit 0
fi

# @vscode/ripgrep's postinstall downloads from GitHub unless its cache already holds the archive:
# hand it Debian's rg in the archive it looks for.
export TMPDIR="${TMPDIR:-/tmp}"
rg_cache="$TMPDIR/vscode-ripgrep-cache-1.15.11"
rg_archive="$rg_cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
if [ ! -f "$rg_archive" ]; then
  mkdir -p "$rg_cache"
  work=$(mktemp -d)
  cp "$(command -v rg)" "$work/rg"
  tar -czf "$rg_archive" -C "$work" rg
  rm -rf "$work"
fi

# code-server's postinstall refuses root without unsafe_perm; node-pty's runs `npx node-gyp`.
export npm_config_unsafe_perm=true npm_config_yes=true
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
if [ -f package-lock.json ]; then npm ci; else npm install; fi
touch "$stamp"
echo "e2e setup: done"
