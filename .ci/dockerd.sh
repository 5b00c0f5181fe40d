#!/usr/bin/env bash
# Sourced by .ci/run: a private Docker daemon for the image tests.
#
# Installs Debian's docker.io, docker-registry and busybox-static when missing,
# starts `dockerd` with its own data folder, exec folder and unix socket under a
# temporary folder (no iptables, no bridge: tests use `--network none` and
# loopback), exports DOCKER_HOST for the tests, and stops the daemon and removes
# the folder when the sourcing shell exits. Nothing is pulled: the tests make
# their own base images from busybox-static.

loop_ci_need=()
command -v dockerd >/dev/null 2>&1 || loop_ci_need+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || loop_ci_need+=(docker-registry)
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || loop_ci_need+=(busybox-static)
if [ ${#loop_ci_need[@]} -gt 0 ]; then
  echo "installing ${loop_ci_need[*]}"
  if [ "$(id -u)" -eq 0 ]; then loop_ci_sudo=""; else loop_ci_sudo="sudo"; fi
  $loop_ci_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $loop_ci_sudo apt-get install -y -qq "${loop_ci_need[@]}" >/dev/null
fi

LOOP_CI_DOCKER_DIR="$(mktemp -d /tmp/loop-ci-docker.XXXXXX)"
loop_ci_stop_dockerd() {
  if [ -s "$LOOP_CI_DOCKER_DIR/pid" ]; then
    local pid
    pid="$(cat "$LOOP_CI_DOCKER_DIR/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # vfs layers can hold read-only files; the exec root may hold mounts.
  umount -R "$LOOP_CI_DOCKER_DIR/exec" 2>/dev/null || true
  chmod -R u+w "$LOOP_CI_DOCKER_DIR" 2>/dev/null || true
  rm -rf "$LOOP_CI_DOCKER_DIR"
}
trap loop_ci_stop_dockerd EXIT

# Only one dockerd per data root; a short socket path (unix sockets are limited to 108 bytes).
dockerd \
  --data-root "$LOOP_CI_DOCKER_DIR/data" \
  --exec-root "$LOOP_CI_DOCKER_DIR/exec" \
  -H "unix://$LOOP_CI_DOCKER_DIR/sock" \
  --pidfile "$LOOP_CI_DOCKER_DIR/pid" \
  --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
  >"$LOOP_CI_DOCKER_DIR/dockerd.log" 2>&1 &
export DOCKER_HOST="unix://$LOOP_CI_DOCKER_DIR/sock"
for _ in $(seq 1 300); do
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
  sleep 0.1
done
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "dockerd did not start; its log:" >&2
  tail -n 30 "$LOOP_CI_DOCKER_DIR/dockerd.log" >&2
  exit 1
fi
echo "dockerd $(docker version --format '{{.Server.Version}}') on $DOCKER_HOST"
