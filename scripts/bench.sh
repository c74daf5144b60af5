#!/usr/bin/env bash
# `make bench`: measures what users feel, on this machine, and writes the
# figures to docs/benchmarks.md (the sections between
# <!-- bench:NAME:start --> and <!-- bench:NAME:end --> markers; everything
# else in the file, including other scripts' sections, is left as it is).
#
#   1. ingress throughput, latency and CPU per 1,000 webhooks (scripts/bench-ingress.sh)
#   2. dispatch of a burst of queued jobs, event → create command delays
#   3. the same with 1, 2 and 3 scheduler replicas
#   4. GitHub API calls per job, by route
#   4b. the same with a broken group (every create fails for good) beside the healthy one
#   5. Redis memory per runner and per pending job, resident memory of the services
#   6. ingress resident memory under slow-body connections (scripts/bench-ingress-slow.sh)
#   + benchmarks (with a CPU profile) of the scheduler's queued-job decision
#
# Everything runs on loopback with processes of its own (redis-server on free
# ports); nothing is part of `make test`. Expects `make build` to have run
# (make bench does it). Environment:
#   ONLY="ingress slow dispatch github broken profile"  runs a subset
#   JOBS=10000 DISPATCH_GROUPS=4 REPLICAS=1,2,3 PACED_JOBS=2000 PACED_RATE=200 MEMORY_JOBS=10000  (dispatch)
#   GH_JOBS=1000 GH_MAX_RUNNERS=200 GH_JOB_SECONDS=5 GH_HEALTH_INTERVAL=10s            (GitHub calls)
#   BROKEN_JOBS=300 BROKEN_MAX_RUNNERS=50 BROKEN_GROUP_MAX=10 BROKEN_DURATION=120s      (broken group)
#   BENCH_DIR  keeps the logs and profiles there (default: a temporary directory, removed)
#   DOC        the file to update (default docs/benchmarks.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$root/bin
doc=${DOC:-$root/docs/benchmarks.md}
only=${ONLY:-ingress slow dispatch github broken profile}
work=${BENCH_DIR:-$(mktemp -d -t bench.XXXXXX)}
mkdir -p "$work"
if [[ -z ${BENCH_DIR:-} ]]; then
	trap 'rm -rf "$work"' EXIT
fi

wants() { [[ " $only " == *" $1 "* ]]; }
log() { echo "bench: $*" >&2; }

# splice NAME FILE: replaces the block NAME of $doc with FILE's content, or
# appends the block at the end of $doc when it is not there yet.
splice() {
	local name=$1 file=$2 start="<!-- bench:$1:start -->" end="<!-- bench:$1:end -->"
	[[ -f $doc ]] || printf '# Benchmarks\n' >"$doc"
	if grep -qxF "$start" "$doc" && grep -qxF "$end" "$doc"; then
		awk -v s="$start" -v e="$end" -v f="$file" '
			$0 == s { print; while ((getline line < f) > 0) print line; skip = 1; next }
			$0 == e { skip = 0 }
			!skip { print }' "$doc" >"$doc.tmp"
	else
		{ cat "$doc"; printf '\n%s\n' "$start"; cat "$file"; printf '%s\n' "$end"; } >"$doc.tmp"
	fi
	mv "$doc.tmp" "$doc"
	log "updated the '$name' section of ${doc#"$root"/}"
}

machine="$(nproc) cores, $(awk '/^MemTotal:/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) of memory, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); Go $(go version | cut -d' ' -f3 | sed 's/^go//'), Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//')"
when=$(date -u '+%Y-%m-%d %H:%M UTC')
log "machine: $machine; load average $(cut -d' ' -f1-3 /proc/loadavg)"

log "building the load programs and provisioner-bench into bin/"
(cd e2e && CGO_ENABLED=0 go build -o "$bin/benchdispatch" ./cmd/benchdispatch)
(cd e2e && CGO_ENABLED=0 go build -o "$bin/benchjobs" ./cmd/benchjobs)
(cd services/provisioner && CGO_ENABLED=0 go build -o "$bin/provisioner-bench" ./cmd/provisioner-bench)
for b in scheduler ingress fakegithub loadgen; do
	[[ -x $bin/$b ]] || { echo "bench: $bin/$b is missing: run make build" >&2; exit 1; }
