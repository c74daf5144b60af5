#!/usr/bin/env bash
# The test command of the README and of CI. `scripts/test.sh` runs everything;
# `scripts/test.sh unit` only the Go tests of the modules, without the e2e scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
export PATH
mode=${1:-all}
# The modules of go.work; e2e last, it takes longest.
mapfile -t modules < <(scripts/modules.sh | grep -vx e2e; echo e2e)

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
summary() {
  phase_end
  printf '\n=== durations (total %ds)\n' "$SECONDS" >&2
  printf '%s\n' "${phases[@]}" >&2
}
trap summary EXIT

if [ "$mode" = all ]; then
  step "generated code"
  scripts/proto-check.sh
  step "lint"
  scripts/lint.sh
  step "tidy"
  scripts/tidy-check.sh
fi

step "local images"
scripts/build-fake-runner-image.sh

failed=()
for m in "${modules[@]}"; do
  step "go test $m"
  # -race everywhere: the services are concurrent through and through.
  # The e2e packages run one at a time: they share the Docker engine and the
  # machine's two cores, and the scenarios start whole systems.
  flags=()
  [ "$m" = e2e ] && flags=(-p 1)
  pkgs=(./...)
  if [ "$mode" = unit ] && [ "$m" = e2e ]; then
    # Everything of the e2e module but the scenarios (whole systems, minutes).
    mapfile -t pkgs < <(cd "$m" && go list ./... | grep -v '/e2e/scenarios$')
  fi
  if ! (cd "$m" && go test -race -count=1 -timeout 45m "${flags[@]}" "${pkgs[@]}"); then
    failed+=("$m")
  fi
done
if ((${#failed[@]})); then
  echo "FAILED modules: ${failed[*]}" >&2
  exit 1
fi
echo "all tests passed" >&2
