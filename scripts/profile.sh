#!/usr/bin/env bash
# Profiles pingap-go under wrk load and saves CPU, allocation, heap, block,
# mutex and goroutine profiles (see docs/performance.md).
#
#   scripts/profile.sh [OUT_DIR]       # default: profiles/<timestamp>
#
# Topology: the harness's (wrk -> pingap -> two nginx origins answering
# 512 B, keep-alive), with wrk and the origins pinned to CPU 0 and pingap to
# CPU 1 (GOMAXPROCS=1) when the machine has 2+ CPUs. pprof is served only
# because PINGAP_PPROF is set (a hidden, profiling-only switch); it also
# turns on block and mutex profiling.
#
# Environment: DURATION (load seconds, default 15), CONNS (wrk connections,
# default 64), PORT_BASE (default 28080), PINGAP_ARGS (extra flags),
# PINGAP_ACCESS_LOG=1 to profile with the access log on (to a file).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${1:-profiles/$(date -u +%Y%m%dT%H%M%SZ)}"
DURATION="${DURATION:-15}"
CONNS="${CONNS:-64}"
PORT_BASE="${PORT_BASE:-28080}"
ORIGIN1=$((PORT_BASE + 1)); ORIGIN2=$((PORT_BASE + 2)); PORT=$((PORT_BASE + 10)); PPROF=$((PORT_BASE + 60))
mkdir -p "$OUT/tmp"
OUT="$(cd "$OUT" && pwd)"

for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "profile: $tool is missing (bash /work/shared/bench/setup.sh installs wrk and nginx)" >&2; exit 2; }
done

PIN_LOAD=(); PIN_PROXY=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_LOAD=(taskset -c 0); PIN_PROXY=(taskset -c 1)
fi

CGO_ENABLED=0 go build -trimpath -o "$OUT/pingap" ./cmd/pingap

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

BODY=$(head -c 512 /dev/zero | tr '\0' x)
cat >"$OUT/origin.conf" <<CONF
worker_processes 1;
pid $OUT/origin.pid;
error_log $OUT/origin.error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $OUT/tmp/b; proxy_temp_path $OUT/tmp/p; fastcgi_temp_path $OUT/tmp/f;
  uwsgi_temp_path $OUT/tmp/u; scgi_temp_path $OUT/tmp/s;
  server { listen 127.0.0.1:$ORIGIN1 backlog=4096; location / { return 200 "$BODY"; } }
  server { listen 127.0.0.1:$ORIGIN2 backlog=4096; location / { return 200 "$BODY"; } }
}
CONF
ACCESS_LOG=false
[ "${PINGAP_ACCESS_LOG:-0}" = 1 ] && ACCESS_LOG="\"$OUT/access.log\""
cat >"$OUT/pingap.toml" <<CONF
[basic]
name = "profile"
access_log = $ACCESS_LOG
[upstreams.origin]
addrs = ["127.0.0.1:$ORIGIN1", "127.0.0.1:$ORIGIN2"]
[locations.all]
upstream = "origin"
path = "/"
[servers.profile]
addr = "127.0.0.1:$PORT"
locations = ["all"]
CONF

"${PIN_LOAD[@]}" nginx -p "$OUT" -c "$OUT/origin.conf" -e "$OUT/origin.error.log" >"$OUT/origin.out" 2>&1 &
PIDS+=($!)
PINGAP_PPROF="127.0.0.1:$PPROF" "${PIN_PROXY[@]}" "$OUT/pingap" -config "$OUT/pingap.toml" ${PINGAP_ARGS:-} >"$OUT/pingap.log" 2>&1 &
PIDS+=($!)
PINGAP_PID=$!

for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && curl -fsS -o /dev/null "http://127.0.0.1:$PPROF/debug/pprof/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" || { echo "profile: pingap did not answer; see $OUT/pingap.log" >&2; exit 1; }

PP="http://127.0.0.1:$PPROF/debug/pprof"
"${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$PORT/" >/dev/null   # warm-up
CPU0=$(awk '{print $14+$15}' "/proc/$PINGAP_PID/stat")
"${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/" >"$OUT/wrk.txt" &
WRK=$!
sleep 1
W=$((DURATION - 3))
# allocs, block and mutex are cumulative: snapshots at both ends of the
# window, compared with pprof -base below.
for p in allocs block mutex; do curl -fsS -o "$OUT/$p.start.pprof" "$PP/$p"; done
curl -fsS -o "$OUT/cpu.pprof" "$PP/profile?seconds=$W"
for p in allocs block mutex; do curl -fsS -o "$OUT/$p.pprof" "$PP/$p"; done
curl -fsS -o "$OUT/heap.pprof" "$PP/heap"
curl -fsS -o "$OUT/goroutine.txt" "$PP/goroutine?debug=1"
wait "$WRK"
CPU1=$(awk '{print $14+$15}' "/proc/$PINGAP_PID/stat")
TICKS=$(getconf CLK_TCK)
REQS=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
RPS=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt")
US=$(awk -v c0="$CPU0" -v c1="$CPU1" -v t="$TICKS" -v n="$REQS" 'BEGIN { if (n > 0) printf "%.1f", (c1 - c0) / t * 1e6 / n; else print "?" }')

{
  echo "pingap-go profile, $(date -u +%FT%TZ), $DURATION s of wrk -c$CONNS, $RPS req/s, $US us CPU per request (incl. warm-up-free window)"
  echo
  echo "== CPU (top 30, cumulative sort in cpu-cum.txt)"
  go tool pprof -top -nodecount=30 "$OUT/pingap" "$OUT/cpu.pprof" 2>/dev/null
  go tool pprof -top -cum -nodecount=60 "$OUT/pingap" "$OUT/cpu.pprof" >"$OUT/cpu-cum.txt" 2>/dev/null
  echo
  echo "== allocations during the window (objects)"
  go tool pprof -top -nodecount=20 -sample_index=alloc_objects -base "$OUT/allocs.start.pprof" "$OUT/pingap" "$OUT/allocs.pprof" 2>/dev/null
  echo
  echo "== block (top 15; the pprof handlers' own waits are left out)"
  go tool pprof -top -nodecount=15 -ignore "cmd/pingap" -base "$OUT/block.start.pprof" "$OUT/pingap" "$OUT/block.pprof" 2>/dev/null
  echo
  echo "== mutex (top 15)"
  go tool pprof -top -nodecount=15 -base "$OUT/mutex.start.pprof" "$OUT/pingap" "$OUT/mutex.pprof" 2>/dev/null
} >"$OUT/summary.txt"
echo "requests per second: $RPS; CPU per request: $US us"
echo "profiles in $OUT: cpu.pprof allocs.pprof heap.pprof block.pprof mutex.pprof goroutine.txt summary.txt"
echo "  go tool pprof -http=: $OUT/pingap $OUT/cpu.pprof"
