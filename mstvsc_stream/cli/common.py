"""What every command line shares: version, verbosity, size parsing, model options and the rule that
a user's mistake ends in one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from .. import __version__
from ..media import MediaError
from ..media.sample import SAMPLE_CLIP_FRAMES, SAMPLE_INPUT, sample_clip_path
from ..net.endpoint import Endpoint, EndpointError, resolve_endpoint
from ..net.eventloop import run
from ..net.loss import ProbabilityError
from ..runtime import (
    BACKENDS,
    DEFAULT_MODEL,
    DEVICES,
    INT8_PSNR_COST_DB,
    PRECISION_CHOICES,
    Codec,
    ModelError,
    list_models,
    load_codec,
)
from ..wire import DEFAULT_SEED, WireError
from ..wire.limits import frame_size_problem

USER_ERRORS = (MediaError, ModelError, EndpointError, ProbabilityError, WireError, ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line, like every other user error (argparse's own
    prints the whole usage first, which buries the line that says what is wrong)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help=f"shipped model name or model folder (default {DEFAULT_MODEL})")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="inference backend: onnx (ONNX Runtime, no PyTorch needed), torch, or auto (the fastest "
                        "usable, logged)")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where inference runs: cpu (default) or cuda (ONNX needs onnxruntime-gpu: pip install "
                        "'mstvsc-stream[gpu]'; torch needs a CUDA build of PyTorch)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help=f"ONNX graphs: int8 (about 1.5x faster on a CPU, within {INT8_PSNR_COST_DB} dB), fp32, or auto "
                        "(int8 on "
                        "the CPU, fp32 on CUDA and with torch)")
    p.add_argument("--threads", type=checked(positive_int), default=None, metavar="N",
                   help="inference threads (default $MSTVSC_THREADS, else the usable CPUs; use 1 when a sender "
                        "and a receiver share a 2-core machine)")
    add_list_models_arg(p)


def add_refine_arg(p: argparse.ArgumentParser) -> None:
    """Encoder effort, for the commands that encode (the receiver decodes any symbols as they come)."""
    p.add_argument("--refine", type=checked(non_negative_int), default=0, metavar="STEPS",
                   help="encoder effort: refine each GOP's symbols against the decoder for STEPS gradient steps "
                        "before sending (PyTorch backend; the default model on val/: +0.44 dB at 0 %% for 10 steps, "
                        "+0.51 for 30, at 5 and 15-18 s a 640x480 GOP on 2 CPU cores). Live, at most the steps "
                        "that fit in 75 %% of the GOP interval, so a GPU's option; offline (--no-realtime, "
                        "mstvsc-eval) all of them. Default 0")


def add_list_models_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list-models", action=ListModels, nargs=0, help="show the shipped models and exit")


def open_codec(args: argparse.Namespace, model: str | None = None) -> Codec:
    """The codec the model options ask for; ``model`` overrides ``--model`` (a peer's announced model)."""
    return load_codec(model or args.model, args.backend, args.device, args.threads, args.precision,
                      getattr(args, "refine", 0))


def add_seed_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=checked(interleaving_seed), default=DEFAULT_SEED, metavar="S",
                   help=f"pre-shared 64-bit interleaving seed (default {DEFAULT_SEED:#x}); must match the peer")


def interleaving_seed(text: str) -> int:
    """``--seed``: an unsigned 64-bit integer, decimal or 0x hexadecimal, refused here rather than after the
    model has loaded."""
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number (decimal, or hexadecimal as 0x...)") from None
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{text!r} is not an unsigned 64-bit number (0 to {(1 << 64) - 1:#x})")
    return value


class ListModels(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        for card in list_models():
            quality = card.data.get("quality", {}).get("rows", [])
            summary = ", ".join(f"{r['loss']:g}: {r['psnr']:.1f} dB" for r in quality)
            print(f"{card.model_id}  CBR {card.config.cbr:.4f}  {summary}")
        parser.exit()


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x480, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 16x16, got {text!r}")
    return w, h


def parse_stream_size(text: str) -> tuple[int, int]:
    """``--size`` of a stream: as :func:`parse_size`, and no larger than every receiver accepts."""
    w, h = parse_size(text)
    if problem := frame_size_problem(w, h):
        raise argparse.ArgumentTypeError(problem)
    return w, h


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run a command body, turning user errors and Ctrl-C into one line and an exit status."""
    try:
        return body()
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2


T = TypeVar("T")


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` that reports ``parse``'s own ValueError message instead of 'invalid value'."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def positive_number(text: str) -> float:
    value = _float(text)
    if not (value > 0.0 and math.isfinite(value)):  # also refuses nan and inf (leave the option out instead)
        raise ValueError(f"{text!r} is not a positive number")
    return value


def non_negative_number(text: str) -> float:
    value = _float(text)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{text!r} is not a non-negative number")
    return value


MAX_FPS = 1000.0  # far beyond any camera or file; the descriptor carries milli-frames per second in 32 bits


def frame_rate(text: str) -> float:
    value = positive_number(text)
    if value > MAX_FPS:
        raise ValueError(f"{text!r} frames per second is more than {MAX_FPS:g}")
    return value


def hop_limit(text: str) -> int:
    """``--ttl``: an IP hop limit, 0 to 255 (0 keeps multicast on this host)."""
    value = _int(text)
    if not 0 <= value <= 255:
        raise ValueError(f"{text!r} is not a hop limit from 0 to 255")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError(f"{text!r} is not a positive whole number")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError(f"{text!r} is not a whole number >= 0")
    return value


def check_output_path(p: argparse.ArgumentParser, option: str, path: Path | None) -> None:
    """Refuse, before anything runs for minutes, an output file whose folder does not exist, cannot take
    a file, or that is a folder itself (found only when the results were written, and then lost)."""
    if path is None:
        return
    if path.is_dir():
        p.error(f"{option}: {str(path)!r} is a directory; name a file")
    if not path.parent.is_dir():
        p.error(f"{option}: no directory {str(path.parent)!r}")
    if path.exists() and not os.access(path, os.W_OK):
        p.error(f"{option}: cannot write {str(path)!r}: permission denied")
    try:  # root passes os.access on any folder, so try: an unnamed file, gone when closed (nothing left behind)
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as error:
        p.error(f"{option}: cannot write in {str(path.parent)!r}: {error.strerror or error}")


def input_location(text: str) -> str:
    """``--input``: a file, a URL, ``-`` (standard input), or ``sample`` for the bundled clip (unless a
    file of that name is here)."""
    if text != SAMPLE_INPUT or Path(text).exists():
        return text
    path = sample_clip_path()
    logging.getLogger("mstvsc_stream").info(
        "--input sample: the bundled clip %s, %d frames at 30 fps (--loop plays it again)", path.name,
        SAMPLE_CLIP_FRAMES)
    return str(path)


def check_resolves(endpoint: Endpoint, *, local: bool) -> None:
    """Resolve an address now, so a typo fails in one line before a model spends seconds loading."""
    run(resolve_endpoint(endpoint, local=local))


def write_json(path: Path, document: object) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")


def serve(
    app: Callable[[], Awaitable[dict[str, object]]], stop: Callable[[], None], stats_json: Path | None
) -> int:
    """Run a streaming app's ``app()`` on the event loop and write the report it returns to ``stats_json``.

    Ctrl-C and SIGTERM call ``stop`` instead of raising KeyboardInterrupt, so the app can shut down
    cleanly (finalise its recording, tell the peer) and still report.
    """

    async def with_signals() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        return await app()

    report = run(with_signals())
    if stats_json is not None:
        write_json(stats_json, report)
    return 0
