#!/usr/bin/env bash
# Installs the real components the test suite runs against (Debian packages; we are root).
# Idempotent and quick when everything is present.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nats-server || need+=(nats-server)
have dockerd || need+=(docker.io)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need+=(python3-grpcio)
have perl || need+=(perl)
have cc || need+=(gcc libc6-dev)
have redis-server || need+=(redis-server)
have ip || need+=(iproute2)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-deps: missing ${need[*]} and not root: install them first" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The distribution's units must not start daemons that would clash with the tests' own.
  for svc in redis-server docker containerd nats-server; do
    (systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null || true) >/dev/null 2>&1
  done
fi
exit 0
