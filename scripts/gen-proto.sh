#!/usr/bin/env bash
# Regenerates the Go code of proto/ into libs/gen. Needs protoc (Debian's
# protobuf-compiler); protoc-gen-go is pinned as a tool in libs/go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd libs && go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go)
[ -f /usr/include/google/protobuf/timestamp.proto ] ||
  { echo "protoc's well-known types missing: apt-get install -y libprotobuf-dev" >&2; exit 1; }
mapfile -t protos < <(find proto -name '*.proto' | sort)
# Generated aside, then swapped in: a failing protoc leaves libs/gen as it was.
mkdir "$bin/gen"
PATH="$bin:$PATH" protoc -I proto -I /usr/include \
  --go_out="$bin/gen" --go_opt=paths=source_relative \
  "${protos[@]}"
rm -rf libs/gen/runnermanager
mv "$bin/gen/runnermanager" libs/gen/runnermanager
