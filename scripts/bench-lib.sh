#!/usr/bin/env bash
# Helpers sourced by the benchmark scripts (bench-ingress.sh,
# bench-ingress-slow.sh): a free loopback port, and waiting for a service.

# free_port prints a TCP port free on 127.0.0.1 now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION COMMAND... runs COMMAND every 50 ms until it succeeds,
# for at most 10 s.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 1 200); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.05
	done
	echo "$(basename "$0"): $what did not come up" >&2
	return 1
}
