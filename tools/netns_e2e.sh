#!/usr/bin/env bash
# A real clip streamed between hosts: sender and receiver in two network namespaces joined through a
# third that loses packets, with real veth links and addresses, then the stats checked.
#
#   sudo tools/netns_e2e.sh                        # 30 % loss, 12 GOPs of the sample clip at 320x240
#   sudo tools/netns_e2e.sh --loss 60 --gops 20 --out /tmp/e2e --impair relay
#
#   [tx] 10.203.0.1 --veth-- 10.203.0.2 [mid] 10.203.0.5 --veth-- 10.203.0.6 [rx]
#
# The loss happens in "mid": a kernel netem qdisc on its egress towards rx (mid routes between the two
# links) where the kernel has netem, else mstvsc-relay listening there (mid does not route, so nothing
# can bypass the relay). --impair auto|netem|relay chooses; the output says which was used. Checked: the
# receiver's segment loss is within a binomial tolerance of the setting, frames out = frames sent, no
# GOP dropped or late, the recording has every frame. The addresses exist only inside the namespaces
# made here, which are removed on any exit (trap). Needs root and iproute2; costs ~10-30 s on 2 cores.
set -euo pipefail

loss=30 gops=12 size=320x240 impair=auto out="" backend=${BACKEND:-} seed=7
while [ $# -gt 0 ]; do
    case $1 in
        --loss) loss=${2%\%}; shift 2 ;;
        --gops) gops=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --impair) impair=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "netns_e2e: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $impair in auto|netem|relay) ;; *) echo "netns_e2e: --impair auto|netem|relay" >&2; exit 2 ;; esac

py=${PYTHON:-python3}
[ "$(id -u)" = 0 ] || { echo "netns_e2e: needs root (ip netns)" >&2; exit 77; }
command -v ip >/dev/null || { echo "netns_e2e: needs iproute2 (ip)" >&2; exit 77; }
[ -n "$out" ] || out=$(mktemp -d /tmp/mstvsc-netns.XXXXXX)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Unique names, so two runs (or a run and a leftover) never collide; MSTVSC_NETNS_TAG lets a caller
# (tests/test_netns.py) know them to check the cleanup.
tag=${MSTVSC_NETNS_TAG:-$$}
ns_tx=mstvsc-tx-$tag ns_mid=mstvsc-mid-$tag ns_rx=mstvsc-rx-$tag
receiver="" relay=""  # pids of our background processes, cleared once reaped so no reused pid is killed

