"""mstvsc-recv --http: the browser preview of a headless receiver.

The HTTP rules (Host header, client limits, loopback by default) are checked with plain sockets; the page
itself in a real headless browser (Debian's chromium and chromium-driver, driven by selenium): it loads,
the picture updates, and the stats follow the loss the stream suffers.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import shutil
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from mstvsc_stream.media import read_frames, sample_clip_path
from mstvsc_stream.media.mjpeg import MjpegFeed
from mstvsc_stream.net.endpoint import Endpoint
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.transport import DatagramSender
from mstvsc_stream.pipeline.batching import gop_datagrams
from mstvsc_stream.pipeline.preview import MAX_VIEWERS, PreviewServer, StatsHistory
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.wire import (
    DEFAULT_SEED,
    FLAG_END_OF_INPUT,
    GopPacketizer,
    SessionDescriptor,
    seed_fingerprint,
    split_model_id,
)

pytestmark = pytest.mark.timeout(120)


def get(url_port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", url_port, timeout=10)
    headers = {} if host is None else {"Host": host}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read() if response.status != 200 or path != "/stream.mjpg" else b""
    status = response.status
    connection.close()
    return status, body


@pytest.fixture
def server() -> PreviewServer:
    feed = MjpegFeed(max_fps=20)
    preview = PreviewServer(feed, Endpoint("", 0))
    preview.start()
    yield preview
    preview.close()
    feed.close()


def port_of(preview: PreviewServer) -> int:
    return int(preview.url.rsplit(":", 1)[1].strip("/"))


def test_it_listens_on_loopback_unless_told_otherwise(server: PreviewServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")


def test_the_page_its_script_and_stats_are_served_with_strict_headers(server: PreviewServer) -> None:
    port = port_of(server)
    status, page = get(port, "/")
    assert status == 200 and b'src="/stream.mjpg"' in page and b'src="/preview.js"' in page
    assert get(port, "/preview.js")[0] == 200 and get(port, "/preview.css")[0] == 200
    assert get(port, "/stats.json") == (200, b"{}")
    assert get(port, "/nothing")[0] == 404
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/")
    headers = connection.getresponse().headers
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True), ("10.1.2.3", True),
    ("evil.example:8080", False), ("127.0.0.1.nip.io:8080", False), ("", False),
])  # fmt: skip
def test_the_host_header_guards_against_dns_rebinding(server: PreviewServer, host: str, allowed: bool) -> None:
    assert server.host_allowed(host) is allowed
    assert (get(port_of(server), "/stats.json", host=host or " ")[0] == 200) is allowed


def test_viewers_of_the_picture_are_limited(server: PreviewServer) -> None:
    port = port_of(server)
    streams = []
    try:
        for _ in range(MAX_VIEWERS):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/stream.mjpg")
            response = connection.getresponse()
            assert response.status == 200
            streams.append(connection)
        assert get(port, "/stream.mjpg")[0] == 503
        assert get(port, "/stats.json")[0] == 200, "the page still answers"
    finally:
        for connection in streams:
            connection.close()


def test_another_host_is_served_only_when_named_and_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    feed = MjpegFeed()
    preview = PreviewServer(feed, Endpoint("0.0.0.0", 0), sealed=True)  # listens; the test talks on loopback
    with caplog.at_level(logging.WARNING):
        preview.start()
    preview.close()
    feed.close()
    assert "leaves this machine unencrypted (the stream is sealed; its preview is not)" in caplog.text


def test_jpeg_encoding_happens_only_while_someone_watches_and_at_a_capped_rate() -> None:
    feed = MjpegFeed(max_fps=5)
    frame = np.zeros((48, 64, 3), np.uint8)
    try:
        for _ in range(20):
            feed.offer(frame)
        time.sleep(0.3)
        assert feed.encoded == 0, "nobody watches: nothing is encoded"
        feed.watch()
        started = time.monotonic()
        for value in range(50):
            feed.offer(np.full_like(frame, value))
            time.sleep(0.01)
        picture = feed.next_jpeg(0, timeout=10)
        elapsed = time.monotonic() - started
        assert picture is not None and picture[1][:2] == b"\xff\xd8", "a JPEG"
        assert feed.encoded <= 1 + elapsed * 5, "never more than max_fps pictures a second"
        feed.leave()
    finally:
        feed.close()


def test_the_stats_give_the_loss_and_rate_of_the_last_second_and_a_history() -> None:
    history = StatsHistory()
    history.add({"segments_expected": 100, "segments_received": 100}, 10_000, now=1.0)
    history.add({"segments_expected": 200, "segments_received": 150, "gops_decoded": 3}, 35_000, now=2.0)
    document = json.loads(history.json())
    assert document["loss_now"] == 0.5 and document["kbps"] == 200.0 and document["gops_decoded"] == 3
    assert document["loss_history"] == [None, 0.5]


# --- in a real browser ------------------------------------------------------------------------------------


class BlockCodec:
    """An honest, fast codec for a browser test: each 8x8 block's mean grey level in 8 levels (-4..3).
    The picture is coarse, but it changes with the input, and a lost element shows as mid grey."""

    model_id = "block-test@" + "00" * 8
    gop = 4
    backend = "block"

    def latent_length(self, height: int, width: int) -> int:
        return self.gop * (height // 8) * (width // 8)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        t, h, w, _ = frames.shape
        grey = frames.mean(axis=3)[:, : h // 8 * 8, : w // 8 * 8].reshape(t, h // 8, 8, w // 8, 8).mean(axis=(2, 4))
        return (np.clip(grey // 32, 0, 7) - 4).astype(np.int8).ravel()

    def decode(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray:
        levels = (codes.astype(np.int16) + 4) * 32 + 16
        blocks = levels.reshape(self.gop, height // 8, width // 8).astype(np.uint8)
        grey = blocks.repeat(8, axis=1).repeat(8, axis=2)
        return np.repeat(grey[..., np.newaxis], 3, axis=3)


class HandSender:
    """Streams the sample clip's GOPs to a receiver in a thread of its own, one GOP every ``period``
    seconds, losing ``lossy`` of each GOP's segments while :attr:`lossy` is set."""

    def __init__(self, codec: BlockCodec, size: tuple[int, int] = (160, 128), period: float = 0.1) -> None:
        width, height = size
        self.codec, self.period = codec, period
        n_elements = codec.latent_length(height, width)
        self.packetizer = GopPacketizer(n_elements, DEFAULT_SEED)
        frames = read_frames(sample_clip_path(), n=64, size=size)
        self.gops = [self.packetizer.segments(codec.encode(frames[i : i + 4])) for i in range(0, 64, 4)]
        name, weights_hash = split_model_id(codec.model_id)
        self.first = SessionDescriptor(
            5, 0, 0, width, height, 30000, 4, n_elements, self.packetizer.payload_size, self.packetizer.n_segments,
            seed_fingerprint(DEFAULT_SEED), name, weights_hash,
        )  # fmt: skip
        self.lossy = threading.Event()
        self.stop = threading.Event()
        self.address: Endpoint | None = None

    async def stream(self, receiver: Receiver) -> dict:
        self.address = await receiver.start()
        link = await DatagramSender.open(self.address)
        receiving = asyncio.create_task(receiver.run())
        counter = 0
        while not self.stop.is_set():
            segments = self.gops[counter % len(self.gops)]
            kept = len(segments) // 2 if self.lossy.is_set() else len(segments)
            descriptor = replace(self.first, gop_counter=counter, capture_time_us=int(time.time() * 1e6))
            await link.send_paced(gop_datagrams(descriptor, segments, range(kept), copies=3), 0.0)
            counter += 1
            await asyncio.sleep(self.period)
        last = replace(self.first, gop_counter=counter, flags=FLAG_END_OF_INPUT)
        await link.send_paced(gop_datagrams(last, self.gops[0], range(len(self.gops[0])), copies=3), 0.0)
        report = await receiving
        link.close()
        return report


