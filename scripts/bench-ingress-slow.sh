#!/usr/bin/env bash
# Memory of the ingress under slow-body connections (docs/benchmarks.md,
# "Ingress: slow bodies"): for each N in SLOW_CONNS, starts a fresh ingress
# (with a redis-server of its own, loopback, free ports), opens N connections
# that announce a 1 MiB body and send one byte (e2e/cmd/slowbody), and prints
# the ingress's resident memory before, while they are held, and its peak,
# until every connection is answered or closed.
#
# Environment: SLOW_CONNS (default "100 300"), INGRESS_BIN (default: build
# ./services/ingress/cmd/ingress; set it to measure another build), BENCH_DIR
# keeps the binaries and logs (default: a temp dir, removed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
SLOW_CONNS=${SLOW_CONNS:-100 300}
dir=${BENCH_DIR:-$(mktemp -d -t bench-slow.XXXXXX)}
mkdir -p "$dir"

pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -z ${BENCH_DIR:-} ]]; then
		rm -rf "$dir"
	fi
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"

echo "== machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB"
ingress=${INGRESS_BIN:-$dir/ingress}
if [[ -z ${INGRESS_BIN:-} ]]; then
	(cd "$root" && CGO_ENABLED=0 go build -o "$ingress" ./services/ingress/cmd/ingress)
fi
(cd "$root" && CGO_ENABLED=0 go build -o "$dir/slowbody" ./e2e/cmd/slowbody)

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
	--daemonize no --protected-mode no --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)
wait_for redis-server redis-cli -p "$redis_port" ping

export RM_GITHUB_WEBHOOK_SECRET=bench-slow-$RANDOM$RANDOM
for n in $SLOW_CONNS; do
	port=$(free_port)
	cat >"$dir/config.yaml" <<YAML
name: bench
redis:
  url: redis://127.0.0.1:$redis_port/0
ingress:
  listen: 127.0.0.1:$port
YAML
	# A fresh process per N, so that VmHWM is the peak of this N alone.
	RM_GITHUB_TOKEN=bench-unused "$ingress" --config "$dir/config.yaml" 2>"$dir/ingress-$n.log" &
	pid=$!
	pids+=("$pid")
	wait_for ingress curl -fsS "http://127.0.0.1:$port/readyz"
	echo "== N=$n slow connections"
	"$dir/slowbody" -url "http://127.0.0.1:$port/webhook" -pid "$pid" -conns "$n" -deadline 30s
	kill "$pid"
	wait "$pid" 2>/dev/null || true
done
