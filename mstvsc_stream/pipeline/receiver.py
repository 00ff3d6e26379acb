"""The receiving application: UDP datagrams in, frames out to a window and/or a recording.

Datagrams from hosts ``accept`` excludes are dropped first, before any work is spent on them; those of a
sealed stream (``key``) are then authenticated and checked against replays (:mod:`..net.opening`), then
judged (:mod:`.admission`), then reassembled by the GOP buffer, whose deadlines are polled by a timer;
the buffer also decides which sender is followed (``accept``), when its stream has ended, and holds
made-up GOP numbers to the stream's clock (``guarded``). Released GOPs wait in a short queue for the
decoder (one worker thread, off the event loop); when decoding falls behind, the oldest waiting GOP is
not decoded but shows the last frame again (``gops_held``), so playback never stalls and frames out
still equal frames sent.

How a GOP becomes frames, and why a lost one holds the last frame, is in :mod:`.decoding`. A unicast
receiver reports what arrives back to the sender (:class:`.closedloop.ReceiverReports`) unless ``feedback``
is off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..media import Display
from ..media.mjpeg import MjpegFeed
from ..media.output import FrameOutput
from ..media.recorder import OutputClosed, RecordTarget, record_target
from ..net.endpoint import Endpoint, is_multicast, parse_endpoint
from ..net.gopbuffer import GopBuffer, ReleasedGop
from ..net.opening import DatagramOpener
from ..net.sources import SourcePolicy
from ..net.transport import DatagramReceiver
from ..runtime.base import Codec, backend_name
from ..timings import Timings
from ..wire import DEFAULT_SEED, SessionDescriptor
from .admission import StreamAdmission
from .advice import HELD, RECEIVER_ADVICE, ThrottledWarning
from .closedloop import REPORT_INTERVAL_S, ReceiverReports
from .decoding import GopDecoder, Outcome
from .keyhint import KeyMismatchHint
from .metrics import format_report
from .playout import DecodedGop, Playout
from .preview import PreviewServer

log = logging.getLogger(__name__)

IDLE_CHECKS_PER_PERIOD = 4  # how finely --idle-exit is checked
CATCH_UP_BACKLOG = 2  # decoded GOPs waiting for output beyond which frames go out without pacing


@dataclass(frozen=True)
class ReceiverConfig:
    """How to receive; see ``mstvsc-recv --help`` for the user's view of each field."""

    listen: Endpoint | str
    seed: int = DEFAULT_SEED
    iface: str | None = None  # multicast interface
    display: bool = False
    record: RecordTarget | Path | None = None  # a path: container from the extension (.mp4 H.264, .mkv FFV1)
    max_frames: int | None = None
    duration_s: float | None = None
    idle_exit_s: float | None = None  # silence of the followed stream (or since the first datagram) that ends the run
    stay: bool = False  # keep listening after the end-of-input flag
    playout_margin_s: float = 0.05  # jitter allowance past the GOP's learned arrival spread
    max_pending_gops: int | None = 2  # GOPs waiting for the decoder before the oldest is held; None: never
    status_interval_s: float = 5.0
    key: bytes | None = None  # sealed stream: only datagrams sealed under this key are accepted
    accept: SourcePolicy = SourcePolicy(lock=True)  # which senders are followed, and when another takes over
    preview: Endpoint | None = None  # serve a browser preview (picture and stats) here; host "" is loopback
    feedback: bool = True  # send receiver reports to a unicast sender (congestion control)

    def __post_init__(self) -> None:
        for name in ("duration_s", "idle_exit_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_pending_gops is not None and self.max_pending_gops < 1:
            raise ValueError(f"max_pending_gops must be >= 1 or None, got {self.max_pending_gops}")
        if self.playout_margin_s < 0 or not self.status_interval_s > 0:
            raise ValueError("playout margin must be >= 0 and the status interval positive")


@dataclass(slots=True)
class _Work:
    gop: ReleasedGop
    held: bool = False  # skip decoding: the decoder fell behind


class Receiver:
    """Receives one stream at a time (a new session replaces the old one); ``await run()`` once.

    ``load_model(name)`` opens another installed model when a stream names one; without it, only streams
    of ``codec``'s model are accepted.
    """

    def __init__(self, codec: Codec, config: ReceiverConfig, load_model: Callable[[str], Codec] | None = None) -> None:
        self.codec = codec
        self.config = config
        self._decoder = GopDecoder(codec, config.seed, load_model)
        self._buffer = GopBuffer(playout_margin_s=config.playout_margin_s, sources=config.accept, guarded=True,
                                 learn_span=True)
        self._opener = DatagramOpener(config.key) if config.key is not None else None
        self._key_hint = KeyMismatchHint(sealed=config.key is not None)
        self._admission = StreamAdmission(config.seed, self._decoder.models, codec.model_id)
        self._transport: DatagramReceiver | None = None
        self._playout: Playout | None = None
        self._preview: PreviewServer | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._queue: deque[_Work | None] = deque()  # None: no more input, finish after what is queued
        self._queued = asyncio.Event()
        self._decoded: asyncio.Queue[DecodedGop | None] = asyncio.Queue()
        self._done = asyncio.Event()
        self._input_closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._first_datagram: float | None = None  # --idle-exit counts from here until a stream is followed
        self._announced: SessionDescriptor | None = None
        self._first_counter: int | None = None
        self._outcomes = dict.fromkeys(Outcome, 0)
        self._holds = 0  # GOPs marked to be held so far
        self._behind = ThrottledWarning(log)
        self._reports = ReceiverReports(config.key)
        self.end_reason = ""

    @property
    def local_address(self) -> Endpoint:
        if self._transport is None:
            raise RuntimeError("the receiver is not started")
        return self._transport.local_address

    @property
    def latency_ms(self) -> Timings:
        """Capture-to-output latency of the GOPs played so far (newest samples)."""
        return self._playout.latency_ms if self._playout is not None else Timings()

    async def start(self) -> Endpoint:
        """Opens the window and binds the socket (so a caller can learn the port); ``run`` calls it too."""
        if self._transport is None:
            self._playout = Playout(self._open_output(), self.config.max_frames)
            self._transport = await DatagramReceiver.open(
                self.config.listen, self._on_datagram, iface=self.config.iface
            )
            log.info("listening on %s, model %s", self._transport.local_address, self.codec.model_id)
        return self._transport.local_address

    def _open_output(self) -> FrameOutput | None:
        """The window and the recording, on a thread of their own (the window opens now)."""
        record = self.config.record
        if record is not None and not isinstance(record, RecordTarget):
            record = record_target(record)
        feed = None
        if self.config.preview is not None:
            feed = MjpegFeed()
            self._preview = PreviewServer(feed, self.config.preview, sealed=self.config.key is not None)
            self._preview.start()
        if not self.config.display and record is None and feed is None:
            return None
        output = FrameOutput((lambda: Display("mstvsc-recv")) if self.config.display else None, record, preview=feed)
        try:
            output.start()
        except BaseException:
            if self._preview is not None:
                self._preview.close()
            raise
        return output

    def stop(self, reason: str = "stopped") -> None:
        """End now, dropping what has not been played yet (Ctrl-C, --duration)."""
        self.end_reason = self.end_reason or reason
        self._done.set()

    def finish(self, reason: str = "finished") -> None:
        """Release every GOP that has begun to arrive, play it out, then end."""
        if self._input_closed:
            return
        self._deliver(self._buffer.poll(math.inf))
        self._close_input(reason)

    async def run(self) -> dict[str, object]:
        """Receive until the end of the input (unless ``stay``), a limit or :meth:`stop`; returns :meth:`report`."""
        await self.start()
        loop = asyncio.get_running_loop()
        decoding = asyncio.create_task(self._decode_loop())
        playing = asyncio.create_task(self._playout_loop())
        helpers = [asyncio.create_task(self._report_periodically())]
        if self._preview is not None:
            helpers.append(asyncio.create_task(self._preview.publish_every(self.report, self._bytes_received)))
        if self.config.feedback and not self._listens_to_group():
            helpers.append(asyncio.create_task(self._send_reports()))
        if self.config.idle_exit_s is not None:
            helpers.append(asyncio.create_task(self._exit_when_idle(self.config.idle_exit_s)))
        duration = None
        if self.config.duration_s is not None:
            duration = loop.call_later(self.config.duration_s, self.stop, "duration")
        done = asyncio.create_task(self._done.wait())
        try:
            await asyncio.wait({done, decoding, playing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._input_closed = True
            self._shut_down([done, decoding, playing, *helpers], duration)
        for task in (decoding, playing):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        report = self.report()
        log.info("receiver finished (%s): %s", self.end_reason, format_report(report))
        return report

    def report(self) -> dict[str, object]:
        """Everything ``--stats-json`` writes: reception, decoding, output and timing counters."""
        b = self._buffer.stats
        refused = self._admission.refused_by_reason
        if self._opener is not None:
            refused = refused + self._opener.dropped_by_reason
        playout = self._playout
        latency = self.latency_ms
        return {
            "model": self.codec.model_id,
            "backend": backend_name(self.codec),
            "end_reason": self.end_reason,
            "sessions": b.sessions,
            "takeovers": b.takeovers,
            "resyncs": b.resyncs,
            "first_gop_counter": self._first_counter,
            "gops_received": b.gops_received,
            "gops_released": b.gops_released,
            "gops_decoded": self._outcomes[Outcome.DECODED],
            "gops_held": self._outcomes[Outcome.HELD],
            "gops_concealed": self._outcomes[Outcome.CONCEALED],
            "gops_late_dropped": b.gops_late_dropped,
            "segments_expected": b.segments_expected,
            "segments_received": b.segments_received,
            "segment_loss_rate": (
                round(1 - b.segments_received / b.segments_expected, 4) if b.segments_expected else None
            ),
            "segments_late": b.segments_late,
            "segments_duplicate": b.segments_duplicate,
            "segments_held": b.segments_held,
            "segments_orphaned": b.segments_orphaned,
            "descriptors_received": b.descriptors_received,
            "descriptors_inferred": b.descriptors_inferred,
            "frames_out": playout.frames_out if playout is not None else 0,
            "frames_dropped_output": playout.output.frames_dropped if playout and playout.output else 0,
            "datagrams": self._transport.stats.datagrams if self._transport is not None else 0,
            "invalid_datagrams": b.invalid_datagrams + sum(refused.values()),
            "invalid_by_reason": dict(sorted((b.invalid_by_reason + refused).items())),
            "decode_ms_p50": self._decoder.decode_ms.percentile(50),
            "decode_ms_p95": self._decoder.decode_ms.percentile(95),
            "latency_ms_p50": latency.percentile(50),
            "latency_ms_p95": latency.percentile(95),
            "reports_sent": self._reports.sent,
        }

    # --- event loop: datagrams, deadlines, queueing ---------------------------------------------------

    def _on_datagram(self, datagram: bytes, addr: tuple, arrival: float) -> None:
        if self._first_datagram is None:
            self._first_datagram = arrival
        if self._input_closed or not self._buffer.hears(addr):
            return
        session_id = None
        if self._opener is not None:
            opened = self._opener.open(datagram)
            self._key_hint.opened(datagram, addr, opened is not None)
            if opened is None:
                return
            datagram, session_id = opened
        else:
            self._key_hint.plain(datagram, addr)
        if not self._admission.admit(datagram, addr, followed=addr == self._buffer.source):
            return
        self._deliver(self._buffer.push(datagram, addr, arrival, session_id))
        if addr == self._buffer.source:
            self._reports.segment(datagram, self._buffer.descriptor, session_id, arrival)
        self._announce()
        self._arm_timer()

    def _announce(self) -> None:
        """One log line per session followed; for a change of stream, what changed and what follows."""
        descriptor, before = self._buffer.descriptor, self._announced
        if descriptor is None or (before is not None and descriptor.session_id == before.session_id):
            return
        self._announced = descriptor
        if self._opener is not None:
            self._opener.follow(descriptor.session_id)  # pin the new session's replay window
        source = self._buffer.source
        log.info(
            "receiving session %016x from %s: %dx%d @ %.2f fps, model %s, %d segments of %d B per GOP",
            descriptor.session_id, Endpoint(str(source[0]), int(source[1])), descriptor.width, descriptor.height,
            descriptor.fps, descriptor.model_id, descriptor.n_segments, descriptor.payload_size,
        )  # fmt: skip
        if before is None:
            return
        log.info("the sender restarted (session %016x replaced %016x)", descriptor.session_id, before.session_id)
        if (descriptor.width, descriptor.height) != (before.width, before.height) and self.config.record:
            log.info("the recording keeps its first frame size; frames of the new size are scaled into it")

    def _arm_timer(self) -> None:
        deadline = self._buffer.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = self._timer_deadline = None
        if not self._input_closed:
            self._deliver(self._buffer.poll(time.monotonic()))
            self._announce()  # a waiting sender may have taken over
            self._arm_timer()

    def _deliver(self, released: list[ReleasedGop]) -> None:
        for gop in released:
            if self._first_counter is None:
                self._first_counter = gop.counter
            self._enqueue(_Work(gop))
        if self._buffer.finished and not self.config.stay:  # the followed session's end flag held
            self._close_input("end_of_input")

    def _enqueue(self, work: _Work) -> None:
        self._queue.append(work)
        limit = self.config.max_pending_gops
        waiting = [w for w in self._queue if w is not None and not w.held]
        if limit is not None and len(waiting) > limit:
            waiting[0].held = True
            self._holds += 1
            interval = work.gop.descriptor.gop_duration_s * 1000
            self._behind.warn(lambda: f"{self._holds} GOPs {HELD} so far: decoding needs more than the "
                              f"{interval:.0f} ms GOP interval (decode {self._decoder.decode_ms.summary()}); "
                              f"{RECEIVER_ADVICE}")
        self._queued.set()

    def _close_input(self, reason: str) -> None:
        if self._input_closed:
            return
        self.end_reason = self.end_reason or reason
        self._input_closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._queue.append(None)
        self._queued.set()

    # --- decoding and output --------------------------------------------------------------------------

    async def _decode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._queued.clear()
                await self._queued.wait()
            work = self._queue.popleft()
            if work is None:  # end of input; nothing follows, and run() cancels this loop when playout ends
                await self._decoded.put(None)
                continue
            frames, outcome = await loop.run_in_executor(self._worker, self._decoder.render, work.gop, work.held)
            self._outcomes[outcome] += 1
            descriptor = work.gop.descriptor
            await self._decoded.put(DecodedGop(frames, descriptor, not work.gop.descriptor_inferred))

    async def _playout_loop(self) -> None:
        playout = self._playout
        assert playout is not None
        while (gop := await self._decoded.get()) is not None:
            await playout.play(gop, catch_up=self._decoded.qsize() >= CATCH_UP_BACKLOG)
            if playout.limit_reached:
                self.stop("frames")
                return
            if playout.window_closed:
                self.stop("window_closed")
                return
            if playout.output is not None and playout.output.ended is not None:
                self._output_ended(playout.output.ended)
                return
        self.stop(self.end_reason or "finished")

    def _bytes_received(self) -> int:
        return self._transport.stats.bytes if self._transport is not None else 0

    def _output_ended(self, error: Exception) -> None:
        """A pipe whose reader left ends the run cleanly, with one line; any other output error ends it
        with that error."""
        if not isinstance(error, OutputClosed):
            raise error
        log.info("%s; stopping", error)
        self.stop("output_closed")

    # --- housekeeping ---------------------------------------------------------------------------------

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            r = self.report()
            loss = r["segment_loss_rate"]
            log.info(
                "%s GOPs (decoded %s, %s %s, concealed %s), segment loss %s, %s frames out, %s invalid, "
                "decode %s, latency %s",
                r["gops_released"], r["gops_decoded"], r["gops_held"], HELD, r["gops_concealed"],
                "n/a" if loss is None else f"{loss:.1%}", r["frames_out"], r["invalid_datagrams"],
                self._decoder.decode_ms.summary(), self._playout.latency_ms.summary() if self._playout else "n/a",
            )  # fmt: skip

    def _listens_to_group(self) -> bool:
        listen = self.config.listen
        return is_multicast((parse_endpoint(listen) if isinstance(listen, str) else listen).host)

    async def _send_reports(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            if self._transport is not None and not self._input_closed:
                backlog = len(self._queue) + self._decoded.qsize()
                self._reports.send(self._transport.send_to, self._buffer.source, backlog)

    async def _exit_when_idle(self, idle_s: float) -> None:
        while True:
            await asyncio.sleep(idle_s / IDLE_CHECKS_PER_PERIOD)
            if self._first_datagram is None:
                continue
            # only the followed stream's datagrams keep the run alive, not junk or a refused stream
            heard = max(self._first_datagram, self._buffer.last_heard or -math.inf)
            if time.monotonic() - heard >= idle_s:
                self.finish("idle")
                return

    def _shut_down(self, tasks: list[asyncio.Task], duration: asyncio.TimerHandle | None) -> None:
        for task in tasks:
            task.cancel()
        for handle in (duration, self._timer):
            if handle is not None:
                handle.cancel()
        if self._transport is not None:
            self._transport.close()
        if self._playout is not None:
            self._playout.close()
        if self._preview is not None:
            self._preview.close()
            self._preview.feed.close()
        self._worker.shutdown(wait=False, cancel_futures=True)
