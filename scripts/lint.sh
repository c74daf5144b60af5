#!/usr/bin/env bash
# gofmt, go vet and staticcheck over every module of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
export PATH
mapfile -t modules < <(scripts/modules.sh)

unformatted=$(gofmt -l "${modules[@]}")
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
for m in "${modules[@]}"; do
  echo "lint $m" >&2
  (cd "$m" && go vet ./... && staticcheck ./...)
done
echo "shellcheck scripts" >&2
shellcheck scripts/*.sh .ci/run
echo "lint: ok" >&2