cleanup() {
    local pid ns
    for pid in $receiver $relay; do kill "$pid" 2>/dev/null || true; done
    for pid in $receiver $relay; do wait "$pid" 2>/dev/null || true; done
    for ns in "$ns_tx" "$ns_mid" "$ns_rx"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ns in "$ns_tx" "$ns_mid" "$ns_rx"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
# Each veth pair is made inside the namespaces, never in the host's, so no host interface name is taken.
ip -n "$ns_tx" link add tx0 type veth peer name mid0 netns "$ns_mid"
ip -n "$ns_mid" link add mid1 type veth peer name rx0 netns "$ns_rx"
ip -n "$ns_tx" addr add 10.203.0.1/30 dev tx0
ip -n "$ns_mid" addr add 10.203.0.2/30 dev mid0
ip -n "$ns_mid" addr add 10.203.0.5/30 dev mid1
ip -n "$ns_rx" addr add 10.203.0.6/30 dev rx0
for link in "$ns_tx tx0" "$ns_mid mid0" "$ns_mid mid1" "$ns_rx rx0"; do
    set -- $link
    ip -n "$1" link set "$2" up
done
ip -n "$ns_tx" route add default via 10.203.0.2
ip -n "$ns_rx" route add default via 10.203.0.5

netem_error=""
if [ "$impair" != relay ]; then
    if netem_error=$(ip netns exec "$ns_mid" tc qdisc add dev mid1 root netem loss "${loss}%" 2>&1); then
        impair=netem
    elif [ "$impair" = netem ]; then
        echo "netns_e2e: --impair netem, but: $netem_error" >&2
        exit 1
    else
        impair=relay
    fi
fi
if [ "$impair" = netem ]; then
    ip netns exec "$ns_mid" sysctl -qw net.ipv4.ip_forward=1
    destination=10.203.0.6:5000
    echo "netns_e2e: impairment: kernel netem on $ns_mid/mid1 (loss ${loss}%, unseeded)"
else
    destination=10.203.0.2:6000
    echo "netns_e2e: impairment: mstvsc-relay in $ns_mid (loss ${loss}%, seed $seed)${netem_error:+; no kernel netem: $netem_error}"
fi

# The ONNX backend where the model ships graphs (no PyTorch needed), else PyTorch.
if [ -z "$backend" ]; then
    backend=$("$py" - <<'EOF'
from mstvsc_stream.cli.send import build_parser
from mstvsc_stream.runtime import find_model

has_graphs = any(find_model().folder.glob("encoder-*.onnx"))
accepts_onnx = "onnx" in build_parser().format_help()
print("onnx" if has_graphs and accepts_onnx else "auto" if has_graphs else "torch")
EOF
)
fi
clip=$("$py" -c 'from mstvsc_stream.media import sample_clip_path; print(sample_clip_path())')
frames=$((gops * 4))
echo "netns_e2e: $frames frames ($gops GOPs) of $(basename "$clip") at $size, backend $backend, results in $out"

# Two processes share a small machine's cores: one thread each is faster than a pool each.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Started as `ip netns exec ... &` directly (ip execs the command), so $! is the Python process itself
# and the cleanup's kill reaches it.
ip netns exec "$ns_rx" "$py" -m mstvsc_stream.cli.recv --listen 10.203.0.6:5000 --backend "$backend" \
    --record "$out/received.mkv" --stats-json "$out/receiver.json" --idle-exit 10 >"$out/receiver.log" 2>&1 &
receiver=$!
wait_for() {  # wait_for LOG TEXT PID: until LOG has TEXT; fail if PID exits first or after 120 s
    local deadline=$((SECONDS + 120))
    until grep -q "$2" "$1" 2>/dev/null; do
        if ! kill -0 "$3" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            echo "netns_e2e: never got '$2' in $1:" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.2
    done
}
wait_for "$out/receiver.log" "listening on" "$receiver"
if [ "$impair" = relay ]; then
    ip netns exec "$ns_mid" "$py" -m mstvsc_stream.cli.relay --listen 10.203.0.2:6000 --to 10.203.0.6:5000 \
        --loss "${loss}%" --seed "$seed" --stats-json "$out/relay.json" >"$out/relay.log" 2>&1 &
    relay=$!
    wait_for "$out/relay.log" "relaying" "$relay"
fi

started=$SECONDS
# --no-realtime: every GOP is encoded and sent however slow the CPU, so frames out can equal frames sent.
# --no-feedback: the segment loss measured must be the hop's, not segments withheld by congestion control.
if ! timeout 300 ip netns exec "$ns_tx" "$py" -m mstvsc_stream.cli.send --input "$clip" --size "$size" \
    --frames "$frames" --no-realtime --no-feedback --backend "$backend" --to "$destination" \
    --stats-json "$out/sender.json" >"$out/sender.log" 2>&1; then
    echo "netns_e2e: the sender failed:" >&2
    cat "$out/sender.log" >&2
    exit 1
fi
if ! timeout 120 tail --pid="$receiver" -f /dev/null; then
    echo "netns_e2e: the receiver did not finish:" >&2
    cat "$out/receiver.log" >&2
    exit 1
fi
rc=0
wait "$receiver" || rc=$?
receiver=""
[ $rc = 0 ] || { echo "netns_e2e: the receiver failed ($rc):" >&2; cat "$out/receiver.log" >&2; exit 1; }
if [ "$impair" = relay ]; then
    kill -TERM "$relay"
    wait "$relay" || true
    relay=""
else
    ip netns exec "$ns_mid" tc -s qdisc show dev mid1 >"$out/netem.txt"
fi
echo "netns_e2e: streamed in $((SECONDS - started)) s"

"$py" - "$out" "$impair" "$loss" "$frames" <<'EOF'
"""Check the run and write summary.json; exit 1 with every failed check listed."""
import json, math, pathlib, sys

from mstvsc_stream.media import read_frames

out, impair, loss, frames = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]) / 100, int(sys.argv[4])
rx = json.loads((out / "receiver.json").read_text())
tx = json.loads((out / "sender.json").read_text())
n = rx["segments_expected"]
# Four standard deviations of a binomial loss count, plus a little: a real fault is far outside it.
tolerance = 4 * math.sqrt(loss * (1 - loss) / max(n, 1)) + 0.01
recorded = len(read_frames(out / "received.mkv"))
summary = {
    "impairment": impair, "loss_setting": loss, "segment_loss_rate": rx["segment_loss_rate"],
    "tolerance": round(tolerance, 4), "segments_expected": n, "frames_asked": frames,
    "frames_sent": tx["frames_sent"], "frames_out": rx["frames_out"], "frames_recorded": recorded,
    "gops_dropped": tx["gops_dropped"], "end_reason": rx["end_reason"],
    "latency_ms_p50": rx["latency_ms_p50"], "decode_ms_p50": rx["decode_ms_p50"],
}
if impair == "relay":
    summary["relay"] = json.loads((out / "relay.json").read_text())
failures = [
    text for ok, text in [
        (tx["frames_sent"] == frames and tx["gops_dropped"] == 0, f"sender sent {tx['frames_sent']}/{frames} frames"),
        (rx["frames_out"] == tx["frames_sent"], f"frames out {rx['frames_out']} != frames sent {tx['frames_sent']}"),
        (recorded == rx["frames_out"], f"recording has {recorded} frames, receiver output {rx['frames_out']}"),
        (abs(rx["segment_loss_rate"] - loss) <= tolerance,
         f"segment loss {rx['segment_loss_rate']:.3f} not within {tolerance:.3f} of {loss:.2f}"),
        (rx["invalid_datagrams"] == 0 and rx["gops_late_dropped"] == 0, "invalid datagrams or late GOPs"),
        (n == tx["gops_sent"] * int(tx["segments_per_gop"].split("/")[1]), "segments expected != segments sent"),
    ] if not ok
]
summary["failures"] = failures
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print("netns_e2e: " + " ".join(f"{k}={v}" for k, v in summary.items() if k not in ("relay", "failures")))
for text in failures:
    print(f"netns_e2e: FAIL: {text}", file=sys.stderr)
print("netns_e2e: " + ("FAILED" if failures else "PASSED"))
sys.exit(1 if failures else 0)
EOF
