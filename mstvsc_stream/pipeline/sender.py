"""The sending application: frames in, encoded GOPs out as paced UDP datagrams.

Three activities overlap so none waits for another: capture (its own thread, or frames read on demand
offline), encoding (one worker thread, off the event loop) and sending (the event loop, one GOP's
datagrams spread over ``pacing`` of the GOP interval while the next GOP encodes). When encoding is
slower than real time, a live sender keeps only the newest complete GOP waiting and drops the one it
replaces (counted): GOPs that are never sent take no GOP counter, so the receiver conceals nothing for
them and latency stays at about one encode. Offline (``realtime=False``) nothing is dropped; the input
is simply read as fast as the encoder takes it.

When encoding cannot keep up later on, ``degrade`` chooses what gives (:mod:`.adaptation`): whole GOPs
(``drop``), the frame rate or the frame size. Frames are captured at the first rung; a GOP is gathered
at the policy's rate (every other frame at half rate) and scaled to its size when encoded, and the
first GOP of another rung starts a new session from the same socket, which the receiver follows. With a
choice other than ``drop``, up to 3 GOPs may wait for the encoder, so a lag turns into a step down
rather than into dropped GOPs.

With a ``key`` every datagram is sealed (:mod:`..wire.sealing`): payloads shrink by the sealing overhead
so datagrams keep their size, the rate cap counts the overhead, and a session that has used up its
nonces gives way to a new one.

A codec that refines its latents (``--refine``, :class:`~..runtime.base.Refining`) is given, live,
:data:`REFINE_SHARE` of the GOP interval per encode and takes the steps that fit, so refinement uses the
time the encoder would idle and never drops a GOP; the adaptation judges the encoder by its own pass.

Receiver reports coming back on the sending socket drive the congestion controller
(:mod:`.closedloop`), whose target also feeds the adaptation policy's link input; ``feedback=False`` or
a multicast destination keeps the sender open loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..media import CaptureThread, FrameSource
from ..net.endpoint import Endpoint
from ..net.transport import DatagramSender
from ..runtime.base import Codec, Refining, backend_name
from ..timings import Timings
from ..wire import (
    DEFAULT_SEED,
    DESCRIPTOR_COPIES,
    GopPacketizer,
    SessionDescriptor,
    new_session_id,
    payload_size_for_packets,
    split_model_id,
)
from ..wire.limits import stream_limit_problem
from ..wire.sealing import SEAL_OVERHEAD, Sealer, sealed_payload_size
from .adaptation import (
    CPU,
    AdaptationConfig,
    AdaptationPolicy,
    Rung,
    Switch,
    blank_gop_seconds,
    build_ladder,
    graphs_at_hand,
)
from .advice import DEGRADED, DROPPED, SENDER_ADVICE, ThrottledWarning
from .batching import END_OF_INPUT_COPIES, end_of_input_datagrams, gop_datagrams, sending_labels, stream_kbps
from .closedloop import SenderLoop
from .gops import CapturedGop, FrameFeed, PulledFrames, gather_gops
from .metrics import format_report

log = logging.getLogger(__name__)

_Mailbox = asyncio.Queue  # of CapturedGop, then None (input ended) or the Exception that ended capture
CAPTURE_CLOSE_S = 5.0  # how long a sender that ends waits, off the event loop, for its source to close
# GOPs waiting for the encoder before the oldest is dropped: one with --degrade drop (latency stays at one
# encode); a few with framerate or resolution, so a lag is worked off by stepping down, not by dropping
DEGRADE_BACKLOG = 3
WARM_UP_TIMED_RUNS = 2  # timed encodes per rung size at start-up (with more than one rung)
REFINE_SHARE = 0.75  # of the GOP interval a live encode may fill with refinement (the rest is jitter headroom)


@dataclass(frozen=True)
class SenderConfig:
    """How to send; see ``mstvsc-send --help`` for the user's view of each field."""

    destination: Endpoint | str
    seed: int = DEFAULT_SEED
    payload_size: int | None = None  # bytes per segment, a multiple of 3; None: the wire default
    packets: int | None = None  # or: segments per GOP (the paper's N_p)
    kbps: float | None = None  # cap on our datagram bytes; sends only the segments that fit
    ttl: int = 1  # multicast hops
    iface: str | None = None  # multicast interface
    pacing: float = 0.25  # share of the GOP interval each GOP's datagrams are spread over
    realtime: bool = True  # live: capture thread, drop GOPs when encoding lags
    pace_input: bool = True  # with realtime: play the source at its frame rate (files; cameras pace themselves)
    max_frames: int | None = None
    stats_interval_s: float = 5.0
    key: bytes | None = None  # seal every datagram with this pre-shared 32-byte key
    feedback: bool = True  # follow receiver reports (congestion control); False: open loop
    degrade: str = "drop"  # what gives when encoding falls behind: drop (GOPs), framerate or resolution
    adaptation: AdaptationConfig = AdaptationConfig()  # when to step down and back up

    def __post_init__(self) -> None:
        if not 0.0 < self.pacing <= 1.0:
            raise ValueError(f"pacing must be a fraction in (0, 1], got {self.pacing}")
        if self.payload_size is not None and self.packets is not None:
            raise ValueError("give a payload size or a packet count, not both")
        if self.kbps is not None and not self.kbps > 0:
            raise ValueError(f"kbps must be positive, got {self.kbps}")
        if self.max_frames is not None and self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {self.max_frames}")
        if not self.stats_interval_s > 0:
            raise ValueError(f"stats interval must be positive, got {self.stats_interval_s}")


