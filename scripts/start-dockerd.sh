#!/usr/bin/env bash
# Starts a private Docker daemon for the docker isolate (no bridge, no iptables) and prints its
# socket. Usage: scripts/start-dockerd.sh [DIR]   (default /tmp/cocaine-dockerd; stop: kill $(cat DIR/dockerd.pid))
# Paths stay short on purpose: a unix socket path may not exceed 108 bytes.
set -euo pipefail
dir=${1:-/tmp/cocaine-dockerd}
command -v dockerd >/dev/null || { echo "start-dockerd: dockerd is not installed (scripts/test-deps.sh installs docker.io)" >&2; exit 1; }
mkdir -p "$dir"
sock="$dir/d.sock"
if [ -f "$dir/dockerd.pid" ] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; then
  echo "unix://$sock"
  exit 0
fi
dockerd --data-root "$dir/data" --exec-root "$dir/x" --host "unix://$sock" --pidfile "$dir/dockerd.pid" \
  --iptables=false --ip6tables=false --bridge=none >"$dir/dockerd.log" 2>&1 &
for _ in $(seq 1 300); do
  if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1 || curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    echo "unix://$sock"
    exit 0
  fi
  sleep 0.1
done
echo "start-dockerd: no answer on $sock after 30 s; see $dir/dockerd.log" >&2
exit 1
