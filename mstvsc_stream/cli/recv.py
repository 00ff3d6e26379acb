"""``mstvsc-recv``: receive an MSTVSC stream over UDP and show it, record it, or both.

    mstvsc-recv --listen :5000 --display
    mstvsc-recv --listen [ff02::1]:5000 --iface eth0 --record out.mkv --idle-exit 5 --stats-json stats.json
    mstvsc-recv --listen :5000 --display --key-file stream.key --accept 192.168.1.10
    mstvsc-recv --listen :5000 --record - | ffplay -
    mstvsc-recv --listen :5000 --record "udp://239.0.0.1:1234?pkt_size=1316"
    mstvsc-recv --listen :5000 --http :8080                # open http://127.0.0.1:8080/ in a browser
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..media.recorder import FORMATS, record_target
from ..net.endpoint import parse_endpoint
from ..net.sources import DEFAULT_SILENCE_S, SourcePolicy
from ..pipeline.receiver import Receiver, ReceiverConfig
from .common import (
    add_model_args,
    add_seed_arg,
    check_output_path,
    check_resolves,
    checked,
    non_negative_number,
    open_codec,
    parser,
    positive_int,
    positive_number,
    run_main,
    serve,
    setup_logging,
)
from .keygen import read_key_file

DEFAULT_RECORD_SUFFIX = ".mp4"


def _recording(text: str) -> str:
    """A recording path with no extension means H.264 .mp4; standard output and URLs stay as they are."""
    if text == "-" or "://" in text or Path(text).suffix:
        return text
    return str(Path(text).with_suffix(DEFAULT_RECORD_SUFFIX))


def build_parser() -> argparse.ArgumentParser:
    p = parser("mstvsc-recv", "Receive an MSTVSC stream over UDP; display and/or record it.")
    p.add_argument("--listen", required=True, type=checked(parse_endpoint), metavar="[HOST]:PORT",
                   help="where to listen, e.g. :5000, [::]:5000 or a multicast group 239.1.2.3:5000")
    p.add_argument("--iface", metavar="NAME", help="network interface that joins a multicast group")
    p.add_argument("--display", action="store_true", help="show the video in a window (q or Esc to quit)")
    p.add_argument("--http", type=checked(parse_endpoint), metavar="[HOST]:PORT",
                   help="serve a browser preview (live picture and stats) here: loopback unless HOST is named, "
                        "e.g. :8080; another host gets the picture unencrypted, even from a sealed stream")
    p.add_argument("--record", type=_recording, metavar="PATH|-|URL",
                   help="record to a file (.mp4 H.264, the default; .mkv or .avi lossless FFV1; .webm VP9), to "
                        "standard output (-, NUT with raw video unless --record-format says otherwise), or "
                        "re-publish to a URL FFmpeg can write (udp:// and srt:// as MPEG-TS, rtsp://, rtmp://)")
    p.add_argument("--record-format", choices=FORMATS, metavar="|".join(FORMATS),
                   help="container for - or a URL (default: nut for -, from the scheme for a URL); frames that "
                        "a pipe or URL cannot take in time are dropped and counted, never queued without end")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--frames", type=checked(positive_int), metavar="N", help="stop after N frames out")
    limit.add_argument("--duration", type=checked(positive_number), metavar="S", help="stop after S seconds")
    p.add_argument("--idle-exit", type=checked(positive_number), metavar="SECONDS",
                   help="finish after this much silence from the followed stream, counted from the first "
                        "datagram (junk and refused streams keep nothing alive)")
    p.add_argument("--stay", action="store_true", help="keep listening after the sender's end of input")
    p.add_argument("--no-feedback", dest="feedback", action="store_false",
                   help="send no receiver reports (the sender then runs open loop, without congestion control)")
    p.add_argument("--playout-ms", type=checked(non_negative_number), default=50.0, metavar="MS",
                   help="jitter margin: wait this long past the time a GOP's datagrams take to arrive (learned "
                        "from the stream) for its late segments (default 50)")
    p.add_argument("--stats-json", type=Path, metavar="PATH", help="write the final counters here on exit")
    p.add_argument("--status-interval", type=checked(positive_number), default=5.0, metavar="S",
                   help="seconds between status lines")
    p.add_argument("--key-file", type=Path, metavar="PATH",
                   help="accept only datagrams sealed with this key (the sender's --key-file); others are counted "
                        "as forged or replayed and dropped")
    p.add_argument("--accept", default="first", metavar="any|first|HOST",
                   help="first (default): follow the first sender with a valid stream and ignore others until it "
                        "falls silent; HOST: the same, only for that host; any: follow whoever started last")
    p.add_argument("--source-timeout", type=checked(positive_number), default=DEFAULT_SILENCE_S, metavar="S",
                   help=f"silence after which another sender may take over (default {DEFAULT_SILENCE_S:g})")
    add_model_args(p)
    add_seed_arg(p)
    return p


def _config(args: argparse.Namespace) -> ReceiverConfig:
    accept = SourcePolicy.parse(args.accept, args.source_timeout)
    accept.check_listen(args.listen.host)
    return ReceiverConfig(
        listen=args.listen,
        seed=args.seed,
        iface=args.iface,
        display=args.display,
        record=args.record,
        max_frames=args.frames,
        duration_s=args.duration,
        idle_exit_s=args.idle_exit,
        stay=args.stay,
        playout_margin_s=args.playout_ms / 1000.0,
        status_interval_s=args.status_interval,
        key=None if args.key_file is None else read_key_file(args.key_file),
        feedback=args.feedback,
        accept=accept,
        preview=args.http,
    )


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.record is not None:
        try:
            args.record = record_target(args.record, args.record_format)
        except ValueError as error:
            p.error(str(error))
        if args.record.is_file:
            check_output_path(p, "--record", Path(args.record.location))
    elif args.record_format is not None:
        p.error("--record-format needs --record")
    check_output_path(p, "--stats-json", args.stats_json)
    setup_logging(args)

    def body() -> int:
        check_resolves(args.listen, local=True)
        config = _config(args)
        codec = open_codec(args)
        receiver = Receiver(codec, config, lambda name: open_codec(args, name))
        return serve(receiver.run, receiver.stop, args.stats_json)

    return run_main(p.prog, body)


if __name__ == "__main__":
    sys.exit(main())
