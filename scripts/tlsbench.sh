#!/usr/bin/env bash
# TLS benchmark: pingap-go against nginx as TLS-terminating reverse proxies,
# in one run, interleaved, on 127.0.0.1 only. The shared harness
# (../shared/bench) has no TLS scenario; this script reuses its topology and
# its CPU layout:
#
#   client (wrk/h2load) --TLS--> proxy under test --HTTP/1.1 keep-alive--> origin
#        CPU 0                     CPU 1, 1 worker                         CPU 0
#
# origin = nginx, 1 worker, two ports, fixed 512 B body (the shared
# templates/origin.nginx.conf). Proxies: nginx (worker_processes 1, TLS 1.2 +
# 1.3, ssl_session_cache shared, http2, upstream keepalive) and pingap-go
# (built from this checkout, threads = 1, GOMAXPROCS = 1). Both use the same
# self-signed ECDSA P-256 certificate, generated per run.
#
# Scenarios (each round runs every scenario on every target, order rotated):
#   handshake  wrk -t1 -c$HS_CONNS -H 'Connection: close': every request is a
#              new TCP connection and a FULL TLS handshake. Both wrk and h2load
#              resume sessions on reconnect (OpenSSL keeps the session in the
#              SSL object, h2load caches it), so the client runs with
#              LD_PRELOAD=noresume.so, a 20-line shim that drops the session
#              before each handshake. A probe checks it: nginx logs
#              $ssl_session_reused for a 1 s burst (must be all "."), and the
#              kernel's TCP PassiveOpens per request is reported (must be ~1).
#   h1         wrk -t1 -c$CONNS https, keep-alive (HTTP/1.1 over TLS).
#   h2         h2load -t1 -c$H2_CONNS -m$H2_STREAMS https (h2 via ALPN).
# For every run: req/s, latency, proxy CPU us/req from /proc/PID/stat
# (utime+stime of the proxy's process tree, as the shared harness does), and
# other% (CPU nobody in the benchmark accounts for: other jobs on the box).
#
# usage: scripts/tlsbench.sh [--duration S] [--rounds N] [--conns N]
#          [--hs-conns N] [--h2-conns N] [--h2-streams M] [--warmup S]
#          [--base-port P] [--out DIR] [--pingap BIN] [--retries N]
#          [--scenarios handshake,h1,h2] [--wait-quiet S] [--noise-budget S] [--pingap-max-idle N] [--quick]
# Upstream idle pools: --pool N (default 1024) idle connections for the whole
# upstream on both proxies (nginx keepalive N; pingap max_idle_conns N/2 per
# addr), above the h2 scenario's 640 requests in flight. With the shared
# harness's sizes (nginx 256, pingap 128 per addr) both proxies close and
# reopen upstream connections under h2 load: ~25k TIME_WAITs of a 28k-port
# ephemeral range after 2 x 5 s (see docs/tls-performance.md).
# --pingap-max-idle overrides pingap's max_idle_conns alone.
# --settle S (default 6) pauses after every load run: when a load generator
# stops, pingap counts the upstream dials of the abandoned requests as connect
# failures and marks the addrs down for 5 s (see docs/tls-performance.md); a
# run started inside that window measures 502s.
# Before each run it waits up to --wait-quiet s (total --noise-budget s) for
# the machine to be idle; a run disturbed anyway is repeated --retries times,
# then kept and flagged (other% column).
# Output: table on stdout and RUNDIR/report.txt; RUNDIR/raw.jsonl (one record
# per run), RUNDIR/results.tsv, RUNDIR/logs/.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="${BENCH_DIR:-$ROOT/../shared/bench}"
[ -r "$BENCH/templates/origin.nginx.conf" ] || BENCH=/work/shared/bench

