"""mstvsc-relay: forward UDP with netem-style impairments, for kernels without netem; what the receiver
sends back (receiver reports) returns to the sender unimpaired.

    mstvsc-relay --listen :6000 --to 127.0.0.1:5000 --loss 30% --delay 20 --jitter 5 --seed 1
    mstvsc-relay --listen :6000 --to 127.0.0.1:5000 --rate 120 --queue-ms 200            # a bottleneck
    mstvsc-relay --listen :6000 --to 127.0.0.1:5000 --rate-schedule 0:300,10:100,20:300
    mstvsc-relay --flow :6001=127.0.0.1:5001 --flow :6002=127.0.0.1:5002 --rate 250      # two flows, one queue
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

from ..net.endpoint import parse_endpoint
from ..net.eventloop import run
from ..net.loss import BernoulliLoss, GilbertElliottLoss, LossModel, parse_probability
from ..net.endpoint import Endpoint
from ..net.relay import Impairment, RelayStats, parse_rate_schedule, start_flows
from . import common

log = logging.getLogger("mstvsc-relay")

def build_parser() -> argparse.ArgumentParser:
    parser = common.parser("mstvsc-relay", "Forward UDP datagrams from --listen to --to, impaired like Linux netem.")
    probability = common.checked(parse_probability)
    parser.add_argument("--listen", type=common.checked(parse_endpoint), metavar="[HOST]:PORT",
                        help="where the sender sends (port 0: any free port, logged)")
    parser.add_argument("--to", type=common.checked(parse_endpoint), metavar="HOST:PORT", help="the receiver")
    parser.add_argument("--flow", action="append", type=common.checked(_parse_flow), metavar="LISTEN=TO",
                        help="per-flow mode, instead of --listen/--to: datagrams to this listening port go to this "
                             "destination; repeat for more flows, which all share one bottleneck queue")
    losses = parser.add_mutually_exclusive_group()
    losses.add_argument("--loss", type=probability, metavar="P", help="Bernoulli loss, e.g. 0.3 or 30%%")
    losses.add_argument(
        "--gemodel", type=probability, nargs="+", metavar="P",
        help="Gilbert-Elliott loss: P [R [1-H [1-K]]] as in netem's 'loss gemodel'",
    )
    parser.add_argument("--delay", type=common.checked(common.non_negative_number), default=0.0, metavar="MS", help="one-way delay")
    parser.add_argument("--jitter", type=common.checked(common.non_negative_number), default=0.0, metavar="MS",
                        help="uniform +-MS around --delay")
    parser.add_argument("--reorder", type=probability, default=0.0, metavar="P",
                        help="chance a datagram skips --delay")
    parser.add_argument("--duplicate", type=probability, default=0.0, metavar="P", help="chance of an extra copy")
    parser.add_argument("--corrupt", type=probability, default=0.0, metavar="P", help="chance of one flipped bit")
    parser.add_argument("--rate", type=common.checked(common.positive_number), metavar="KBIT", help="link rate in kbit/s of payload")
    parser.add_argument("--limit", type=int, default=1000, metavar="N", help="datagrams that may wait (netem's limit)")
    parser.add_argument("--queue-ms", type=common.checked(common.positive_number), metavar="MS",
                        help="bottleneck queue bound as time at the link rate: datagrams that would wait longer are "
                             "dropped (needs --rate or --rate-schedule)")
    parser.add_argument("--rate-schedule", type=common.checked(parse_rate_schedule), metavar="S:KBIT,...",
                        help="link rate over time, e.g. 0:300,10:100,20:300 (seconds from the start:kbit/s)")
    parser.add_argument("--seed", type=int, help="seed for every random choice (default: random, logged)")
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write the final counters here on exit")
    parser.add_argument("--stats-interval", type=common.checked(common.positive_number), default=5.0, metavar="S",
                        help="seconds between one-line counter logs")
    parser.add_argument("--duration", type=common.checked(common.positive_number), metavar="S", help="stop after S seconds")
    return parser


def _parse_flow(text: str) -> tuple[Endpoint, Endpoint]:
    listen, equals, to = text.partition("=")
    if not equals:
        raise ValueError(f"{text!r} is not LISTEN=DESTINATION, e.g. :6001=127.0.0.1:5001")
    return parse_endpoint(listen), parse_endpoint(to)


def _routes(args: argparse.Namespace) -> list[tuple[Endpoint, Endpoint]]:
    if args.flow:
        if args.listen is not None or args.to is not None:
            raise ValueError("give either --listen and --to, or --flow (one or more)")
        return args.flow
    if args.listen is None or args.to is None:
        raise ValueError("--listen and --to are required (or --flow)")
    return [(args.listen, args.to)]


def _loss_model(args: argparse.Namespace) -> LossModel | None:
    if args.loss is not None:
        return BernoulliLoss(args.loss)
    if args.gemodel is not None:
        if len(args.gemodel) > 4:
            raise ValueError("--gemodel takes at most 4 values: P [R [1-H [1-K]]]")
        return GilbertElliottLoss.netem(*args.gemodel)
    return None


def _impairment(args: argparse.Namespace) -> Impairment:
    return Impairment(
        loss=_loss_model(args),
        delay_s=args.delay / 1000.0,
        jitter_s=args.jitter / 1000.0,
        reorder=args.reorder,
        duplicate=args.duplicate,
        corrupt=args.corrupt,
        rate_kbit=args.rate,
        limit=args.limit,
        queue_s=None if args.queue_ms is None else args.queue_ms / 1000.0,
        rate_schedule=args.rate_schedule or (),
        seed=args.seed,
    )


def _summary(stats: RelayStats) -> str:
    return " ".join(f"{name}={value}" for name, value in stats.as_dict().items())


async def _serve(args: argparse.Namespace, impairment: Impairment) -> dict:
    """Relay until SIGINT/SIGTERM or --duration, logging counters; returns the final report."""
    relay = await start_flows(_routes(args), impairment)
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def report_periodically() -> None:
        while True:
            await asyncio.sleep(args.stats_interval)
            log.info("%s", _summary(relay.stats))

    reporter = asyncio.create_task(report_periodically())
    try:
        await asyncio.wait_for(stop.wait(), args.duration)
    except asyncio.TimeoutError:  # --duration is over
        pass
    finally:
        reporter.cancel()
        relay.close()
    stats = relay.stats
    log.info("stopped: %s", _summary(stats))
    return {**stats.as_dict(), "seed": relay.link.seed, "duration_s": round(time.monotonic() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        impairment = _impairment(args)
        _routes(args)
    except ValueError as exc:
        parser.error(str(exc))
    common.check_output_path(parser, "--stats-json", args.stats_json)
    common.setup_logging(args)

    def body() -> int:
        report = run(_serve(args, impairment))
        if args.stats_json is not None:
            args.stats_json.write_text(json.dumps(report, indent=2) + "\n")
        return 0

    return common.run_main(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())
