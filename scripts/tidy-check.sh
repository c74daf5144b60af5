#!/usr/bin/env bash
# `make tidy-check`: fails when a module of go.work is not tidy, does not build
# on its own, or when a module other than e2e depends on e2e or on a service.
#
# Each module is checked with GOWORK=off, as a consumer of that module alone
# would build it: its go.mod must list every requirement and the replace
# directives of the sibling modules it needs. `go mod tidy -diff` prints what
# tidy would change and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=github.com/runner-manager/runner-manager
mapfile -t modules < <(scripts/modules.sh) # go.work's list: before GOWORK=off
if ((${#modules[@]} == 0)); then
  echo "tidy-check: no module found in go.work" >&2
  exit 1
fi
export GOWORK=off GOFLAGS=-mod=mod

failed=()
for m in "${modules[@]}"; do
  echo "tidy-check $m" >&2
  if ! (cd "$m" && go mod tidy -diff); then
    echo "$m: not tidy: run (cd $m && GOWORK=off go mod tidy)" >&2
    failed+=("$m")
    continue
  fi
  # The dependencies point one way: libs <- services <- e2e. Only e2e may
  # import the services, and nothing imports e2e (its tests included).
  case $m in
    e2e) continue ;; # e2e may import every module
    services/*) forbidden="^$repo/(e2e|services/(?!${m#services/}(/| |$)))" ;;
    *) forbidden="^$repo/(e2e|services)/" ;;
  esac
  deps=$(cd "$m" && go list -deps -test -f '{{.ImportPath}}' ./...)
  if bad=$(grep -P "$forbidden" <<<"$deps"); then
    echo "$m depends on packages it must not import:" >&2
    echo "$bad" >&2
    failed+=("$m")
  fi
done
if ((${#failed[@]})); then
  echo "tidy-check FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "tidy-check: ok (${#modules[@]} modules)" >&2