done

# --- 1. ingress --------------------------------------------------------------
if wants ingress; then
	if [[ -x scripts/bench-ingress.sh ]]; then
		log "figure 1: scripts/bench-ingress.sh"
		load0=$(cut -d' ' -f1-3 /proc/loadavg)
		scripts/bench-ingress.sh | tee "$work/ingress.out" >&2
		load1=$(cut -d' ' -f1-3 /proc/loadavg)
		# Two loadgen runs: (a) maximum throughput, (b) a fixed rate. Each
		# prints accepted, latency and the server's CPU per request.
		awk -v machine="$machine" -v when="$when" -v load0="$load0" -v load1="$load1" '
			/^== \(a\)/ { run = "maximum throughput (concurrency 64)" }
			/^== \(b\)/ { run = "fixed rate" }
			/^mode/ && run == "fixed rate" { sub(/^mode +rate /, ""); sub(/,.*/, ""); run = "fixed rate " $0 }
			/^accepted/ { acc[run] = $2; rate[run] = $3; gsub(/[()]/, "", rate[run]) }
			/^failed/ { failed[run] = $2 }
			/^latency/ { p50[run] = $3; p90[run] = $5; p99[run] = $7; mx[run] = $9 }
			/^server/ {
				# server     ingress 1.23s CPU (85µs per request), redis 0.30s CPU (20µs per request)
				split($0, a, "[(]"); split(a[2], i, "µs"); split(a[3], r, "µs")
				icpu[run] = i[1]; rcpu[run] = r[1]; order[++n] = run
			}
			END {
				printf "Measured %s on %s; load average %s before, %s after.\n\n", when, machine, load0, load1
				print "| run | accepted | accepted/s | p50 | p90 | p99 | max | failed | ingress CPU per 1,000 webhooks | Redis CPU per 1,000 webhooks |"
				print "|---|---|---|---|---|---|---|---|---|---|"
				for (k = 1; k <= n; k++) {
					x = order[k]
					printf "| %s | %s | **%s** | %s | %s | **%s** | %s | %s | **%s ms** | %s ms |\n", x, acc[x], rate[x], p50[x], p90[x], p99[x], mx[x], failed[x], icpu[x], rcpu[x]
				}
				print ""
				print "CPU per 1,000 webhooks is utime + stime of the ingress (and of redis-server) from /proc/<pid>/stat before and after each run, divided by the requests sent (scripts/bench-ingress.sh); loadgen runs on the same cores."
			}' "$work/ingress.out" >"$work/ingress.md"
		splice ingress-run "$work/ingress.md"
	else
		log "figure 1 skipped: scripts/bench-ingress.sh is missing"
	fi
fi

# --- 6. ingress memory under slow bodies ----------------------------------------
if wants slow; then
	log "figure 6: scripts/bench-ingress-slow.sh"
	SLOW_CONNS="100 300" INGRESS_BIN=$bin/ingress scripts/bench-ingress-slow.sh | tee "$work/slow.out" >&2
	awk -v machine="$machine" -v when="$when" '
		/^== N=/ { n = substr($2, 3) }
		/^rss_kib/ { before[n] = $3; held[n] = $5; peak[n] = $7; order[++k] = n }
		/^per_conn/ { pc_held[n] = $3; pc_peak[n] = $6 }
		/^answers/ { sub(/^answers +/, ""); answers[n] = $0 }
		END {
			printf "Measured %s on %s.\n\n", when, machine
			print "| held connections | RSS before | RSS while held | peak RSS (VmHWM) | per connection, held | per connection, peak | answers |"
			print "|---|---|---|---|---|---|---|"
			for (i = 1; i <= k; i++) {
				x = order[i]
				printf "| %s | %.1f MiB | %.1f MiB | **%.1f MiB** | %s KiB | **%s KiB** | %s |\n", x, before[x]/1024, held[x]/1024, peak[x]/1024, pc_held[x], pc_peak[x], answers[x]
			}
			print ""
			print "Each connection announces `Content-Length: 1048576` with a well-formed (wrong) `X-Hub-Signature-256` and sends one byte; a fresh ingress per row (default configuration), RSS from `/proc/<pid>/status`. Reproduce: `make build && ONLY=slow scripts/bench.sh`, or `scripts/bench-ingress-slow.sh` alone."
		}' "$work/slow.out" >"$work/slow.md"
	splice ingress-slow "$work/slow.md"
