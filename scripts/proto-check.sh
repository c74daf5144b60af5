#!/usr/bin/env bash
# Fails when libs/gen differs from what proto/ generates.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a libs/gen "$tmp/before"
scripts/gen-proto.sh
if ! diff -r "$tmp/before" libs/gen >/dev/null; then
  diff -r "$tmp/before" libs/gen | head -20 >&2 || true
  rm -rf libs/gen && cp -a "$tmp/before" libs/gen
  echo "libs/gen is stale: run 'make proto' and commit the result" >&2
  exit 1
fi
echo "proto: generated code is up to date" >&2
