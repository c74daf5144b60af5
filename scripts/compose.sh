#!/usr/bin/env bash
# `make up` / `make down` of the integration environment (deploy/compose.yaml).
# Uses the local Redis stand-in when the official image is not present.
set -euo pipefail
cd "$(dirname "$0")/../deploy"
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose -p rm-compose "$@"; else docker-compose -p rm-compose "$@"; fi
}
if [ -z "${REDIS_IMAGE:-}" ] && ! docker image inspect redis:7 >/dev/null 2>&1; then
  export REDIS_IMAGE=runner-manager/redis:local
fi
case "${1:-}" in
  up)
    compose up -d
    # Wait until every service with a health check reports healthy.
    for _ in $(seq 1 90); do
      states=$(docker ps -a --filter label=com.docker.compose.project=rm-compose --format '{{.Names}} {{.Status}}')
      if [ -n "$states" ] && ! grep -qvE '\(healthy\)' <<<"$states"; then
        compose ps
        exit 0
      fi
      if grep -qE 'Exited|unhealthy' <<<"$states"; then break; fi
      sleep 2
    done
    compose ps
    compose logs --tail 20 >&2
    echo "the environment did not become healthy" >&2
    exit 1
    ;;
  down)
    compose down --volumes --remove-orphans --timeout 20
    # Runner containers are made by provisioner-docker, not by compose.
    ids=$(docker ps -aq --filter label=runner-manager.io/manager=rm-compose)
    [ -z "$ids" ] || xargs docker rm -f <<<"$ids" >/dev/null
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
