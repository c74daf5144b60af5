#!/usr/bin/env bash
# The test command of the README and of CI. `scripts/test.sh` runs everything;
# `scripts/test.sh unit` only the Go tests of the modules, without the e2e scenarios.
#
# In `all` mode the e2e module runs beside the other phases: its scenarios
# spend most of their time waiting for what they assert (intervals,
# time_to_start, a 90 s budget window) with the machine's cores idle, so lint
# and the other modules' tests use them meanwhile. The scenarios wait for
# what they assert instead of assuming timing, and every module's tests were
# run ten times under an e2e run's load (docs/testing.md, "Flake hunt").
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
export PATH
mode=${1:-all}
# The modules of go.work but e2e.
mapfile -t modules < <(scripts/modules.sh | grep -vx e2e)

# Each phase's duration, printed at the end.
phases=()
phase_name="" phase_start=0
step() {
  phase_end
  printf '\n=== %s\n' "$*" >&2
  phase_name=$* phase_start=$SECONDS
}
phase_end() {
  [ -n "$phase_name" ] && phases+=("$(printf '%6ds  %s' $((SECONDS - phase_start)) "$phase_name")")
  phase_name=""
}

# The e2e module in the background (all mode), in a session of its own so
# that stopping it stops its test binaries and their systems too.
e2e_pid="" e2e_log="" e2e_start=0
e2e_stop() {
  [ -n "$e2e_pid" ] || return 0
  kill -TERM -- "-$e2e_pid" 2>/dev/null || true
  wait "$e2e_pid" 2>/dev/null || true
  printf '\n=== go test e2e stopped; its output:\n' >&2
  cat "$e2e_log" >&2
  e2e_pid=""
}
summary() {
  phase_end
  e2e_stop
  [ -n "$e2e_log" ] && rm -f "$e2e_log"
  printf '\n=== durations (total %ds; the e2e module ran beside the phases above it)\n' "$SECONDS" >&2
  printf '%s\n' "${phases[@]}" >&2
}
trap summary EXIT

# -race everywhere: the services are concurrent through and through.
gotest() { go test -race -count=1 -timeout 45m "$@"; }

step "local images"
scripts/build-fake-runner-image.sh

if [ "$mode" = all ]; then
  # The e2e packages run one at a time: they share the Docker engine, and
  # the scenarios start whole systems.
  e2e_log=$(mktemp)
  e2e_start=$SECONDS
  (cd e2e && exec setsid go test -race -count=1 -timeout 45m -p 1 ./...) >"$e2e_log" 2>&1 &
  e2e_pid=$!
  printf '=== go test e2e started in the background (its output comes at the end)\n' >&2

  step "generated code"
  scripts/proto-check.sh
  step "lint"
  scripts/lint.sh
  step "tidy"
  scripts/tidy-check.sh
fi

failed=()
for m in "${modules[@]}"; do
  step "go test $m"
  if ! (cd "$m" && gotest ./...); then
    failed+=("$m")
  fi
done

if [ "$mode" = all ]; then
  step "waiting for go test e2e"
  pid=$e2e_pid
  e2e_pid=""
  e2e_rc=0
  wait "$pid" || e2e_rc=$?
  phase_end
  phases+=("$(printf '%6ds  go test e2e (from its start)' $((SECONDS - e2e_start)))")
  printf '\n=== go test e2e\n' >&2
  cat "$e2e_log" >&2
  ((e2e_rc == 0)) || failed+=(e2e)
else
  step "go test e2e"
  # Everything of the e2e module but the scenarios (whole systems, minutes).
  mapfile -t pkgs < <(cd e2e && go list ./... | grep -v '/e2e/scenarios$')
  (cd e2e && gotest -p 1 "${pkgs[@]}") || failed+=(e2e)
fi

if ((${#failed[@]})); then
  echo "FAILED modules: ${failed[*]}" >&2
  exit 1
fi
echo "all tests passed" >&2
