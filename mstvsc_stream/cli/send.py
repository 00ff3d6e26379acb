"""``mstvsc-send``: stream a camera, a video file or a URL to a receiver over UDP.

    mstvsc-send --camera 0 --to 192.168.1.20:5000
    mstvsc-send --input clip.mp4 --size 320x240 --to [ff02::1]:5000 --iface eth0 --kbps 400
    mstvsc-send --camera 0 --to 192.168.1.20:5000 --key-file stream.key   # sealed (see mstvsc-keygen)
    ffmpeg -i rtsp://camera/stream -f nut - | mstvsc-send --input - --to 192.168.1.20:5000
    mstvsc-send --input sample --loop --to 127.0.0.1:5000                 # the bundled clip
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..media import CameraSource, FileSource, FrameSource
from ..net.endpoint import parse_endpoint
from ..pipeline.adaptation import DEGRADE_MODES, RESOLUTION_STEPS, choose_size, graphs_at_hand
from ..pipeline.advice import SENDER_ADVICE
from ..pipeline.sender import Sender, SenderConfig
from ..runtime.base import Codec
from .common import (
    add_model_args,
    add_refine_arg,
    add_seed_arg,
    check_output_path,
    check_resolves,
    checked,
    frame_rate,
    hop_limit,
    input_location,
    open_codec,
    parse_stream_size,
    parser,
    positive_int,
    positive_number,
    run_main,
    serve,
    setup_logging,
)
from .keygen import read_key_file

CAMERA_FPS = 30.0
AUTO = "auto"

log = logging.getLogger("mstvsc-send")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{text!r} is not a fraction in (0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = parser("mstvsc-send", "Encode video with MSTVSC and stream it over UDP to mstvsc-recv.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", type=int, metavar="N", help="capture from camera N")
    source.add_argument("--input", metavar="PATH|URL|-|sample",
                        help="video file, URL (rtsp://, http://, ...), - for standard input (any container FFmpeg "
                             "reads from a pipe: NUT, Matroska, MPEG-TS, y4m), or sample for the bundled clip "
                             "(77 frames)")
    p.add_argument("--to", required=True, type=checked(parse_endpoint), metavar="HOST:PORT",
                   help="receiver: IPv4, [IPv6]:port, host name or multicast group")
    p.add_argument("--size", type=lambda text: AUTO if text == AUTO else parse_stream_size(text), metavar="WxH|auto",
                   help="frame size; auto (the default for a camera) picks the largest of "
                        f"{', '.join(f'{w}x{h}' for w, h in RESOLUTION_STEPS)} this machine encodes in real time "
                        "with headroom, timed before the stream starts (default for a file: its own size)")
    p.add_argument("--degrade", choices=DEGRADE_MODES, default="drop",
                   help="when encoding falls behind later on: drop whole GOPs (default), halve the frame rate "
                        "(framerate) or step down to a smaller shipped size (resolution); it steps back up once "
                        "the CPU has headroom again")
    p.add_argument("--fps", type=checked(frame_rate), metavar="F",
                   help=f"frame rate (a file is resampled in time; camera default {CAMERA_FPS:g})")
    p.add_argument("--frames", type=checked(positive_int), metavar="N", help="stop after N frames")
    p.add_argument("--loop", action="store_true", help="play --input again from the start at its end")
    add_model_args(p)
    add_refine_arg(p)
    add_seed_arg(p)
    payload = p.add_mutually_exclusive_group()
    payload.add_argument("--payload", type=int, metavar="B", help="segment payload bytes (a multiple of 3)")
    payload.add_argument("--packets", type=checked(positive_int), metavar="N", help="segments per GOP instead")
    p.add_argument("--kbps", type=checked(positive_number), metavar="K",
                   help="rate cap on UDP payload, descriptors included: send only the segments of each GOP that "
                        "fit (the receiver counts the rest lost); the congestion controller stays under it")
    p.add_argument("--no-feedback", dest="feedback", action="store_false",
                   help="ignore receiver reports: no congestion control, a fixed rate (--kbps or the full rate)")
    p.add_argument("--key-file", type=Path, metavar="PATH",
                   help="authenticate and encrypt every datagram with this key (mstvsc-keygen writes one); "
                        "the receiver needs the same file")
    p.add_argument("--ttl", type=checked(hop_limit), default=1, metavar="N", help="multicast hop limit (default 1)")
    p.add_argument("--iface", metavar="NAME", help="network interface for a multicast group")
    p.add_argument("--pacing", type=checked(_fraction), default=0.25, metavar="FRACTION",
                   help="spread each GOP's datagrams over this share of the GOP interval (default 0.25: short "
                        "bursts at 4x the stream rate, low latency; raise it on links that drop bursts)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="play a file at its frame rate like a camera, dropping GOPs when encoding lags "
                        "(default); --no-realtime sends as fast as encoding goes and drops nothing")
    p.add_argument("--stats-interval", type=checked(positive_number), default=5.0, metavar="S",
                   help="seconds between status lines")
    p.add_argument("--stats-json", type=Path, metavar="PATH", help="write the final counters here on exit")
    return p


def _open_source(args: argparse.Namespace, codec: Codec) -> FrameSource:
    """The camera or file, at ``--size`` or, with auto (a camera's default), at the size :func:`_auto_size`
    picks; the source opens first, so a missing camera or file fails before any timing, and is read once
    (standard input cannot be reopened): both kinds scale every frame to their ``size`` as they read it."""
    auto = args.size == AUTO or (args.size is None and args.camera is not None)
    if args.camera is not None:
        source: FrameSource = CameraSource(args.camera, RESOLUTION_STEPS[0] if auto else args.size,
                                           args.fps or CAMERA_FPS)
    else:
        source = FileSource(args.input, size=None if auto else args.size, fps=args.fps, loop=args.loop)
    if auto:
        try:
            source.size = _auto_size(codec, source.fps)
        except BaseException:
            source.close()
            raise
    return source


def _auto_size(codec: Codec, fps: float) -> tuple[int, int]:
    """``--size auto``: time the encoder before the stream starts; say which size it picked and why."""
    size, reason, roomy = choose_size(codec, fps, available=graphs_at_hand(codec))
    if roomy:
        log.info("--size auto: %s", reason)
    else:
        log.warning("--size auto: %s; %s", reason, SENDER_ADVICE)
    return size


def _config(args: argparse.Namespace) -> SenderConfig:
    camera = args.camera is not None
    return SenderConfig(
        destination=args.to,
        seed=args.seed,
        payload_size=args.payload,
        packets=args.packets,
        kbps=args.kbps,
        feedback=args.feedback,
        ttl=args.ttl,
        iface=args.iface,
        pacing=args.pacing,
        realtime=camera or args.realtime,
        pace_input=not camera,
        max_frames=args.frames,
        stats_interval_s=args.stats_interval,
        key=None if args.key_file is None else read_key_file(args.key_file),
        degrade=args.degrade,
    )


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.loop and args.camera is not None:
        p.error("--loop applies to --input only")
    check_output_path(p, "--stats-json", args.stats_json)
    setup_logging(args)

    def body() -> int:
        check_resolves(args.to, local=False)
        config = _config(args)
        if args.input is not None:
            args.input = input_location(args.input)
        codec = open_codec(args)
        source = _open_source(args, codec)
        try:
            sender = Sender(codec, source, config)
        except BaseException:
            source.close()
            raise
        return serve(sender.run, sender.stop, args.stats_json)

    return run_main(p.prog, body)


if __name__ == "__main__":
    sys.exit(main())
