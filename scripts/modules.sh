#!/usr/bin/env bash
# Prints the workspace's modules (the `use` lines of go.work), one directory a
# line, relative to the repository root: the one list every script uses.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
go list -m -f '{{.Dir}}' | sed "s|^$root/||" | sort
