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
# The Redis password: generated once into compose/secrets/ (ignored by git),
# kept while the files exist. redis.conf is Redis's configuration (it holds
# requirepass); redis.env gives the services RM_REDIS_URL and the health
# check REDISCLI_AUTH.
secrets() {
  local dir=compose/secrets
  [ -f "$dir/redis.conf" ] && [ -f "$dir/redis.env" ] && return
  mkdir -p "$dir"
  chmod 700 "$dir"
  local pw
  pw=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  # Readable inside the Redis container (uid 999); the directory is private.
  (umask 022 && printf 'appendonly yes\nprotected-mode no\nrequirepass %s\n' "$pw" >"$dir/redis.conf")
  # Read by compose itself (env_file), not by the containers.
  (umask 077 && printf 'RM_REDIS_URL=redis://:%s@redis:6379/0\nREDISCLI_AUTH=%s\n' "$pw" "$pw" >"$dir/redis.env")
}
case "${1:-}" in
  secrets)
    # Only the password files: what the compose test (e2e/scenarios,
    # TestCompose) needs before it brings the environment up itself.
    secrets
    ;;
  up)
    secrets
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
    secrets # compose reads the env files even to stop
    # Runner containers are made by provisioner-docker, not by compose: stop
    # it first, remove them, then the network they were on can go.
    compose stop --timeout 20
    ids=$(docker ps -aq --filter label=runner-manager.io/manager=rm-compose)
    [ -z "$ids" ] || xargs docker rm -f <<<"$ids" >/dev/null
    compose down --volumes --remove-orphans --timeout 20
    ;;
  *) echo "usage: $0 up|down|secrets" >&2; exit 2 ;;
esac
