#!/usr/bin/env bash
# install-tls-test-deps.sh installs what the TLS/ACME tests need: Pebble,
# Let's Encrypt's small RFC 8555 test CA (Debian package "pebble"), which
# internal/certs starts on loopback for its ACME end-to-end tests. Those
# tests FAIL (they never skip) when pebble is not on PATH.
#
# Idempotent: nothing happens when pebble is already installed. Once
# scripts/install-test-deps.sh is on main, add "pebble:pebble" to its DEPS
# list and this script can go.
set -euo pipefail

if command -v pebble >/dev/null 2>&1; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-tls-test-deps: pebble is missing and apt-get is not available; install Pebble by hand" >&2
	exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends pebble >/dev/null 2>&1; then
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends pebble
fi
echo "install-tls-test-deps: installed pebble"
