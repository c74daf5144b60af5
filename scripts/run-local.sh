#!/usr/bin/env bash
# `make run`: builds the binaries and the fake-runner image, then runs the whole
# system locally (see e2e/cmd/localrun) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build >/dev/null
scripts/build-fake-runner-image.sh
exec bin/localrun "$@"