fi

# --- 2, 3, 5. dispatch, replicas, memory ---------------------------------------
if wants dispatch; then
	log "figures 2, 3 and 5: bin/benchdispatch"
	"$bin/benchdispatch" -bin "$bin" -dir "$work/dispatch" -md "$work/dispatch.md" \
		-jobs "${JOBS:-10000}" -groups "${DISPATCH_GROUPS:-4}" -replicas "${REPLICAS:-1,2,3}" \
		-paced-jobs "${PACED_JOBS:-2000}" -paced-rate "${PACED_RATE:-200}" -memory-jobs "${MEMORY_JOBS:-10000}" >&2
	{ echo "Measured $when; Go $(go version | cut -d' ' -f3 | sed 's/^go//'), Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//')."; echo; cat "$work/dispatch.md"; } >"$work/dispatch2.md"
	splice dispatch "$work/dispatch2.md"
fi

# --- 4. GitHub API calls per job ----------------------------------------------
if wants github; then
	log "figure 4: bin/benchjobs"
	"$bin/benchjobs" -bin "$bin" -dir "$work/github" -md "$work/github.md" \
		-jobs "${GH_JOBS:-1000}" -max-runners "${GH_MAX_RUNNERS:-200}" \
		-job-seconds "${GH_JOB_SECONDS:-5}" -health-interval "${GH_HEALTH_INTERVAL:-10s}" >&2
	{ echo "Measured $when."; echo; cat "$work/github.md"; } >"$work/github2.md"
	splice github "$work/github2.md"
fi

# --- 4b. a broken group beside a healthy one ----------------------------------
if wants broken; then
	log "figure 4b: bin/benchjobs with a broken group"
	"$bin/benchjobs" -bin "$bin" -dir "$work/broken" -md "$work/broken.md" \
		-jobs "${BROKEN_JOBS:-300}" -max-runners "${BROKEN_MAX_RUNNERS:-50}" -job-seconds 2 \
		-health-interval 10s -broken-max "${BROKEN_GROUP_MAX:-10}" -min-duration "${BROKEN_DURATION:-120s}" -timeout 10m >&2
	{ echo "Measured $when."; echo; cat "$work/broken.md"; } >"$work/broken2.md"
	splice broken "$work/broken2.md"
fi

# --- profile of the scheduler's decision --------------------------------------
if wants profile; then
	log "profile: go test -bench of services/scheduler/internal/state"
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	(cd services/scheduler && go test ./internal/state -run '^$' -bench 'Queued|Creates' -benchmem \
		-benchtime 3000x -count 1 -cpuprofile "$work/state-cpu.out" -o "$work/state.test") | tee "$work/state-bench.out" >&2
	{
		echo "Measured $when on $machine; load average $load0."
		echo
		echo '```'
		grep -E '^Benchmark' "$work/state-bench.out"
		echo '```'
		echo
		echo "CPU profile of the benchmark process (the scheduler's side: go-redis, protobuf, runner names), top 12 by cumulative time:"
		echo
		echo '```'
		go tool pprof -top -cum -nodecount=12 "$work/state.test" "$work/state-cpu.out" 2>/dev/null | sed -n '/^ *flat/,$p'
		echo '```'
	} >"$work/profile.md"
	splice profile "$work/profile.md"
fi
log "done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
