#!/bin/sh
# Entry point of the netem sidecar: put a netem qdisc on the shared namespace's egress, then wait.
#
#   LOSS         what follows netem's "loss": "30%" (the default), "gemodel 5% 30%", "state 1% 20%"
#   NETEM_EXTRA  more netem words: "delay 40ms 10ms", "delay 20ms reorder 5%"
#   RATE         a bottleneck: netem's "rate RATEkbit" (kbit/s), with its queue ("limit", in packets) sized
#                to QUEUE_MS (default 200) at that rate for packets of PACKET_BYTES (default 220, a 320x240
#                stream's datagrams with their IP and UDP headers): the closed loop's test link
#   NETEM_DEV    interface (default eth0)
#
# It stays up until stopped so that stopping it prints the qdisc's final counters (sent, dropped) in its
# log: the proof of what the kernel really dropped, next to the receiver's own loss count.
set -eu
dev=${NETEM_DEV:-eth0}
loss=${LOSS:-30%}
bottleneck=""
if [ -n "${RATE:-}" ]; then
    limit=$(( ${RATE} * ${QUEUE_MS:-200} / 8 / ${PACKET_BYTES:-220} + 1 ))
    bottleneck="rate ${RATE}kbit limit $limit"
fi
# shellcheck disable=SC2086  # LOSS and NETEM_EXTRA are lists of netem words
if ! tc qdisc replace dev "$dev" root netem loss $loss $bottleneck ${NETEM_EXTRA:-}; then
    # tc has said why above; "qdisc kind is unknown" means a kernel without sch_netem.
    echo "mstvsc-netem: no netem qdisc on $dev; where the kernel lacks netem, the relay profile of" \
        "docker/compose.yaml stands in (IMPAIR=relay docker/sweep.sh)" >&2
    exit 1
fi
echo "mstvsc-netem: $(tc qdisc show dev "$dev")"
report() {
    echo "mstvsc-netem: final counters:"
    tc -s qdisc show dev "$dev"
    exit 0
}
trap report TERM INT
# sleep in the background so the shell can run the trap as soon as the signal arrives.
sleep infinity &
wait