@dataclass
class SenderStats:
    gops_sent: int = 0
    gops_dropped: int = 0  # complete GOPs skipped because encoding fell behind real time
    segments_sent: int = 0
    descriptors_sent: int = 0
    encode_ms: Timings = field(default_factory=Timings)
    refine_steps: int = 0  # --refine: steps taken over all GOPs (fewer than asked when the live budget ran out)


class Sender:
    """Streams ``source`` encoded by ``codec`` to ``config.destination``; ``await run()`` once.

    The constructor checks everything that can be checked before the network (payload size, the limits
    every receiver applies, rate cap against the stream's needs) and raises ValueError with a one-line
    reason.
    """

    def __init__(self, codec: Codec, source: FrameSource, config: SenderConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.codec = codec
        self._refining = isinstance(codec, Refining) and codec.refine_steps > 0
        self.source = source
        self.config = config
        # resolution steps only to sizes with graphs at hand
        ladder = build_ladder(config.degrade, *source.size, source.fps, codec.gop, graphs_at_hand(codec))
        self.policy = AdaptationPolicy(ladder, config.adaptation, clock)
        self._started_at = time.time()  # the wall clock at the policy's time 0, for reports
        self._overhead = 0 if config.key is None else SEAL_OVERHEAD
        self.loop = SenderLoop(config.kbps, config.key, self._overhead, enabled=config.feedback)
        self._start_session(self.policy.rung)  # the first rung's checks raise before anything opens
        self.policy.ladder = [replace(rung, kbps=stream_kbps(self._session_for(rung)[0], overhead=self._overhead))
                              for rung in ladder]
        self.stats = SenderStats()
        self._capture: CaptureThread | None = None
        self._feed: FrameFeed | None = None
        self._transport: DatagramSender | None = None
        self._work: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._behind = ThrottledWarning(log, clock)

    def _session_for(self, rung: Rung) -> tuple[SessionDescriptor, GopPacketizer]:
        """A new session's descriptor (GOP counter 0) and packetizer for frames of ``rung``."""
        cfg = self.config
        n_elements = self.codec.latent_length(rung.height, rung.width)
        payload_size = cfg.payload_size
        if cfg.packets is not None:
            payload_size = payload_size_for_packets(n_elements, cfg.packets)
        if cfg.key is not None:
            payload_size = sealed_payload_size(n_elements, payload_size)
        packetizer = GopPacketizer(n_elements, cfg.seed, payload_size)
        problem = stream_limit_problem(rung.width, rung.height, n_elements, packetizer.n_segments)
        if problem:
            raise ValueError(f"receivers refuse this stream: {problem}")
        name, weights_hash = split_model_id(self.codec.model_id)
        descriptor = SessionDescriptor(
            new_session_id(), 0, 0, rung.width, rung.height, max(1, round(rung.fps * 1000)), self.codec.gop,
            n_elements, packetizer.payload_size, packetizer.n_segments, packetizer.seed_fingerprint, name,
            weights_hash,
        )  # fmt: skip
        return descriptor, packetizer

    def _start_session(self, rung: Rung) -> None:
        self._rung = rung
        self.descriptor, self.packetizer = self._session_for(rung)
        self._sealer = None if self.config.key is None else Sealer(self.config.key, self.descriptor.session_id)
        self.loop.follow(self.descriptor)  # the controller keeps its reading of the link across sessions
        self._next_counter = 0

    @property
    def segments_per_gop(self) -> int:
        """Segments of each GOP that the rate cap (``--kbps``) lets out, before the controller's cut."""
        return self.loop.cap_segments

    @property
    def frames_sent(self) -> int:
        return self.stats.gops_sent * self.codec.gop

    def stop(self) -> None:
        """End the stream (a signal handler may call this); ``run`` then returns normally.

        The first call ends it cleanly: capture stops, the GOP being encoded is still sent, then the
        end-of-input descriptors, so the receiver finalises its recording. A second call ends it at once.
        """
        if self._stop_requested and self._work is not None:
            self._work.cancel()
        self._stop_requested = True
        if self._feed is not None:
            self._feed.stop()

    async def run(self) -> dict[str, object]:
        """Stream until the input ends or :meth:`stop`; returns :meth:`report`. Capture and socket errors
        propagate."""
        if self._work is not None:
            raise RuntimeError("a Sender runs once")
        if not self._stop_requested:
            self._work = asyncio.create_task(self._stream())
            try:
                await self._work
            except asyncio.CancelledError:
                if not self._stop_requested:
                    raise
        return self.report()

    def report(self) -> dict[str, object]:
        """Counters for logs and scripts, transport counters and the application bitrate included."""
        stats, transport = self.stats, self._transport
        wire = transport.stats if transport is not None else None
        gop_seconds = stats.gops_sent * self.descriptor.gop_duration_s
        sent_bytes = wire.bytes if wire else 0
        return {
            "session_id": f"{self.descriptor.session_id:016x}",
            "model": self.codec.model_id,
            "backend": backend_name(self.codec),
            "frames_sent": self.frames_sent,
            "gops_sent": stats.gops_sent,
            "gops_dropped": stats.gops_dropped,
            "capture_frames_dropped": self._capture.dropped if self._capture is not None else 0,
            "segments_per_gop": f"{self.segments_per_gop}/{self.packetizer.n_segments}",
            "segments_sent": stats.segments_sent,
            "segments_withheld": self.loop.withheld_by_cap + self.loop.withheld_by_controller,
            "descriptors_sent": stats.descriptors_sent,
            "datagrams": wire.datagrams if wire else 0,
            "bytes": sent_bytes,
            "send_errors": (wire.send_errors + wire.dropped) if wire else 0,
            "stream_kbps": round(sent_bytes * 8 / gop_seconds / 1000, 1) if gop_seconds else None,
            "encode_ms_p50": stats.encode_ms.percentile(50),
            "encode_ms_p95": stats.encode_ms.percentile(95),
            **({"refine_steps_per_gop": round(stats.refine_steps / stats.gops_sent, 1) if stats.gops_sent else None}
               if self._refining else {}),
            "degrade": self.config.degrade,
            "started_at": round(self._started_at, 3),
            **self.policy.summary(),
            **self.loop.report(),
        }

    async def _stream(self) -> None:
        cfg = self.config
        encoder = ThreadPoolExecutor(1, thread_name_prefix="encode")
        try:
            self._transport = transport = await DatagramSender.open(
                cfg.destination, ttl=cfg.ttl, iface=cfg.iface, kbps=cfg.kbps, on_datagram=self.loop.on_datagram
            )
            self.loop.enabled = cfg.feedback and not transport.destination.is_multicast  # reports are unicast
            if cfg.realtime:  # the first encode opens sessions and buffers: pay for it before the clock runs
                costs = await asyncio.get_running_loop().run_in_executor(encoder, self._warm_up)
                self.policy.ladder = [replace(rung, cost_s=costs[rung.width, rung.height])
                                      for rung in self.policy.ladder]
                if (why := self.policy.start_where_it_fits()) is not None:
                    self._start_session(self.policy.rung)
                    log.warning("%s: %s; starting at %s (--degrade %s)", CPU, why, self.policy.rung.label,
                                cfg.degrade)
        except BaseException:
            # from run() on the source is ours, and the feed that would close it never opened
            self.source.close()
            if self._transport is not None:
                self._transport.close()
            encoder.shutdown(wait=False)
            raise
        log.info(
            "sending %s to %s: session %016x, model %s, %d of %d segments of %d B per GOP",
            self.policy.rung.label, transport.destination.endpoint, self.descriptor.session_id,
            self.codec.model_id, self.segments_per_gop, self.packetizer.n_segments, self.packetizer.payload_size,
        )  # fmt: skip
        self._feed = feed = self._open_feed()
        reader = ThreadPoolExecutor(1, thread_name_prefix="frames")
        mailbox: _Mailbox = asyncio.Queue(maxsize=1 if len(self.policy.ladder) == 1 else DEGRADE_BACKLOG)
        gathering = asyncio.create_task(self._gather(feed, reader, mailbox))
        reporting = asyncio.create_task(self._report_periodically())
        try:
            await self._encode_and_send(mailbox, encoder, transport)
        finally:
            gathering.cancel()
            reporting.cancel()
            feed.stop()
            transport.close()
            reader.shutdown(wait=False, cancel_futures=True)
            encoder.shutdown(wait=False, cancel_futures=True)
            log.info("sender finished: %s", format_report(self.report()))
        if self._capture is not None and not await asyncio.to_thread(self._capture.join, CAPTURE_CLOSE_S):
            log.warning("the source is still blocked in a read after %.0f s; leaving it behind", CAPTURE_CLOSE_S)

    def _open_feed(self) -> FrameFeed:
        if not self.config.realtime:
            return PulledFrames(self.source)
        self._capture = CaptureThread(self.source, capacity=2 * self.codec.gop, realtime=self.config.pace_input)
        return self._capture.start()

    async def _gather(self, feed: FrameFeed, reader: ThreadPoolExecutor, mailbox: _Mailbox) -> None:
        """Posts whole GOPs, then None at the end of the input or the error that ended capture."""
        ending: Exception | None = None
        try:
            top = self.policy.ladder[0].fps
            step = lambda: max(1, round(top / self.policy.rung.fps))  # noqa: E731
            async for gop in gather_gops(feed, self.codec.gop, reader, self.config.max_frames, step):
                if not self.config.realtime:
                    await mailbox.put(gop)
                    continue
                if mailbox.full():
                    mailbox.get_nowait()
                    self.stats.gops_dropped += 1
                    self._warn_dropped()
                mailbox.put_nowait(gop)
        except Exception as error:  # raised again by the encoding loop, in the caller's task
            ending = error
        feed.stop()  # --frames may end the input before the source does
        await mailbox.put(ending)

    async def _encode_and_send(self, mailbox: _Mailbox, encoder: ThreadPoolExecutor, transport: DatagramSender) -> None:
        loop = asyncio.get_running_loop()
        pacing = self.config.pacing
        sending: asyncio.Task[None] | None = None
        last: SessionDescriptor | None = None
        failure: Exception | None = None
        try:
            while not self._stop_requested and (gop := await mailbox.get()) is not None:
                if isinstance(gop, Exception):
                    failure = gop  # the input ended with an error: still tell the receiver it ended
                    break
                self._follow_rung(gop)
                if self._refining and self.config.realtime:
                    self.codec.refine_budget_s = REFINE_SHARE * self.policy.rung.budget_s
                started = time.perf_counter()
                segments = await loop.run_in_executor(encoder, self._encode, gop.frames)
                seconds = time.perf_counter() - started
                self.stats.encode_ms.add(seconds * 1000)
                if self._refining:  # the rung is chosen by what the encoder's own pass needs
                    self.stats.refine_steps += self.codec.refined_steps
                    seconds -= self.codec.refined_s
                last = self._descriptor_for(gop)
                if self.config.realtime and (switch := self.policy.observe_encode(seconds)) is not None:
                    self._announce(switch)
                if sending is not None:
                    await sending  # the previous GOP's datagrams are still being paced out
                labels = self._labels_for(last)
                span = self.loop.pacing_span(pacing * last.gop_duration_s, len(labels), last.gop_duration_s)
                datagrams = self._datagrams(last, segments, labels)
                sending = asyncio.create_task(transport.send_paced(datagrams, span, self.loop.sent))
            if sending is not None:
                await sending
            if last is not None:
                ending = self._sealed(end_of_input_datagrams(last))
                self.stats.descriptors_sent += len(ending)
                await transport.send_paced(ending, pacing * last.gop_duration_s)
            if failure is not None:
                raise failure
        finally:
            if sending is not None:
                sending.cancel()

    def _warm_up(self) -> dict[tuple[int, int], float | None]:
        """Encodes a blank GOP at every size of the ladder (sessions open, buffers grow); with more than
        one rung, the quicker of two more encodes per size is what each costs (the policy's start rung and
        step-up prediction; the quicker, since a stray preemption is no property of the rung)."""
        runs = WARM_UP_TIMED_RUNS if len(self.policy.ladder) > 1 else 0
        costs: dict[tuple[int, int], float | None] = {}
        for rung in self.policy.ladder:
            if (rung.width, rung.height) not in costs:
                costs[rung.width, rung.height] = blank_gop_seconds(self.codec, rung.width, rung.height, runs, min)
        return costs

    def _encode(self, frames: np.ndarray) -> list[bytes]:
        """Encoder thread: codes, interleaved and cut into segment payloads (frames scaled to the session's
        size first when a resolution step is in force)."""
        width, height = self.descriptor.width, self.descriptor.height
        if frames.shape[1:3] != (height, width):
            frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])
        return self.packetizer.segments(self.codec.encode(frames))

    def _descriptor_for(self, gop: CapturedGop) -> SessionDescriptor:
        needed = self.packetizer.n_segments + DESCRIPTOR_COPIES + END_OF_INPUT_COPIES
        if self._sealer is not None and self._sealer.remaining < needed:
            self._renew_session(self._sealer)
        counter, self._next_counter = self._next_counter, self._next_counter + 1
        return replace(self.descriptor, gop_counter=counter, capture_time_us=int(gop.captured_at * 1_000_000))

    def _announce(self, switch: Switch) -> None:
        advice = f"; {SENDER_ADVICE}" if switch.down else ""
        log.warning("%s: %s; stepping %s to %s%s", switch.reason, switch.detail, "down" if switch.down else "back up",
                    switch.to.label, advice)  # fmt: skip

    def _follow_rung(self, gop: CapturedGop) -> None:
        """A new session, from the same socket, when this GOP is to go out at another size or rate than the
        current session's: the policy's size, the rate the GOP was gathered at. GOPs gathered before a
        change of rate still go out in the old session, so every session's frames have its rate."""
        rung = replace(self.policy.rung, fps=self.policy.ladder[0].fps / gop.frame_step)
        if (rung.width, rung.height, rung.fps) == (self._rung.width, self._rung.height, self._rung.fps):
            return
        before = self.descriptor.session_id
        self._start_session(rung)
        log.info("session %016x replaces %016x: %s", self.descriptor.session_id, before, rung.label)

    def _warn_dropped(self) -> None:
        budget = self.policy.rung.budget_s * 1000
        self._behind.warn(lambda: f"{self.stats.gops_dropped} GOPs {DROPPED} so far: the encoder needs more than "
                          f"the {budget:.0f} ms GOP interval (encode {self.stats.encode_ms.summary()}); {SENDER_ADVICE}")

    def _labels_for(self, descriptor: SessionDescriptor) -> list[int]:
        """The per-GOP rate decision: how many segments go (``--kbps`` and the congestion controller, in
        :meth:`.SenderLoop.segments_for`) and which labels (rotating, :func:`.sending_labels`); the
        controller's target also feeds the adaptation policy's link input."""
        count = self.loop.segments_for(descriptor)
        if self.config.realtime and (switch := self.policy.observe_link(self.loop.link_target())) is not None:
            self._announce(switch)
        return sending_labels(descriptor.n_segments, count, descriptor.gop_counter)

    def _datagrams(self, descriptor: SessionDescriptor, segments: list[bytes], labels: list[int]) -> list[bytes]:
        stats = self.stats
        stats.gops_sent += 1
        stats.segments_sent += len(labels)
        stats.descriptors_sent += DESCRIPTOR_COPIES
        return self._sealed(gop_datagrams(descriptor, segments, labels, DESCRIPTOR_COPIES))

    def _sealed(self, datagrams: list[bytes]) -> list[bytes]:
        return datagrams if self._sealer is None else [self._sealer.seal(datagram) for datagram in datagrams]

    def _renew_session(self, spent: Sealer) -> None:
        """A new session id, hence fresh nonces, for a session that has sealed all it may under the key;
        the receiver follows it like a restarted sender."""
        assert self.config.key is not None
        self.descriptor = replace(self.descriptor, session_id=new_session_id())
        self.loop.renamed(spent.session_id, self.descriptor.session_id)
        self._sealer = Sealer(self.config.key, self.descriptor.session_id)
        log.info("session %016x used up its nonces; continuing as session %016x", spent.session_id,
                 self.descriptor.session_id)  # fmt: skip

    async def _report_periodically(self) -> None:
        interval, stats = self.config.stats_interval_s, self.stats
        previous_bytes = 0
        while True:
            await asyncio.sleep(interval)
            sent_bytes = self._transport.stats.bytes if self._transport is not None else 0
            kbps = (sent_bytes - previous_bytes) * 8 / interval / 1000
            previous_bytes = sent_bytes
            policy = self.policy
            degraded = f", {DEGRADED} to {policy.rung.label} ({policy.switches[-1].reason})" if policy.level else ""
            log.info(
                "sent %d GOPs, %d %s, %d segments, %.1f kbps, encode %s%s, %s",
                stats.gops_sent, stats.gops_dropped, DROPPED, stats.segments_sent, kbps,
                stats.encode_ms.summary(), degraded, self.loop.status(),
            )  # fmt: skip
