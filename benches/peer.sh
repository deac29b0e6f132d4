#!/usr/bin/env bash
# benches/peer.sh: rewind next to etcd, its nearest peer, in one run.
#
# What it measures
#   The same durable one-key-update workload against both servers over
#   HTTP/1.1 keep-alive on loopback, driven by wrk:
#   - rewind: one tenant, created first; every request is
#       PATCH /v1/tenants/bench/state  [{"op":"replace","path":"/key","value":"t1-000042"}]
#     acknowledged after the SQLite journal commit is fsynced (`rewind serve
#     --data DIR`, sync mode: the default).
#   - etcd (single member): every request is a put of one key through the
#     HTTP/JSON gateway, POST /v3/kv/put {"key":b64,"value":b64},
#     acknowledged after the raft WAL entry is fsynced and applied.
#   The value changes with every request (benches/peer/*.lua), so no write
#   is a no-op. For each connection count (1, 16, 64, 256), rewind then etcd:
#   a warm-up, then `wrk -t min(2,N) -c N -d DURATION --latency`. It prints
#   one table: req/s, p50 and p99 (ms) of both and the ratios rewind/etcd.
#
# What makes it fail (non-zero exit) instead of printing a figure
#   wrk reporting any non-2xx/3xx response or socket error (connect, read,
#   write, timeout), 0 requests/s, or the server's own write counter (rewind:
#   the tenant's revision; etcd: the key's version) advancing by fewer writes
#   than wrk counted responses, or by more than responses + connections.
#
# How to run it (as root, from anywhere; takes about
# 4 x 2 x (DURATION + WARMUP) s plus start-up, ~2 min by default)
#   benches/peer.sh                       # builds rewind first:
#       cargo build --release -p rewind-server --bin rewind
#   REWIND_BIN=target/release/rewind benches/peer.sh   # an already built binary
#   PEER_DURATION=30 PEER_WARMUP=5 PEER_CONNECTIONS="1 64" benches/peer.sh
#
# Environment
#   REWIND_BIN        rewind binary to run; unset: build it with cargo (above)
#   PEER_DURATION     seconds measured per run (default 10)
#   PEER_WARMUP       seconds of warm-up before each run, not measured
#                     (default 2; 0 skips it)
#   PEER_CONNECTIONS  connection counts (default "1 16 64 256")
#   PEER_DATA_ROOT    where the temporary data directories go (default
#                     $TMPDIR or /tmp). Put it on the disk you mean to
#                     measure: on tmpfs an fsync costs nothing.
#
# Requirements: curl, awk, and etcd + wrk. When `etcd` or `wrk` is missing it
# installs Debian's `etcd-server` / `wrk` with apt-get (running apt-get
# update once first), which needs root. Nothing else is downloaded. The
# servers listen on 127.0.0.1 only, on free ports, each with its own
# temporary data directory; both are stopped and the directories removed on
# exit, Ctrl-C or SIGTERM. etcd runs with its defaults apart from the
# addresses (no --unsafe-no-fsync; default --snapshot-count and
# --quota-backend-bytes; no auto-compaction, like rewind, which keeps its
# whole history). All three processes share the machine's cores.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LUA_DIR=$HERE/peer

DURATION=${PEER_DURATION:-10}
WARMUP=${PEER_WARMUP:-2}
CONNECTIONS=${PEER_CONNECTIONS:-1 16 64 256}
DATA_ROOT=${PEER_DATA_ROOT:-${TMPDIR:-/tmp}}
TENANT=bench
KEY=key
WRK_TIMEOUT=10s

