#!/usr/bin/env bash
# Installs the Debian packages the test suite talks to: Prosody + its
# resolver (lua-unbound, which the federation test points at a loopback DNS) and
# community modules (federation, component and benchmark peer),
# python3-slixmpp (a second real XMPP client), Chromium (browser tests),
# openssl (certificates), PostgreSQL and Redis (storage backend and cluster
# tests), pebble (ACME test server), coturn (TURN credentials test),
# biboumi + ngircd (a real XEP-0114 component and the IRC server behind it),
# go-sendxmpp (HTTP upload client), systemd (systemd-analyze checks
# contrib/jabberfly.service), fail2ban (its fail2ban-regex checks the
# sample filter against our log lines) and ejabberd (the bench's second peer). Idempotent: does nothing when
# everything is present. Needs root (CI runs as root).
#
# No daemon is started by the install: a policy-rc.d that denies every
# service start is in place while apt runs, so nothing needs stopping after
# (tests start their own instances on loopback and stop only their own PIDs).
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in prosody prosody-modules lua-unbound chromium openssl postgresql redis-server pebble coturn biboumi ngircd go-sendxmpp systemd fail2ban ejabberd; do
  have_pkg "$pkg" || need+=("$pkg")
done
/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || need+=(python3-slixmpp)
if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "the tests need these Debian packages: ${need[*]}" >&2
  echo "run 'sudo bash scripts/install-test-deps.sh' once, then npm test again" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
restore_policy() {
  if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# written by jabberfly scripts/install-test-deps.sh while apt runs\nexit 101\n' > "$policy"
chmod 0755 "$policy"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
