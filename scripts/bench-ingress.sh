#!/usr/bin/env bash
# Benchmark of the ingress on this machine (docs/benchmarks.md, "Ingress").
#
# Builds the ingress and e2e/cmd/loadgen, starts a redis-server of its own on
# a free loopback port and the ingress in front of it, then runs
#   (a) maximum throughput with 64 concurrent clients, and
#   (b) a fixed 5,000 requests/s,
# checks that every accepted delivery is in {P}:events, and stops everything.
#
# Environment: MAX_COUNT, MAX_DURATION, RATE, RATE_DURATION, CONCURRENCY tune
# the runs; BENCH_DIR keeps the binaries, config and logs (default: a temp dir,
# removed at the end unless KEEP=1).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CONCURRENCY=${CONCURRENCY:-64}
MAX_COUNT=${MAX_COUNT:-200000}
MAX_DURATION=${MAX_DURATION:-20s}
RATE=${RATE:-5000}
RATE_DURATION=${RATE_DURATION:-15s}
dir=${BENCH_DIR:-$(mktemp -d -t bench-ingress.XXXXXX)}
mkdir -p "$dir"

pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -z ${BENCH_DIR:-} && ${KEEP:-0} != 1 ]]; then
		rm -rf "$dir"
	fi
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"

echo "== machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== go: $(go version | cut -d' ' -f3), redis: $(redis-server --version | awk '{print $3}')"
echo "== building into $dir"
(cd "$root" && CGO_ENABLED=0 go build -o "$dir/ingress" ./services/ingress/cmd/ingress)
(cd "$root" && CGO_ENABLED=0 go build -o "$dir/loadgen" ./e2e/cmd/loadgen)

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
	--daemonize no --protected-mode no --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)
wait_for redis-server redis-cli -p "$redis_port" ping

ingress_port=$(free_port)
cat >"$dir/config.yaml" <<EOF
name: bench
redis:
  url: redis://127.0.0.1:$redis_port/0
ingress:
  listen: 127.0.0.1:$ingress_port
EOF
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export RM_GITHUB_WEBHOOK_SECRET=$secret
# The shared configuration check wants GitHub credentials; the ingress never uses them.
RM_GITHUB_TOKEN=bench-unused "$dir/ingress" --config "$dir/config.yaml" 2>"$dir/ingress.log" &
pids+=($!)
wait_for ingress curl -fsS "http://127.0.0.1:$ingress_port/readyz"

ingress_pid=${pids[1]}
redis_pid=${pids[0]}
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run_load LABEL LOADGEN-ARGS...: runs loadgen and prints the CPU that the
# ingress and Redis spent per request, which the contention of a shared
# machine does not change (unlike the throughput).
run_load() {
	local label=$1
	shift
	local i0 r0 out sent
	i0=$(cpu_ticks "$ingress_pid")
	r0=$(cpu_ticks "$redis_pid")
	out=$("$dir/loadgen" "$@") || { echo "$out"; return 1; }
	echo "$out"
	sent=$(awk '/^sent/{print $2}' <<<"$out")
	accepted_total=$((accepted_total + $(awk '/^accepted/{print $2}' <<<"$out")))
	awk -v i="$(($(cpu_ticks "$ingress_pid") - i0))" -v r="$(($(cpu_ticks "$redis_pid") - r0))" -v n="$sent" -v t="$tck" \
		'BEGIN { printf "server     ingress %.2fs CPU (%.0fµs per request), redis %.2fs CPU (%.0fµs per request)\n", i/t, i/t*1e6/n, r/t, r/t*1e6/n }'
	echo "loadavg    $(cut -d' ' -f1-3 /proc/loadavg) ($label)"
}

accepted_total=0
url="http://127.0.0.1:$ingress_port/webhook"
echo
echo "== (a) maximum throughput, concurrency $CONCURRENCY, at most $MAX_COUNT requests or $MAX_DURATION"
run_load max -url "$url" -concurrency "$CONCURRENCY" -count "$MAX_COUNT" -duration "$MAX_DURATION"
echo
echo "== (b) fixed rate $RATE/s for $RATE_DURATION"
run_load rate -url "$url" -concurrency "$CONCURRENCY" -rate "$RATE" -duration "$RATE_DURATION" -count 10000000

echo
published=$(redis-cli -p "$redis_port" xlen '{bench}:events')
guards=$(redis-cli -p "$redis_port" eval "return #redis.call('keys', '{bench}:delivery:*')" 0)
echo "== {bench}:events holds $published entries (trimmed with MAXLEN ~), $guards delivery guards recorded"
echo "== ingress: $(grep -c '"outcome":"published"' "$dir/ingress.log") published log lines, $(grep -c '"level":"ERROR"' "$dir/ingress.log" || true) errors"
# Every delivery got its own id, so each accepted one left exactly one guard.
if [[ $guards != "$accepted_total" ]]; then
	echo "bench-ingress: $accepted_total deliveries accepted but $guards recorded" >&2
	exit 1
fi
echo "== every accepted delivery ($accepted_total) is recorded"
bodies=$(redis-cli -p "$redis_port" eval "return #redis.call('keys', '{bench}:body:*')" 0)
# loadgen varies every body: each accepted delivery also left one body guard.
if [[ $bodies != "$accepted_total" ]]; then
	echo "bench-ingress: $accepted_total deliveries accepted but $bodies body guards recorded" >&2
	exit 1
fi
