#!/usr/bin/env bash
# Runs the shared side-by-side benchmark (nginx, HAProxy, Caddy and pingap-go
# under the same load, see ../shared/bench/README.md) with the freshly built
# binary and prints its report. Extra arguments go to run.sh, e.g.
#   scripts/loadtest.sh --quick
#   scripts/loadtest.sh --h2 --candidate-h2
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${BENCH_DIR:-../shared/bench}"
[ -x pingap ] || make build
bash "$BENCH/setup.sh"
exec bash "$BENCH/run.sh" --candidate "exec $PWD/pingap -config {CONFIG}" --candidate-name pingap-go "$@"