def browser():  # noqa: ANN201 (selenium is optional)
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=900,700"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def wait_until(condition, timeout: float = 60.0, what: str = "") -> object:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def percent(text: str) -> float | None:
    return None if not text.endswith("%") else float(text.rstrip(" %"))


def test_the_page_shows_the_live_picture_and_stats_that_follow_the_loss(tmp_path) -> None:  # noqa: ANN001
    driver = browser()
    codec = BlockCodec()
    sender = HandSender(codec)
    config = ReceiverConfig("127.0.0.1:0", preview=Endpoint("127.0.0.1", 0), idle_exit_s=20.0)
    receiver = Receiver(codec, config)  # type: ignore[arg-type]
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(report=run(sender.stream(receiver))), daemon=True)
    thread.start()
    try:
        wait_until(lambda: receiver._preview is not None, 30, "the preview to start")
        driver.get(receiver._preview.url)
        picture = driver.find_element("id", "picture")
        wait_until(lambda: driver.execute_script("return arguments[0].naturalWidth", picture) == 160, 60,
                   "the first picture")
        first = picture.screenshot_as_png
        wait_until(lambda: picture.screenshot_as_png != first, 60, "the picture to change")
        wait_until(lambda: percent(driver.find_element("id", "loss-now").text) == 0.0, 60, "0 % loss shown")
        frames = int(driver.find_element("id", "frames").text)
        wait_until(lambda: int(driver.find_element("id", "frames").text) > frames, 30, "frames out to grow")
        sender.lossy.set()
        wait_until(lambda: (percent(driver.find_element("id", "loss-now").text) or 0) >= 30.0, 60,
                   "the loss of the last second to rise")
        assert driver.find_element("id", "loss-line").get_attribute("points"), "the sparkline is drawn"
        assert "block-test@" in driver.find_element("id", "stream").text
        driver.save_screenshot(str(tmp_path / "preview.png"))
    finally:
        sender.stop.set()
        thread.join(60)
        driver.quit()
    assert outcome["report"]["end_reason"] == "end_of_input"
