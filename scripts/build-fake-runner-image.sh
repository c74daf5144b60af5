#!/usr/bin/env bash
# Builds the fake runner image (default runner-manager/fake-runner:dev) FROM
# scratch with the static e2e/cmd/fake-runner binary, from a context holding only
# that binary and deploy/images/fake-runner.Dockerfile. No registry is needed.
#   scripts/build-fake-runner-image.sh [IMAGE]      (or FAKE_RUNNER_IMAGE=...)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-${FAKE_RUNNER_IMAGE:-runner-manager/fake-runner:dev}}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd e2e && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o "$ctx/fake-runner" ./cmd/fake-runner)
cp deploy/images/fake-runner.Dockerfile "$ctx/Dockerfile"
docker build -q -t "$image" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
echo "$image"
