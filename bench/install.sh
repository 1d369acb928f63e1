#!/usr/bin/env bash
# Installs the benchmark's peers and tools: Debian's nginx, squid, trafficserver, mitmproxy, wrk
# (and util-linux's taskset, openssl), plus http-proxy and mockttp into bench/node_modules.
# Idempotent: skips what is there.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v squid >/dev/null || need+=(squid)
command -v traffic_server >/dev/null || need+=(trafficserver)
command -v wrk >/dev/null || need+=(wrk)
command -v mitmdump >/dev/null || need+=(mitmproxy)
command -v openssl >/dev/null || need+=(openssl)
command -v taskset >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)

if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # Debian starts daemons on install (nginx on :80, squid on :3128...); a policy-rc.d that
  # exits 101 forbids it. Put one in place only for the install, and only if none exists.
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[ -n "$created_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d' EXIT
  echo "bench: installing ${need[*]} with apt-get" >&2
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -d node_modules/http-proxy ] || [ ! -d node_modules/mockttp ]; then
  echo "bench: installing http-proxy and mockttp into bench/node_modules" >&2
  # npm ci refuses the lockfile while mockttp's optional tls-impersonate@^0.2.1 has no published
  # version (npm 11: "Missing: tls-impersonate@ from lock file"); npm install skips it.
  if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund 2>/dev/null || npm install --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi
fi
