#!/usr/bin/env bash
# Installs the Debian packages the test suite talks to: Prosody (federation
# and benchmark peer), python3-slixmpp (a second real XMPP client), Chromium
# (browser test of the web client) and openssl (certificates). Idempotent:
# does nothing when everything is present. Needs root (CI runs as root).
set -euo pipefail
need=()
command -v prosody >/dev/null 2>&1 || need+=(prosody)
/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || need+=(python3-slixmpp)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package may start a system Prosody on the standard ports; tests run
# their own instances, so stop it if it is running.
if command -v service >/dev/null 2>&1; then service prosody stop >/dev/null 2>&1 || true; fi
pkill -x prosody >/dev/null 2>&1 || true
echo "installed: ${need[*]}"
