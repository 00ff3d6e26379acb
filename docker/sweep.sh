#!/usr/bin/env bash
# Run the compose scenario (sender -> impairment -> receiver) once per loss rate and collect each run's
# stats, recording and logs in one folder, with a summary table at the end.
#
#   docker/sweep.sh                      # 0% 30% 60% 90%, 120 frames of the sample clip each
#   docker/sweep.sh 10% 50%              # chosen rates
#   FRAMES=240 SIZE=640x480 RESULTS=/tmp/sweep docker/sweep.sh
#   IMPAIR=relay docker/sweep.sh         # the userspace relay instead of kernel netem
#
# IMPAIR=auto (the default) uses the netem sidecar where the kernel has netem (probed in a throwaway
# container) and the relay otherwise, and says which. Needs docker and its compose plugin or
# docker-compose; the images are built on first use (BASE_IMAGE, see compose.yaml).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
losses=("$@")
[ ${#losses[@]} -gt 0 ] || losses=(0% 30% 60% 90%)
frames=${FRAMES:-120}
impair=${IMPAIR:-auto}
project=${PROJECT:-mstvsc-sweep}
run_timeout=${RUN_TIMEOUT:-600}
export RESULTS=${RESULTS:-$here/out/sweep-$(date +%Y%m%d-%H%M%S)}
export IMAGE=${IMAGE:-mstvsc-stream:latest} NETEM_IMAGE=${NETEM_IMAGE:-mstvsc-netem:latest}
# A finite run in real time, as a camera would send it: a GOP the encoder has no time for is dropped
# by the sender (counted in the summary), and frames out are compared with the frames actually sent.
# SENDER_ARGS="--frames 120 --no-realtime" sends every GOP however slow the CPU (latency then grows).
# --no-feedback: the sweep measures loss, not congestion control (withheld segments would count as loss).
export SENDER_ARGS=${SENDER_ARGS:---frames $frames --no-feedback}

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    echo "sweep: needs the docker compose plugin or docker-compose" >&2
    exit 2
fi
dc() { "${compose[@]}" -p "$project" -f "$here/compose.yaml" --profile relay "$@"; }

mkdir -p "$RESULTS"
# The streaming containers are not root: as root, hand the results folder to their default uid;
# otherwise run them as the caller, who owns it.
if [ "$(id -u)" = 0 ]; then
    chown "${MSTVSC_UID:-10001}:${MSTVSC_GID:-10001}" "$RESULTS"
else
    export MSTVSC_UID=${MSTVSC_UID:-$(id -u)} MSTVSC_GID=${MSTVSC_GID:-$(id -g)}
fi

if [ "$impair" = auto ]; then
    docker image inspect "$NETEM_IMAGE" >/dev/null 2>&1 || dc build netem
    if docker run --rm --network none --cap-add NET_ADMIN --entrypoint tc "$NETEM_IMAGE" \
        qdisc add dev lo root netem loss 1% >/dev/null 2>&1; then
        impair=netem
    else
        impair=relay
        echo "sweep: this kernel has no netem qdisc; the relay (mstvsc-relay) stands in for it"
    fi
fi
case $impair in
    netem) export DEST=receiver:5000; side=netem ;;
    relay) export DEST=relay:6000; side=relay ;;
    *) echo "sweep: IMPAIR must be auto, netem or relay, not $impair" >&2; exit 2 ;;
esac
echo "sweep: impairment $impair, losses ${losses[*]}, $frames frames each, results in $RESULTS"

cleanup() { dc down --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

status=0
for loss in "${losses[@]}"; do
    export LOSS=$loss RUN="loss-${loss%\%}"
    echo "== $RUN ($impair)"
    if [ "$side" = relay ]; then
        dc up -d relay          # after the receiver is healthy; the sender then finds both listening
    else
        dc up -d receiver
    fi
    dc up -d sender "$side"
    receiver=$(dc ps -q receiver) sender=$(dc ps -q sender) impairer=$(dc ps -q "$side")
    if ! rc=$(timeout "$run_timeout" docker wait "$receiver"); then
        echo "sweep: $RUN: the receiver did not finish within ${run_timeout}s" >&2
        rc=124
    fi
    sender_rc=$(timeout 60 docker wait "$sender" || echo 124)
    # Stopping the impairment makes it report what it dropped (netem's counters, the relay's JSON); a
    # netem sidecar that could not add its qdisc has already exited 1, and the run was not impaired.
    dc stop -t 10 "$side" >/dev/null 2>&1 || true
    side_rc=$(docker inspect -f '{{.State.ExitCode}}' "$impairer")
    dc logs --no-color > "$RESULTS/$RUN.log" 2>&1 || true
    dc down --remove-orphans >/dev/null 2>&1
    for part in "receiver $rc" "sender $sender_rc" "$side $side_rc"; do
        set -- $part
        [ "$2" = 0 ] || { echo "sweep: $RUN: $1 exit status $2 (see $RESULTS/$RUN.log)" >&2; status=1; }
    done
done

# Summarise with the image's own Python, so the host needs nothing but docker.
docker run --rm -i --user "${MSTVSC_UID:-10001}:${MSTVSC_GID:-10001}" -v "$RESULTS:/results:ro" "$IMAGE" \
    python3 - "$impair" "${losses[@]}" <<'EOF' | tee "$RESULTS/summary.txt"
import json, pathlib, re, sys

impair, losses = sys.argv[1], sys.argv[2:]
root = pathlib.Path("/results")
print(f"{'loss':>6} {'impair':>6} {'sent':>5} {'out':>5} {'tx GOPs dropped':>15} {'seg loss':>9} {'dropped':>8}"
      f" {'lat p50':>8} {'lat p95':>8}  recording")
for loss in losses:
    run = f"loss-{loss.rstrip('%')}"
    try:
        rx = json.loads((root / f"{run}.json").read_text())
        tx = json.loads((root / f"{run}-sender.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"{loss:>6} {impair:>6}  no stats: {exc}")
        continue
    dropped = "-"
    if impair == "relay" and (root / f"{run}-relay.json").exists():
        dropped = json.loads((root / f"{run}-relay.json").read_text()).get("dropped", "-")
    elif impair == "netem":
        found = re.findall(r"dropped (\d+)", (root / f"{run}.log").read_text())
        dropped = found[-1] if found else "-"
    print(f"{loss:>6} {impair:>6} {tx['frames_sent']:>5} {rx['frames_out']:>5} {tx['gops_dropped']:>15}"
          f" {rx['segment_loss_rate']:>9.3f} {dropped:>8} {rx['latency_ms_p50']:>8} {rx['latency_ms_p95']:>8}  {run}.mkv")
EOF
exit $status
