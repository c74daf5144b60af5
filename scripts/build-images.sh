#!/usr/bin/env bash
# Builds the local images runner-manager/<binary>:<tag> FROM scratch from the
# static binaries in bin/ (make build), and the Redis stand-in of the compose
# environment. No registry is needed. To publish, tag and push them:
#   REGISTRY=ghcr.io/acme TAG=v1.2.3 scripts/build-images.sh --push
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
REGISTRY=${REGISTRY:-runner-manager}
push=false
[ "${1:-}" = --push ] && push=true
binaries=(ingress scheduler provisioner-docker provisioner-aws provisioner-gcp fakegithub)
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "missing $ca: apt-get install -y ca-certificates" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp deploy/images/Dockerfile "$ca" "$ctx/"
echo 'nonroot:x:65532:65532:nonroot:/:/sbin/nologin' >"$ctx/passwd"
echo 'nonroot:x:65532:' >"$ctx/group"

for b in "${binaries[@]}"; do
  [ -x "bin/$b" ] || { echo "bin/$b is missing: run make build" >&2; exit 1; }
  cp "bin/$b" "$ctx/app"
  image="$REGISTRY/$b:$TAG"
  docker build -q -t "$image" --build-arg BINARY="$b" --build-arg VERSION="$TAG" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
  printf '%-45s %s\n' "$image" "$(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}')"
  $push && docker push "$image"
done
# The fake runner has an image script of its own (the tests call it too).
fr=$(scripts/build-fake-runner-image.sh "$REGISTRY/fake-runner:$TAG")
printf '%-45s %s\n' "$fr" "$(docker image inspect -f '{{.Size}}' "$fr" | awk '{printf "%.1f MB", $1/1e6}')"
$push && docker push "$fr"
scripts/build-redis-image.sh
