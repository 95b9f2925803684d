#!/usr/bin/env bash
# Runs the shared side-by-side benchmark (nginx, HAProxy, Caddy and pingap-go
# under the same load, see /work/shared/bench/README.md) with a freshly built
# binary and prints its report. Extra arguments go to run.sh, e.g.
#   scripts/loadtest.sh --quick
#   scripts/loadtest.sh --h2 --candidate-h2
#   scripts/loadtest.sh --only nginx,candidate --scenarios throughput
# The candidate config is scripts/loadtest.toml (the harness topology, no
# access log, h2c on). BENCH_DIR overrides where the harness lives;
# LOADTEST_TEMPLATE another candidate template; LOADTEST_CMD and
# LOADTEST_NAME another candidate (scripts/floor.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${BENCH_DIR:-}"
if [ -z "$BENCH" ]; then
  for d in ../shared/bench ../../shared/bench /work/shared/bench; do
    if [ -x "$d/run.sh" ] || [ -f "$d/run.sh" ]; then BENCH="$d"; break; fi
  done
fi
if [ -z "$BENCH" ] || [ ! -f "$BENCH/run.sh" ]; then
  echo "loadtest: the shared harness (run.sh) was not found; set BENCH_DIR" >&2
  exit 2
fi
BENCH="$(cd "$BENCH" && pwd)"
TEMPLATE="${LOADTEST_TEMPLATE:-$PWD/scripts/loadtest.toml}"
# Always rebuild (a stale binary would measure old code), stripped like
# `make build`: symbols cost ~2 MB of resident file pages at idle.
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o pingap ./cmd/pingap
bash "$BENCH/setup.sh"
CMD="exec $PWD/pingap -config {CONFIG}"
exec bash "$BENCH/run.sh" --candidate "${LOADTEST_CMD:-$CMD}" \
  --candidate-name "${LOADTEST_NAME:-pingap-go}" \
  --candidate-template "$TEMPLATE" "$@"