DURATION=8; ROUNDS=2; CONNS=64; HS_CONNS=32; H2_CONNS=64; H2_STREAMS=10; WARMUP=2
BASE_PORT=19440; OUT=""; PINGAP_BIN=""; BODY_SIZE=512; NOISE_LIMIT=10; RETRIES=1
WAIT_QUIET=30; NOISE_BUDGET=400; POOL=1024; PINGAP_MAX_IDLE=""; SETTLE=6
SCENARIOS=(handshake h1 h2)
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2;;
    --rounds) ROUNDS="$2"; shift 2;;
    --conns) CONNS="$2"; shift 2;;
    --hs-conns) HS_CONNS="$2"; shift 2;;
    --h2-conns) H2_CONNS="$2"; shift 2;;
    --h2-streams) H2_STREAMS="$2"; shift 2;;
    --warmup) WARMUP="$2"; shift 2;;
    --base-port) BASE_PORT="$2"; shift 2;;
    --out) OUT="$2"; shift 2;;
    --pingap) PINGAP_BIN="$2"; shift 2;;
    --retries) RETRIES="$2"; shift 2;;
    --pingap-max-idle) PINGAP_MAX_IDLE="$2"; shift 2;;
    --pool) POOL="$2"; shift 2;;
    --settle) SETTLE="$2"; shift 2;;
    --scenarios) IFS=, read -r -a SCENARIOS <<<"$2"; shift 2;;
    --wait-quiet) WAIT_QUIET="$2"; shift 2;;
    --noise-budget) NOISE_BUDGET="$2"; shift 2;;
    --quick) DURATION=3; ROUNDS=1; WARMUP=1; shift;;
    -h|--help) sed -n '2,50p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in nginx wrk h2load openssl taskset curl gcc awk ss; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool (run $BENCH/setup.sh; gcc builds the no-resumption shim)"
done
GO=$(command -v go || echo /usr/local/go/bin/go)
[ "$(nproc)" -ge 2 ] || die "needs >= 2 CPUs (client+origin on CPU 0, proxy on CPU 1)"

PIN_LOAD=(taskset -c 0); PIN_ORIGIN=(taskset -c 0); PIN_PROXY=(taskset -c 1)
ORIGIN1_PORT=$((BASE_PORT + 1)); ORIGIN2_PORT=$((BASE_PORT + 2))
declare -A TPORT PID NEG
TPORT[nginx]=$((BASE_PORT + 10)); TPORT[pingap]=$((BASE_PORT + 11))
PROBE_PORT=$((BASE_PORT + 12))
TARGETS=(nginx pingap)

for p in "$ORIGIN1_PORT" "$ORIGIN2_PORT" "${TPORT[nginx]}" "${TPORT[pingap]}" "$PROBE_PORT"; do
  [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || die "port $p busy (use --base-port)"
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n); [ "$NOFILE" = unlimited ] && NOFILE=1048576

[ -n "$OUT" ] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/tlsbench.XXXXXX") || die "mktemp failed"
mkdir -p "$OUT/logs" "$OUT/tmp" || die "cannot create $OUT"
chmod 755 "$OUT" "$OUT/tmp"
OUT="$(cd "$OUT" && pwd)"
RAW="$OUT/raw.jsonl"; : >"$RAW"
log "results in $OUT"

