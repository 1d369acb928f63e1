#!/usr/bin/env bash
# The real third-party programs the team-cache and offline-install tests drive: Squid (the shared
# parent cache) and dpkg-dev (dpkg-scanpackages, for a local Debian-shaped repository).
# Idempotent. Debian's squid package starts its daemon on port 3128 when installed; a
# policy-rc.d that exits 101 stops that: the tests run their own Squid on a free loopback port.
set -euo pipefail
need=()
command -v squid >/dev/null || [ -x /usr/sbin/squid ] || need+=(squid)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-test-peers: need root to install ${need[*]} (the tests that use them are skipped)" >&2
  exit 0
fi
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
fi
trap '[ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
