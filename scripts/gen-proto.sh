#!/usr/bin/env bash
# Regenerates the Go code of proto/ into libs/gen. Needs protoc (Debian's
# protobuf-compiler); protoc-gen-go is pinned as a tool in libs/go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd libs && go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go)
rm -rf libs/gen/runnermanager
mapfile -t protos < <(find proto -name '*.proto' | sort)
PATH="$bin:$PATH" protoc -I proto -I /usr/include \
  --go_out=libs/gen --go_opt=paths=source_relative \
  "${protos[@]}"
