#!/usr/bin/env bash
# Installs what building, running and testing runner-manager needs on a fresh
# Debian machine: from Debian's packages redis-server, redis-sentinel (for the
# Sentinel test of libs/service), protoc (with its well-known types), the
# shell linter shellcheck and chromium (the status page's browser test,
# e2e/scenarios/statuspage_test.go); from the Go module proxy staticcheck.
# Idempotent; installs only what is missing.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-sentinel >/dev/null || need_apt+=(redis-sentinel)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v chromium >/dev/null || need_apt+=(chromium)
# protoc's well-known types (google/protobuf/timestamp.proto) are only
# recommended by protobuf-compiler, and recommends are not installed.
[ -f /usr/include/google/protobuf/timestamp.proto ] || need_apt+=(libprotobuf-dev)

if ((${#need_apt[@]})); then
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "missing: ${need_apt[*]}; install them with apt-get (needs root)" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing ${need_apt[*]} from Debian's packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian's package starts a system redis-server on 6379; the project never
# relies on it (tests and `make run` start their own on other ports).

command -v go >/dev/null || { echo "Go is missing: install Go 1.26 (https://go.dev/dl/)" >&2; exit 1; }
command -v docker >/dev/null || { echo "Docker is missing: the Docker backend and the e2e suite need a Docker Engine" >&2; exit 1; }

gobin=$(go env GOPATH)/bin
if ! command -v staticcheck >/dev/null && [ ! -x "$gobin/staticcheck" ]; then
  echo "installing staticcheck from the Go module proxy" >&2
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