log() { printf 'peer.sh: %s\n' "$*" >&2; }
die() {
	printf '\npeer.sh: FAIL: %s\n' "$*" >&2
	exit 1
}

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "PEER_DURATION must be a whole number of seconds > 0, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "PEER_WARMUP must be a whole number of seconds, not '$WARMUP'"
read -r -a CONNS <<<"$CONNECTIONS"
((${#CONNS[@]} > 0)) || die "PEER_CONNECTIONS is empty"
for c in "${CONNS[@]}"; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || die "PEER_CONNECTIONS: '$c' is not a connection count"
done
for f in rewind.lua etcd.lua; do
	[[ -r $LUA_DIR/$f ]] || die "missing $LUA_DIR/$f"
done
for tool in curl awk timeout; do
	command -v "$tool" >/dev/null || die "'$tool' is needed"
done

# --- Servers and cleanup -------------------------------------------------------

WORK=""
REWIND_PID=""
ETCD_PID=""

stop_pid() {
	local pid=$1 _
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$REWIND_PID"
	stop_pid "$ETCD_PID"
	wait 2>/dev/null || true
	if [[ -n $WORK && -d $WORK ]]; then
		rm -rf -- "$WORK"
	fi
	exit "$rc"
}
# On SIGTERM sent to this script alone, bash lets the current wrk run finish
# (at most PEER_WARMUP + PEER_DURATION s) before it stops; Ctrl-C stops wrk
# at once.
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# --- Tools ---------------------------------------------------------------------

install_missing() {
	local packages=()
	command -v etcd >/dev/null || packages+=(etcd-server)
	command -v wrk >/dev/null || packages+=(wrk)
	((${#packages[@]} > 0)) || return 0
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "installing ${packages[*]} needs root (apt-get)"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null || die "install ${packages[*]} first (no apt-get here)"
	log "installing ${packages[*]} with apt-get"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
	command -v etcd >/dev/null || die "etcd is still missing after installing etcd-server"
	command -v wrk >/dev/null || die "wrk is still missing after installing wrk"
}

build_rewind() {
	if [[ -n ${REWIND_BIN:-} ]]; then
		[[ -x $REWIND_BIN ]] || die "REWIND_BIN=$REWIND_BIN is not an executable file"
		REWIND_BIN=$(cd "$(dirname "$REWIND_BIN")" && pwd)/$(basename "$REWIND_BIN")
		return 0
	fi
	command -v cargo >/dev/null || die "cargo is needed to build rewind (or set REWIND_BIN)"
	log "building rewind: cargo build --release -p rewind-server --bin rewind"
	(cd "$ROOT" && cargo build --release -p rewind-server --bin rewind >&2)
	local target=${CARGO_TARGET_DIR:-target}
	[[ $target == /* ]] || target=$ROOT/$target
	REWIND_BIN=$target/release/rewind
	[[ -x $REWIND_BIN ]] || die "the build did not produce $REWIND_BIN"
}

# Sets PORT to a TCP port nothing uses on 127.0.0.1 (and not in $TAKEN).
# Not in a subshell, so that TAKEN keeps what it hands out.
TAKEN=" "
PORT=""
free_port() {
	local port _
	for _ in $(seq 200); do
		port=$((20000 + RANDOM % 40000))
		[[ $TAKEN == *" $port "* ]] && continue
		if command -v ss >/dev/null; then
			[[ -z $(ss -Htan "sport = :$port" 2>/dev/null) ]] || continue
		elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue
		fi
		TAKEN+="$port "
		PORT=$port
		return 0
	done
	die "found no free port"
}

# wait_until DESCRIPTION PID LOG COMMAND...: retries COMMAND for 30 s while
# PID lives.
wait_until() {
	local what=$1 pid=$2 logfile=$3 _
	shift 3
	for _ in $(seq 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$logfile" >&2 || true
			die "$what exited during start-up (log above)"
		fi
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	tail -n 30 "$logfile" >&2 || true
	die "$what did not become ready within 30 s (log above)"
}

# curl on loopback, bounded in time; fails on HTTP errors.
http() { curl -sS --fail --max-time 10 "$@"; }

REWIND_URL=""
start_rewind() {
	mkdir -p "$WORK/rewind"
	"$REWIND_BIN" serve --listen 127.0.0.1:0 --data "$WORK/rewind/data" \
		>"$WORK/rewind/stdout" 2>"$WORK/rewind/log" &
	REWIND_PID=$!
	# It prints "rewind listening on http://127.0.0.1:PORT" on stdout.
	wait_until "rewind" "$REWIND_PID" "$WORK/rewind/log" \
		grep -q '^rewind listening on http://127\.0\.0\.1:' "$WORK/rewind/stdout"
	REWIND_URL=$(sed -n 's|^rewind listening on \(http://127\.0\.0\.1:[0-9]*\).*|\1|p' "$WORK/rewind/stdout" | head -n 1)
	wait_until "rewind" "$REWIND_PID" "$WORK/rewind/log" http "$REWIND_URL/healthz"
	http -X PUT -H 'Content-Type: application/json' \
		--data "{\"state\":{\"$KEY\":\"t0-000000\"}}" \
		"$REWIND_URL/v1/tenants/$TENANT" >/dev/null ||
		die "could not create the tenant '$TENANT' on rewind"
}

ETCD_URL=""
ETCD_PREFIX=""
ETCD_FLAGS=()
start_etcd() {
	local client peer
	free_port
	client=$PORT
	free_port
	peer=$PORT
	ETCD_URL=http://127.0.0.1:$client
	mkdir -p "$WORK/etcd"
	ETCD_FLAGS=(
		--name peer-bench
		--data-dir "$WORK/etcd/data"
		--listen-client-urls "$ETCD_URL"
		--advertise-client-urls "$ETCD_URL"
		--listen-peer-urls "http://127.0.0.1:$peer"
		--initial-advertise-peer-urls "http://127.0.0.1:$peer"
		--initial-cluster "peer-bench=http://127.0.0.1:$peer"
		--initial-cluster-state new
		--initial-cluster-token peer-bench
	)
	# ETCD_* variables would configure etcd too: only the flags count here.
	local unset_env=() name
	while read -r name; do
		unset_env+=(-u "$name")
	done < <(compgen -e | grep '^ETCD_' || true)
	env "${unset_env[@]}" etcd "${ETCD_FLAGS[@]}" >"$WORK/etcd/log" 2>&1 &
	ETCD_PID=$!
	wait_until "etcd" "$ETCD_PID" "$WORK/etcd/log" http "$ETCD_URL/health"
	# The JSON gateway's prefix: /v3 from etcd 3.4, /v3beta in 3.3.
	local prefix
	for prefix in /v3 /v3beta /v3alpha; do
		if http -X POST -H 'Content-Type: application/json' \
			--data "{\"key\":\"$(b64 "$KEY")\",\"value\":\"$(b64 t0-000000)\"}" \
			"$ETCD_URL$prefix/kv/put" >/dev/null 2>&1; then
			ETCD_PREFIX=$prefix
			return 0
		fi
	done
	die "etcd's JSON gateway answers neither /v3/kv/put nor /v3beta/kv/put nor /v3alpha/kv/put"
}

b64() { printf '%s' "$1" | base64 | tr -d '\n'; }

# --- The servers' own write counters -------------------------------------------

# The tenant's revision: one per committed PATCH (from the ETag of its state).
rewind_writes() {
	local rev
	rev=$(http -D - -o /dev/null "$REWIND_URL/v1/tenants/$TENANT/state" |
		tr -d '\r' | awk -F'"' 'tolower($1) ~ /^etag: *$/ { print $2; exit }')
	[[ $rev =~ ^[0-9]+$ ]] || die "cannot read the revision of tenant '$TENANT' from rewind"
	echo "$rev"
}

# The key's version: one per put since the key was created.
etcd_writes() {
	local version
	version=$(http -X POST -H 'Content-Type: application/json' \
		--data "{\"key\":\"$(b64 "$KEY")\"}" "$ETCD_URL$ETCD_PREFIX/kv/range" |
		grep -Eo '"version": *"?[0-9]+' | grep -Eo '[0-9]+$' | head -n 1)
	[[ $version =~ ^[0-9]+$ ]] || die "cannot read the version of key '$KEY' from etcd"
	echo "$version"
}

# The counter once it stops moving: the requests wrk left in flight when it
# stopped (at most one per connection) have landed. At most 10 s.
settled() {
	local writes_fn=$1 last now _
	last=$($writes_fn)
	for _ in $(seq 50); do
		sleep 0.2
		now=$($writes_fn)
		[[ $now == "$last" ]] && break
		last=$now
	done
	echo "$last"
}

# --- wrk -----------------------------------------------------------------------

# Latency as wrk prints it (e.g. 812.00us, 1.25ms, 2.01s, 1.00m) -> ms.
to_ms() {
	awk -v t="$1" 'BEGIN {
		n = t + 0; u = t; sub(/^[0-9.]+/, "", u)
		if (u == "us") f = 0.001; else if (u == "ms") f = 1; else if (u == "s") f = 1000
		else if (u == "m") f = 60000; else if (u == "h") f = 3600000; else exit 1
		printf "%.3f", n * f
	}' || die "unknown latency '$1' in wrk's output"
}

# Checks wrk's output in $1 (of the run named $2); exits on any error.
check_wrk() {
	local out=$1 what=$2 bad
	if bad=$(grep -E 'Non-2xx or 3xx responses: *[0-9]+' "$out"); then
		cat "$out" >&2
		die "$what: wrk saw failing responses (${bad//  / })"
	fi
	if bad=$(grep -E 'Socket errors:' "$out"); then
		cat "$out" >&2
		die "$what: wrk saw socket errors (${bad//  / })"
	fi
	grep -q '^Requests/sec:' "$out" || {
		cat "$out" >&2
		die "$what: wrk printed no Requests/sec"
	}
}

# wrk_run NAME CONNS SECONDS OUT SCRIPT URL ARGS...
wrk_run() {
	local name=$1 conns=$2 seconds=$3 out=$4 script=$5 url=$6
	shift 6
	local threads=$((conns < 2 ? conns : 2)) status=0
	# In the background and waited for, so that a trapped Ctrl-C interrupts
	# the wait (wrk catches SIGINT and exits 0 with partial figures, which
	# bash would otherwise take for a normal end).
	timeout --signal=INT --kill-after=10 $((seconds + 30)) \
		wrk -t "$threads" -c "$conns" -d "${seconds}s" --timeout "$WRK_TIMEOUT" --latency \
		-s "$script" "$url" -- "$@" >"$out" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || status=$?
	WRK_PID=""
	if ((status != 0)); then
		cat "$out" >&2
		die "$name: wrk failed (exit status $status; its output is above)"
	fi
	check_wrk "$out" "$name, $conns connections"
}

# measure NAME CONNS WRITES_FN SCRIPT URL ARGS... -> "rps p50 p99" on stdout.
measure() {
	local name=$1 conns=$2 writes_fn=$3 script=$4 url=$5
	shift 5
	# This runs in a subshell, which does not inherit the traps: a Ctrl-C
	# that stops wrk must stop the script, not look like a failed run.
	WRK_PID=""
	trap 'stop_pid "$WRK_PID"; exit 130' INT
	trap 'stop_pid "$WRK_PID"; exit 143' TERM
	local out="$WORK/wrk-$name-$conns.txt"
	if ((WARMUP > 0)); then
		wrk_run "$name warm-up" "$conns" "$WARMUP" "$out.warmup" "$script" "$url" "$@"
	fi
	local before after
	before=$(settled "$writes_fn")
	wrk_run "$name" "$conns" "$DURATION" "$out" "$script" "$url" "$@"
	after=$(settled "$writes_fn")

	local requests rps p50 p99
	requests=$(awk '/ requests in / { print $1; exit }' "$out")
	rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
	p50=$(awk '$1 == "50%" { print $2; exit }' "$out")
	p99=$(awk '$1 == "99%" { print $2; exit }' "$out")
	if [[ ! $requests =~ ^[0-9]+$ || -z $rps || -z $p50 || -z $p99 ]]; then
		cat "$out" >&2
		die "$name, $conns connections: cannot parse wrk's output (above)"
	fi
	if ! awk -v r="$rps" 'BEGIN { exit !(r + 0 > 0) }' || ((requests == 0)); then
		cat "$out" >&2
		die "$name, $conns connections: 0 requests/s"
	fi
	local written=$((after - before))
	if ((written < requests || written > requests + conns)); then
		cat "$out" >&2
		die "$name, $conns connections: wrk counted $requests responses but the server recorded $written writes"
	fi
	log "$(printf '%-6s c=%-4d %10s req/s  p50 %9s  p99 %9s  (%d requests, %d writes recorded)' \
		"$name" "$conns" "$rps" "$p50" "$p99" "$requests" "$written")"
	local p50_ms p99_ms
	p50_ms=$(to_ms "$p50")
	p99_ms=$(to_ms "$p99")
	echo "$rps $p50_ms $p99_ms"
}

# --- Run -----------------------------------------------------------------------

install_missing
build_rewind

mkdir -p "$DATA_ROOT"
WORK=$(mktemp -d "$DATA_ROOT/rewind-peer.XXXXXX")
FS_TYPE=$(df -PT "$WORK" 2>/dev/null | awk 'NR == 2 { print $2 }')
if [[ $FS_TYPE == tmpfs || $FS_TYPE == ramfs ]]; then
	log "warning: $WORK is on $FS_TYPE, where fsync costs nothing; set PEER_DATA_ROOT to a disk"
fi
# wrk needs a descriptor per connection.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_rewind
start_etcd

revision_of() {
	local dir=$1 rev
	rev=$(git -C "$dir" rev-parse --short HEAD 2>/dev/null) || {
		echo "unknown"
		return 0
	}
	if [[ -n $(git -C "$dir" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
		rev+="+uncommitted changes"
	fi
	echo "$rev"
}

CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
ETCD_VERSION=$(etcd --version 2>/dev/null | awk '/^etcd Version:/ { print $3; exit }' || true)
WRK_VERSION=$(wrk -v 2>&1 | awk '/^wrk / { print $1 " " $2 " " $3; exit }' || true)
REWIND_VERSION=$("$REWIND_BIN" --version 2>/dev/null || true)

echo "rewind vs etcd: durable one-key updates over HTTP on loopback (benches/peer.sh)"
echo
echo "machine:  $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:   $(uname -sr); data on ${FS_TYPE:-?} ($WORK)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "rewind:   ${REWIND_VERSION:-?}, revision $(revision_of "$(dirname "$REWIND_BIN")"), $REWIND_BIN"
echo "          serve --listen 127.0.0.1:0 --data DIR (SQLite journal, sync mode: fsync per acknowledged batch)"
echo "etcd:     ${ETCD_VERSION:-?} ($(command -v etcd)), single member, gateway $ETCD_PREFIX/kv/put, defaults otherwise"
echo "wrk:      ${WRK_VERSION:-?}, -t min(2,N) -c N -d ${DURATION}s --timeout $WRK_TIMEOUT --latency, ${WARMUP}s warm-up per run"
echo "workload: rewind PATCH /v1/tenants/$TENANT/state [{op:replace,path:/$KEY}]; etcd PUT key '$KEY'; small, changing string values"
echo

declare -A RW ET
for c in "${CONNS[@]}"; do
	RW[$c]=$(measure rewind "$c" rewind_writes "$LUA_DIR/rewind.lua" "$REWIND_URL" "$TENANT" "$KEY")
	sleep 1
	ET[$c]=$(measure etcd "$c" etcd_writes "$LUA_DIR/etcd.lua" "$ETCD_URL" "$ETCD_PREFIX" "$KEY")
	sleep 1
done

echo
printf '| %5s | %12s | %10s | %10s | %12s | %10s | %10s | %14s | %14s |\n' \
	conns "rewind req/s" "rewind p50" "rewind p99" "etcd req/s" "etcd p50" "etcd p99" \
	"req/s rw/etcd" "p99 rw/etcd"
printf '| %5s | %12s | %10s | %10s | %12s | %10s | %10s | %14s | %14s |\n' \
	"----:" "-----------:" "---------:" "---------:" "-----------:" "---------:" "---------:" \
	"-------------:" "-------------:"
for c in "${CONNS[@]}"; do
	read -r r_rps r_p50 r_p99 <<<"${RW[$c]}"
	read -r e_rps e_p50 e_p99 <<<"${ET[$c]}"
	awk -v c="$c" -v rr="$r_rps" -v r50="$r_p50" -v r99="$r_p99" \
		-v er="$e_rps" -v e50="$e_p50" -v e99="$e_p99" 'BEGIN {
		printf "| %5d | %12.0f | %7.3f ms | %7.3f ms | %12.0f | %7.3f ms | %7.3f ms | %13.2fx | %13.2fx |\n",
			c, rr, r50, r99, er, e50, e99, rr / er, (e99 > 0 ? r99 / e99 : 0)
	}'
done
echo
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "ratios:   req/s rw/etcd > 1 means rewind serves more; p99 rw/etcd < 1 means rewind's tail is shorter"
