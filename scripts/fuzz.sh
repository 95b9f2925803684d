#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short time ($1, default 5s).
# A target that finds a failing input fails the run (the input is written to
# the package's testdata/fuzz, where plain `go test` replays it from then on).
# Go's fuzzing coordinator sometimes stops with "context deadline exceeded"
# on a loaded machine without having found anything; such a run is retried.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-5s}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    for try in 1 2 3; do
      echo "fuzz $pkg $f ($t)"
      if go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >"$log" 2>&1; then
        break
      fi
      if grep -q "Failing input written" "$log" || [ "$try" = 3 ]; then
        cat "$log"
        exit 1
      fi
      echo "fuzz $pkg $f: the fuzzing engine stopped without a failing input; retrying"
    done
  done
done
echo "fuzz: all targets passed"
