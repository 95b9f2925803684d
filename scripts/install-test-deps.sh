#!/usr/bin/env bash
# install-test-deps.sh installs the system packages the test suite needs
# (a real redis-server for the shared rate-limit tests, Pebble as the
# ACME test CA, etcd for the etcd configuration source). It is idempotent:
# a package whose command is already on PATH is skipped, and `apt-get
# update` runs only when something must actually be installed.
#
# To add a dependency, add one "command:package" entry to DEPS below.
set -euo pipefail

# command-on-PATH:debian-package
DEPS=(
	"redis-server:redis-server"
	"pebble:pebble"
	"etcd:etcd-server"
)

missing=()
for dep in "${DEPS[@]}"; do
	cmd="${dep%%:*}"
	pkg="${dep#*:}"
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing+=("$pkg")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the package lists first; update only when that fails.
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "install-test-deps: installed ${missing[*]}"
