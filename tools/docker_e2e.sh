#!/usr/bin/env bash
# The Docker deployment end to end on a machine that reaches no image registry: make a Debian base image
# with debootstrap (standing in for python:3.11-slim), build docker/Dockerfile and docker/Dockerfile.netem
# on it, run the compose scenario of docker/compose.yaml for a few loss rates (docker/sweep.sh) and
# collect the results. The netem sidecar is used where the kernel has netem, else the relay stands in.
#
#   sudo tools/docker_e2e.sh                 # 0% 30% 60%, 48 frames each
#   sudo FRAMES=120 tools/docker_e2e.sh 10% 90%
#
# Slow (the first run debootstraps, ~2 min, and pip-installs the image, ~2 min), so not part of CI.
# Reruns reuse the base tarball cached in $CACHE (default /var/tmp/mstvsc-docker) and Docker's layer
# cache. Starts dockerd if none answers, and stops it again at the end. Needs root, docker, debootstrap
# and docker-compose or the compose plugin (Debian: apt-get install docker.io debootstrap docker-compose).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-/var/tmp/mstvsc-docker}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
base_image=mstvsc-base:$suite
export FRAMES=${FRAMES:-48}
export RESULTS=${RESULTS:-$cache/results-$(date +%Y%m%d-%H%M%S)}
losses=("$@")
[ ${#losses[@]} -gt 0 ] || losses=(0% 30% 60%)

[ "$(id -u)" = 0 ] || { echo "docker_e2e: needs root (debootstrap, dockerd)" >&2; exit 2; }
for tool in docker debootstrap; do
    command -v "$tool" >/dev/null || { echo "docker_e2e: needs $tool" >&2; exit 2; }
done

log() { echo "docker_e2e: $*"; }

dockerd_pid=""
stop_dockerd() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
}
trap stop_dockerd EXIT
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || { echo "docker_e2e: no docker daemon answers and no dockerd" >&2; exit 2; }
    mkdir -p "$cache"
    log "starting dockerd (log: $cache/dockerd.log)"
    dockerd >"$cache/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "docker_e2e: dockerd did not start" >&2; tail "$cache/dockerd.log" >&2; exit 1; }
fi
# The legacy builder where the buildx plugin is missing (Debian's docker.io has none).
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

make_base_tarball() {
    local rootfs=$cache/rootfs-$suite
    if [ ! -e "$rootfs/.debootstrap-complete" ]; then
        rm -rf "$rootfs"
        log "debootstrap $suite (minbase + python3, venv, CA certificates) into $rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$rootfs" "$mirror" \
            >"$cache/debootstrap.log" 2>&1 || { tail "$cache/debootstrap.log" >&2; exit 1; }
        touch "$rootfs/.debootstrap-complete"
    fi
    # Trust what this host trusts: behind a TLS-inspecting proxy pip inside the build must know its CA,
    # and pip reads certificates from its own bundle unless told the system's. The image built on this
    # base is local; a registry base needs none of this.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    fi
    chroot "$rootfs" update-ca-certificates >/dev/null
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs/.debootstrap-complete"
    tar --numeric-owner -C "$rootfs" -cf "$1.tmp" . && mv "$1.tmp" "$1"
    rm -rf "$rootfs"
}

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    mkdir -p "$cache"
    tarball=$cache/base-$suite.tar
    [ -f "$tarball" ] || make_base_tarball "$tarball"
    log "docker import $tarball as $base_image"
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' "$tarball" "$base_image" >/dev/null
fi

# The build context is what git knows of the work tree (tracked and untracked-but-not-ignored files),
# sent as a tar: no .git, no runs/, no caches, whatever the repository root holds.
build() {  # build DOCKERFILE TAG
    local started=$SECONDS
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _ \
        | tar --null -T - -cf -) \
        | docker build --network host --build-arg "BASE_IMAGE=$base_image" -f "$1" -t "$2" - >"$RESULTS/build-${2%%:*}.log" 2>&1 \
        || { tail -30 "$RESULTS/build-${2%%:*}.log" >&2; exit 1; }
    log "built $2 from $1 in $((SECONDS - started)) s: $(docker image inspect -f '{{.Size}}' "$2" | awk '{printf "%.0f MB", $1/1e6}')"
}
mkdir -p "$RESULTS"
build docker/Dockerfile mstvsc-stream:latest
build docker/Dockerfile.netem mstvsc-netem:latest
log "base $base_image: $(docker image inspect -f '{{.Size}}' "$base_image" | awk '{printf "%.0f MB", $1/1e6}')"
grep -h " encodes 320x240$" "$RESULTS/build-mstvsc-stream.log" | sed 's/^/docker_e2e: build check: /' || true

# What a user sees first: the non-root user, the commands, and the model found without PyTorch.
docker run --rm mstvsc-stream:latest sh -c 'id; mstvsc-send --list-models; python3 -c "import torch"' \
    >"$RESULTS/image-check.txt" 2>&1 || true
sed -e 's/^/docker_e2e: image: /' -e '/Traceback\|File "/d' "$RESULTS/image-check.txt"

# The netem sidecar on its own, on the loopback of a throwaway namespace: it either applies netem and
# reports its counters when stopped, or says that this kernel has none.
sidecar=$(docker run -d --network none --cap-add NET_ADMIN -e NETEM_DEV=lo -e LOSS=30% mstvsc-netem:latest)
sleep 2
docker stop -t 5 "$sidecar" >/dev/null
docker logs "$sidecar" 2>&1 | sed 's/^/docker_e2e: netem sidecar: /'
log "netem sidecar exit status $(docker inspect -f '{{.State.ExitCode}}' "$sidecar")"
docker rm "$sidecar" >/dev/null

log "sweep: ${losses[*]}"
IMPAIR=${IMPAIR:-auto} BASE_IMAGE=$base_image NETEM_BASE_IMAGE=$base_image "$repo/docker/sweep.sh" "${losses[@]}"
log "results in $RESULTS"
