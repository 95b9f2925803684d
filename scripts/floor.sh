#!/usr/bin/env bash
# The floor (docs/performance.md): nginx against pingap-go, against the
# least a Go keep-alive proxy can do per request with a goroutine per
# connection, and against the same with an epoll event loop (scripts/floor),
# in three runs of the shared harness's throughput scenario. Prints each
# run's proxy CPU per request as a ratio to nginx's in the same run.
# Extra arguments go to run.sh (default: --duration 5 --rounds 3).
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--duration 5 --rounds 3)
OUT="$(mktemp -d /tmp/pingap-floor.XXXXXX)"
go build -trimpath -o "$OUT/floor" ./scripts/floor
for target in pingap-go floor-goroutine floor-epoll; do
  cmd=""
  case "$target" in
    floor-*) cmd="exec $OUT/floor -mode ${target#floor-} -listen 127.0.0.1:{PORT} -upstreams {ORIGIN1},{ORIGIN2}";;
  esac
  LOADTEST_CMD="$cmd" LOADTEST_NAME="$target" bash scripts/loadtest.sh \
    --only nginx,candidate --scenarios throughput --out "$OUT/$target" "${ARGS[@]}" >"$OUT/$target.log" 2>&1 \
    || { tail -20 "$OUT/$target.log" >&2; exit 1; }
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
print("%-16s %12s %10s %14s" % ("candidate", "us/req", "nginx", "cpu_vs_nginx"))
for t in ("pingap-go", "floor-goroutine", "floor-epoll"):
    rows = [json.loads(l) for l in open(os.path.join(out, t, "results.jsonl"))]
    c = next(r for r in rows if r["key"] == "candidate")
    n = next(r for r in rows if r["key"] == "nginx")
    print("%-16s %12.2f %10.2f %14.2f" % (t, c["proxy_cpu_us_per_req"], n["proxy_cpu_us_per_req"], c["cpu_per_req_vs_nginx"]))
print("runs:", out)
PY