STARTED=()
cleanup() {
  local p i alive
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 50); do
    alive=0
    for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${STARTED[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port pid
  local i
  for i in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
tree_pids() { # root -> root + descendants
  ps -e -o pid=,ppid= | awk -v r="$1" '
    { pp[$1] = $2 }
    END { keep[r] = 1; ch = 1
          while (ch) { ch = 0; for (p in pp) if (!(p in keep) && (pp[p] in keep)) { keep[p] = 1; ch = 1 } }
          for (p in keep) if (p in pp) print p }'
}
TICKS=0
cpu_ticks() { # pids... -> TICKS (utime+stime of all threads)
  local total=0 p line rest
  for p in "$@"; do
    { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
    rest=${line##*) }
    local -a f=($rest)
    total=$((total + f[11] + f[12]))
  done
  TICKS=$total
}
HZ=$(getconf CLK_TCK)
BUSY0=0; TOT0=0
sys_snapshot() { # all-CPU busy/total jiffies
  local name user nice sys idle iow irq sirq steal rest
  read -r name user nice sys idle iow irq sirq steal rest </proc/stat
  BUSY0=$((user + nice + sys + irq + sirq + steal)); TOT0=$((BUSY0 + idle + iow))
}
sys_busy_cores() { # busy cores (e.g. 1.73) since sys_snapshot
  local name user nice sys idle iow irq sirq steal rest b t
  read -r name user nice sys idle iow irq sirq steal rest </proc/stat
  b=$((user + nice + sys + irq + sirq + steal - BUSY0)); t=$((user + nice + sys + idle + iow + irq + sirq + steal - TOT0))
  awk -v b="$b" -v t="$t" -v n="$(nproc)" 'BEGIN { printf "%.3f", (t > 0 ? n * b / t : 0) }'
}
# wait_quiet: bounded wait until the whole machine is < 10% busy for 0.5 s
# (other jobs on a shared box skew whichever target runs beside them).
wait_quiet() {
  [ "$WAIT_QUIET" -gt 0 ] && [ "$NOISE_BUDGET" -gt 0 ] || return 0
  local start=$SECONDS w=$WAIT_QUIET said=0 b
  [ "$w" -gt "$NOISE_BUDGET" ] && w=$NOISE_BUDGET
  while :; do
    sys_snapshot; sleep 0.5; b=$(sys_busy_cores)
    awk -v b="$b" -v n="$(nproc)" 'BEGIN { exit !(b < 0.1 * n) }' && break
    if [ $((SECONDS - start)) -ge "$w" ]; then log "  machine still busy (${b} cores); measuring anyway"; break; fi
    [ $said = 1 ] || { log "  machine busy (${b} cores in use); waiting up to ${w}s"; said=1; }
  done
  NOISE_BUDGET=$((NOISE_BUDGET - (SECONDS - start)))
}
passive_opens() { awk '/^Tcp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }

# ---------------------------------------------------------------- build + files
if [ -z "$PINGAP_BIN" ]; then
  log "building pingap-go ($ROOT/cmd/pingap)"
  ( cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath -o "$OUT/pingap" ./cmd/pingap ) >"$OUT/logs/build.log" 2>&1 \
    || { cat "$OUT/logs/build.log" >&2; die "go build failed"; }
  PINGAP_BIN="$OUT/pingap"
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$OUT/logs/openssl.log" 2>&1 || die "openssl req failed"

# LD_PRELOAD shim: no session resumption in the load generator (see header).
cat >"$OUT/noresume.c" <<'EOF'
/* Forces a full TLS handshake on every connection of an OpenSSL client:
 * before a handshake starts, drop any session the SSL object holds (wrk keeps
 * it across SSL_clear; h2load sets a cached one). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_in_before(const SSL *s);
int SSL_set_session(SSL *s, SSL_SESSION *sess);
static int (*real_connect)(SSL *);
static int (*real_do_handshake)(SSL *);
int SSL_connect(SSL *s) {
  if (!real_connect) real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
  if (SSL_in_before(s)) SSL_set_session(s, NULL);
  return real_connect(s);
}
int SSL_do_handshake(SSL *s) {
  if (!real_do_handshake) real_do_handshake = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_do_handshake");
  if (SSL_in_before(s)) SSL_set_session(s, NULL);
  return real_do_handshake(s);
}
EOF
gcc -shared -fPIC -O2 -o "$OUT/noresume.so" "$OUT/noresume.c" -ldl -lssl >"$OUT/logs/shim.log" 2>&1 \
  || { cat "$OUT/logs/shim.log" >&2; die "building the no-resumption shim failed (needs libssl)"; }
NORESUME=(env LD_PRELOAD="$OUT/noresume.so")

BODY=$(head -c "$BODY_SIZE" /dev/zero | tr '\0' 'x')
sed -e "s|@@RUNDIR@@|$OUT|g" -e "s|@@ORIGIN1_PORT@@|$ORIGIN1_PORT|g" -e "s|@@ORIGIN2_PORT@@|$ORIGIN2_PORT|g" \
    -e "s|@@ORIGIN_WORKERS@@|1|g" -e "s|@@NOFILE@@|$NOFILE|g" -e "s|@@WORKER_CONNS@@|$((NOFILE - 100))|g" \
    -e "s|@@BODY@@|$BODY|g" "$BENCH/templates/origin.nginx.conf" >"$OUT/origin.conf"

cat >"$OUT/nginx.conf" <<EOF
# nginx as a TLS-terminating reverse proxy: the shared harness's proxy tuning
# (upstream keepalive, HTTP/1.1 upstream, cleared Connection) plus TLS 1.2/1.3,
# a shared session cache and http2.
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $OUT/nginx.pid;
error_log $OUT/nginx.error.log warn;
daemon off;
events { worker_connections $((NOFILE - 100)); }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $OUT/tmp/nginx-body;
    proxy_temp_path       $OUT/tmp/nginx-proxy;
    fastcgi_temp_path     $OUT/tmp/nginx-fastcgi;
    uwsgi_temp_path       $OUT/tmp/nginx-uwsgi;
    scgi_temp_path        $OUT/tmp/nginx-scgi;
    ssl_certificate     $OUT/cert.pem;
    ssl_certificate_key $OUT/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;
    log_format probe '\$ssl_session_reused \$ssl_protocol \$ssl_cipher \$ssl_curve';

    upstream origin {
        server 127.0.0.1:$ORIGIN1_PORT;
        server 127.0.0.1:$ORIGIN2_PORT;
        keepalive $POOL;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${TPORT[nginx]} ssl http2 backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    # probe: same TLS settings, logs whether each request's session was
    # resumed ("r") or fully negotiated ("."). Not measured.
    server {
        listen 127.0.0.1:$PROBE_PORT ssl http2;
        access_log $OUT/probe.log probe;
        location / { return 200 "probe"; }
    }
}
EOF

cat >"$OUT/pingap.toml" <<EOF
# pingap-go: the shared harness's topology (templates/pingap.toml) as a TLS server.
# No access log: the nginx anchor writes none either (as in the shared harness).
[basic]
name = "tlsbench"
threads = 1
access_log = false

[upstreams.origin]
addrs = ["127.0.0.1:$ORIGIN1_PORT", "127.0.0.1:$ORIGIN2_PORT"]
algorithm = "round_robin"
max_idle_conns = ${PINGAP_MAX_IDLE:-$((POOL / 2))}

[locations.all]
upstream = "origin"
path = "/"
path_type = "prefix"

[servers.bench]
addr = "127.0.0.1:${TPORT[pingap]}"
locations = ["all"]
tls_cert = "$OUT/cert.pem"
tls_key = "$OUT/key.pem"
EOF

# ---------------------------------------------------------------- start
"${PIN_ORIGIN[@]}" nginx -p "$OUT" -c "$OUT/origin.conf" -e "$OUT/origin.error.log" >"$OUT/logs/origin.out" 2>&1 &
PID[origin]=$!; STARTED+=("${PID[origin]}")
wait_port "$ORIGIN1_PORT" "${PID[origin]}" && wait_port "$ORIGIN2_PORT" "${PID[origin]}" || die "origin failed: $(tail -5 "$OUT/logs/origin.out")"

"${PIN_PROXY[@]}" nginx -p "$OUT" -c "$OUT/nginx.conf" -e "$OUT/nginx.error.log" >"$OUT/logs/nginx.out" 2>&1 &
PID[nginx]=$!; STARTED+=("${PID[nginx]}")
wait_port "${TPORT[nginx]}" "${PID[nginx]}" || die "nginx failed: $(tail -5 "$OUT/logs/nginx.out" "$OUT/nginx.error.log")"

GOMAXPROCS=1 "${PIN_PROXY[@]}" "$PINGAP_BIN" -config "$OUT/pingap.toml" >"$OUT/logs/pingap.out" 2>&1 &
PID[pingap]=$!; STARTED+=("${PID[pingap]}")
wait_port "${TPORT[pingap]}" "${PID[pingap]}" || die "pingap failed: $(tail -20 "$OUT/logs/pingap.out")"
sleep 0.3
mapfile -t ORIGIN_PIDS < <(tree_pids "${PID[origin]}")

# ---------------------------------------------------------------- sanity
BAD=0
for t in "${TARGETS[@]}"; do
  for v in --http1.1 --http2; do
    res=$(curl -sk -m 5 "$v" -o "$OUT/tmp/body" -w '%{http_code} %{size_download} %{http_version}' "https://127.0.0.1:${TPORT[$t]}/")
    read -r code size ver <<<"$res"
    want=1.1; [ "$v" = --http2 ] && want=2
    if [ "$code" != 200 ] || [ "$size" != "$BODY_SIZE" ] || [ "$ver" != "$want" ]; then
      log "SANITY FAIL $t $v: status=$code size=$size http=$ver (want 200 / $BODY_SIZE / $want)"; BAD=1
    fi
  done
  # what a default OpenSSL client negotiates (protocol, cipher, key exchange group)
  NEG[$t]=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:${TPORT[$t]}" -servername localhost -brief 2>&1 \
    | awk -F': ' '/^Protocol version/ {p=$2} /^Ciphersuite/ {c=$2} /Temp Key|group/ {g=$2} END {print p" "c" "g}')
  log "$t negotiates: ${NEG[$t]}"
done
[ $BAD = 0 ] || die "sanity check failed"

# probe: does the handshake load generator really do full handshakes?
"${PIN_LOAD[@]}" "${NORESUME[@]}" wrk -t1 -c8 -d1s -H 'Connection: close' "https://127.0.0.1:$PROBE_PORT/" >"$OUT/logs/probe-wrk.log" 2>&1
PROBE_FULL=$(awk '$1 == "." { n++ } END { print n + 0 }' "$OUT/probe.log" 2>/dev/null)
PROBE_RESUMED=$(awk '$1 == "r" { n++ } END { print n + 0 }' "$OUT/probe.log" 2>/dev/null)
log "probe: $PROBE_FULL full handshakes, $PROBE_RESUMED resumed (must be 0)"
[ "$PROBE_RESUMED" = 0 ] && [ "$PROBE_FULL" -gt 0 ] || log "WARNING: the handshake scenario is not all full handshakes"

{
  printf '{"date":"%s","duration":%s,"rounds":%s,"conns":%s,"hs_conns":%s,"h2_conns":%s,"h2_streams":%s,' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DURATION" "$ROUNDS" "$CONNS" "$HS_CONNS" "$H2_CONNS" "$H2_STREAMS"
  printf '"nginx":"%s","openssl":"%s","wrk":"%s","h2load":"%s","go":"%s","kernel":"%s",' \
    "$(nginx -v 2>&1 | sed 's/.*\///')" "$(openssl version | awk '{print $2}')" "$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
    "$(h2load --version | awk '{print $2}')" "$("$GO" version | awk '{print $3}')" "$(uname -r)"
  printf '"pool":%s,"pingap_max_idle_conns":%s,' "$POOL" "${PINGAP_MAX_IDLE:-$((POOL / 2))}"
  printf '"pingap_commit":"%s","negotiated_nginx":"%s","negotiated_pingap":"%s","probe_full":%s,"probe_resumed":%s}\n' \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo -dirty)" \
    "${NEG[nginx]}" "${NEG[pingap]}" "$PROBE_FULL" "$PROBE_RESUMED"
} >"$OUT/meta.json"

# ---------------------------------------------------------------- load
# load_cmd SCENARIO TARGET SECONDS -> the command line in LOADCMD
load_cmd() {
  local url="https://127.0.0.1:${TPORT[$2]}/"
  case "$1" in
    handshake) LOADCMD=("${PIN_LOAD[@]}" "${NORESUME[@]}" wrk --timeout 5s --latency -t1 -c"$HS_CONNS" -d"$3s" -H 'Connection: close' "$url");;
    h1) LOADCMD=("${PIN_LOAD[@]}" wrk --timeout 5s --latency -t1 -c"$CONNS" -d"$3s" "$url");;
    h2) LOADCMD=("${PIN_LOAD[@]}" h2load -t1 -c"$H2_CONNS" -m"$H2_STREAMS" -D"$3" "$url");;
  esac
}

# parse_log SCENARIO LOGFILE -> "requests errors rps p50_ms p99_ms"
parse_log() {
  case "$1" in
    h2) awk '
      /^finished in/ { gsub(",", ""); rps = $4 }
      /^requests:/ { gsub(",", ""); done = $8; # succeeded
      fail = $10; err = $12; to = $14 }
      /^status codes:/ { gsub(",", ""); non2 = $5 + $7 + $9 }
      /^time for request:/ { mean = $6 }
      END { u = mean; ms = u + 0
            if (u ~ /us$/) ms = ms / 1000; else if (u ~ /ms$/) ms = ms; else if (u ~ /s$/) ms = ms * 1000
            printf "%d %d %.1f %.2f %s\n", done - non2, fail + err + to + non2, rps, ms, "-" }' "$2";;
    *) awk '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
      /requests in/ { req = $1 }
      /Requests\/sec:/ { rps = $2 }
      /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
      /Non-2xx or 3xx/ { non2 = $NF }
      $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
      END { printf "%d %d %.1f %.2f %.2f\n", req - non2, err + non2, rps, p50, p99 }' "$2";;
  esac
}

# measure SCENARIO ROUND TARGET: one run, appended to raw.jsonl; repeated
# (up to --retries) when other processes used more than 10% of a core.
measure() {
  local scen=$1 round=$2 t=$3 attempt
  for ((attempt = 1; ; attempt++)); do
    local logf="logs/$scen-r$round-$t.log" timef="$OUT/tmp/time"
    local -a pp; mapfile -t pp < <(tree_pids "${PID[$t]}")
    load_cmd "$scen" "$t" "$DURATION"
    wait_quiet
    local pt0 pt1 ot0 ot1 po0 po1 t0 t1
    cpu_ticks "${pp[@]}"; pt0=$TICKS; cpu_ticks "${ORIGIN_PIDS[@]}"; ot0=$TICKS
    po0=$(passive_opens); sys_snapshot; t0=$EPOCHREALTIME
    { TIMEFORMAT='%U %S'; time "${LOADCMD[@]}" >"$OUT/$logf" 2>&1; } 2>"$timef"
    t1=$EPOCHREALTIME; local busy; busy=$(sys_busy_cores)
    cpu_ticks "${pp[@]}"; pt1=$TICKS; cpu_ticks "${ORIGIN_PIDS[@]}"; ot1=$TICKS; po1=$(passive_opens)
    local lu ls; read -r lu ls <"$timef" 2>/dev/null || { lu=0; ls=0; }
    local req errs rps p50 p99; read -r req errs rps p50 p99 <<<"$(parse_log "$scen" "$OUT/$logf")"
    local alive=true; kill -0 "${PID[$t]}" 2>/dev/null || { alive=false; log "ERROR: $t died; see $OUT/logs/$t.out"; }
    local rec other
    rec=$(awk -v s="$scen" -v r="$round" -v t="$t" -v a="$attempt" -v lf="$logf" -v w0="$t0" -v w1="$t1" \
      -v pt=$((pt1 - pt0)) -v ot=$((ot1 - ot0)) -v hz="$HZ" -v lu="$lu" -v ls="$ls" -v busy="$busy" \
      -v req="$req" -v errs="$errs" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v po=$((po1 - po0)) -v alive="$alive" '
      BEGIN {
        wall = w1 - w0; pc = pt / hz; oc = ot / hz; lc = lu + ls
        other = 100 * (busy - (pc + oc + lc) / (wall > 0 ? wall : 1)); if (other < 0) other = 0
        us = (req > 0 ? pc * 1e6 / req : 0)
        printf "%d\t{\"scenario\":\"%s\",\"round\":%d,\"target\":\"%s\",\"attempt\":%d,\"log\":\"%s\",\"wall_s\":%.3f,", other, s, r, t, a, lf, wall
        printf "\"requests\":%d,\"errors\":%d,\"rps\":%.1f,\"p50_ms\":\"%s\",\"p99_ms\":\"%s\",", req, errs, rps, p50, p99
        printf "\"proxy_cpu_s\":%.2f,\"proxy_cores\":%.2f,\"proxy_cpu_us_per_req\":%.1f,\"load_cpu_s\":%.2f,\"origin_cpu_s\":%.2f,", pc, pc / wall, us, lc, oc
        printf "\"tcp_accepts_per_req\":%.3f,\"other_pct\":%d,\"proxy_alive\":%s}\n", (req > 0 ? po / req : 0), other, alive
      }')
    other=${rec%%$'\t'*}; rec=${rec#*$'\t'}
    if [ "$other" -le "$NOISE_LIMIT" ] || [ "$attempt" -gt "$RETRIES" ] || [ "$alive" = false ]; then
      [ "$other" -gt "$NOISE_LIMIT" ] && log "  still disturbed (other ${other}% of a core): kept, flagged"
      echo "$rec" >>"$RAW"
      log "  $scen $t: $rps req/s, proxy $(sed 's/.*"proxy_cpu_us_per_req":\([0-9.]*\).*/\1/' <<<"$rec") us/req, other ${other}%"
      return
    fi
    log "  disturbed (other ${other}% of a core); repeating"
    sleep "$SETTLE"
  done
}

rotate() { local r=$1; shift; local n=$# i; local -a a=("$@"); for ((i = 0; i < n; i++)); do echo "${a[$(( (i + r - 1) % n ))]}"; done; }

if [ "$WARMUP" -gt 0 ]; then
  for t in "${TARGETS[@]}"; do
    for s in "${SCENARIOS[@]}"; do
      log "warm-up $t $s ${WARMUP}s"
      load_cmd "$s" "$t" "$WARMUP"; "${LOADCMD[@]}" >/dev/null 2>&1
      sleep "$SETTLE"
    done
  done
fi

for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SCENARIOS[@]}"; do
    for t in $(rotate "$r" "${TARGETS[@]}"); do
      log "round $r/$ROUNDS $s: $t (${DURATION}s)"
      measure "$s" "$r" "$t"
      sleep "$SETTLE"
    done
  done
done

cleanup; STARTED=()

# ---------------------------------------------------------------- report
# Per scenario and target: mean over rounds (= median for 2 rounds) of req/s
# and proxy us/req; vs_nginx = median over rounds of the per-round ratio.
awk '
  function num(k,   m) { if (match($0, "\"" k "\":\"?[-0-9.]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:"?/, "", m); return m + 0 } return 0 }
  function str(k,   m) { if (match($0, "\"" k "\":\"[^\"]*\"")) { m = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", m); sub(/"$/, "", m); return m } return "" }
  function median(arr, n,   i, j, x) {
    for (i = 2; i <= n; i++) { x = arr[i]; for (j = i - 1; j >= 1 && arr[j] > x; j--) arr[j + 1] = arr[j]; arr[j + 1] = x }
    return (n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2)
  }
  {
    s = str("scenario"); t = str("target"); r = num("round"); k = s SUBSEP t
    rps[k, r] = num("rps"); us[k, r] = num("proxy_cpu_us_per_req"); rounds[s] = (r > rounds[s] ? r : rounds[s])
    sum_rps[k] += num("rps"); sum_us[k] += num("proxy_cpu_us_per_req"); sum_cores[k] += num("proxy_cores"); n[k]++
    errs[k] += num("errors"); acc[k] += num("tcp_accepts_per_req"); p99[k] = p99[k] (p99[k] == "" ? "" : "/") str("p99_ms")
    if (num("other_pct") > 10) noisy[k]++
    if (num("other_pct") > maxo[k]) maxo[k] = num("other_pct")
  }
  END {
    split("handshake h1 h2", S, " "); split("nginx pingap", T, " ")
    name["handshake"] = "full TLS handshakes (new conn per request)"; name["h1"] = "HTTP/1.1 keep-alive over TLS, wrk -c'"$CONNS"'"
    name["h2"] = "h2 over TLS, h2load -c'"$H2_CONNS"' -m'"$H2_STREAMS"'"
    printf "%-10s %-7s %10s %9s %12s %10s %8s %8s %6s %7s %s\n", "scenario", "target", "req/s", "vs_nginx", "us/req(CPU)", "cpu_vs_ng", "proxy%", "accepts", "errors", "other%", "p99 ms (per round)"
    printf "tsv\tscenario\ttarget\trps\tvs_nginx\tproxy_cpu_us_per_req\tcpu_per_req_vs_nginx\tproxy_core_pct\ttcp_accepts_per_req\terrors\tmax_other_pct\n" > "/dev/stderr"
    for (i = 1; i <= 3; i++) {
      s = S[i]; if (!(s in rounds)) continue
      for (j = 1; j <= 2; j++) {
        t = T[j]; k = s SUBSEP t; if (!n[k]) continue
        kn = s SUBSEP "nginx"; m = 0; m2 = 0
        for (r = 1; r <= rounds[s]; r++) if (((kn, r) in rps) && rps[kn, r] > 0 && ((k, r) in rps)) {
          m++; ra[m] = rps[k, r] / rps[kn, r]; if (us[kn, r] > 0) { m2++; ca[m2] = us[k, r] / us[kn, r] } }
        vr = (m ? median(ra, m) : 0); vc = (m2 ? median(ca, m2) : 0)
        printf "%-10s %-7s %10.0f %9.2f %12.1f %10.2f %7.0f%% %8.2f %6d %6d%% %s\n", s, t, sum_rps[k] / n[k], vr, sum_us[k] / n[k], vc, 100 * sum_cores[k] / n[k], acc[k] / n[k], errs[k], maxo[k], p99[k]
        printf "tsv\t%s\t%s\t%.1f\t%.3f\t%.1f\t%.3f\t%.0f\t%.3f\t%d\t%d\n", s, t, sum_rps[k] / n[k], vr, sum_us[k] / n[k], vc, 100 * sum_cores[k] / n[k], acc[k] / n[k], errs[k], maxo[k] > "/dev/stderr"
      }
    }
  }' "$RAW" >"$OUT/report.txt" 2>"$OUT/tmp/tsv"
sed -n 's/^tsv\t//p' "$OUT/tmp/tsv" >"$OUT/results.tsv"
{
  echo
  echo "rounds=$ROUNDS x ${DURATION}s; client+origin CPU 0, proxy CPU 1 (1 worker, GOMAXPROCS=1); body ${BODY_SIZE} B"
  echo "req/s = mean over rounds; vs_nginx = median of per-round ratios; us/req(CPU) = proxy utime+stime / requests (lower is better);"
  echo "proxy% = proxy CPU over the run (100% = its core saturated); accepts = TCP accepts per request (1.00 = new connection each);"
  echo "other% = max over rounds of CPU used by processes outside the benchmark (>10% = disturbed)."
  echo "negotiated: nginx ${NEG[nginx]} | pingap ${NEG[pingap]}"
  echo "handshake probe: $PROBE_FULL full, $PROBE_RESUMED resumed; upstream idle pool: nginx keepalive $POOL, pingap max_idle_conns ${PINGAP_MAX_IDLE:-$((POOL / 2))} per addr"
} >>"$OUT/report.txt"
cat "$OUT/report.txt"
log "results in $OUT"
