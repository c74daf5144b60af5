#!/usr/bin/env bash
# Builds runner-manager/redis:local, a stand-in for the official redis:7 image
# made from Debian's redis-server and the shared libraries it links, for
# machines that cannot pull images. compose.yaml uses it when REDIS_IMAGE says so.
set -euo pipefail
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install -y redis-server" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/usr/bin" "$ctx/data" "$ctx/root/etc"
cp "$(command -v redis-server)" "$ctx/root/usr/bin/redis-server"
cp "$(command -v redis-cli)" "$ctx/root/usr/bin/redis-cli"
for lib in $(ldd "$(command -v redis-server)" "$(command -v redis-cli)" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
  mkdir -p "$ctx/root$(dirname "$lib")"
  cp -L "$lib" "$ctx/root$lib"
done
echo 'redis:x:999:999:redis:/data:/sbin/nologin' >"$ctx/root/etc/passwd"
echo 'redis:x:999:' >"$ctx/root/etc/group"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
# COPY makes files root-owned: the data directory must belong to the redis user.
COPY --chown=999:999 data /data
USER 999:999
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/bin/redis-server"]
CMD ["--appendonly", "yes", "--protected-mode", "no"]
DOCKERFILE
docker build -q -t runner-manager/redis:local "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
printf '%-45s %s\n' runner-manager/redis:local "$(docker image inspect -f '{{.Size}}' runner-manager/redis:local | awk '{printf "%.1f MB", $1/1e6}')"
