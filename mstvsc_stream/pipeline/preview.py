"""``mstvsc-recv --http``: a browser preview for a receiver without a screen (a container, a server).

One page shows the live picture (MJPEG: ``multipart/x-mixed-replace``, which every browser plays in an
``<img>``) and the receiver's stats, refreshed every second: segment loss (now and overall, with a
loss-over-time sparkline), kbps, GOPs decoded and concealed, latency p50/p95 and decode time.

The HTTP server runs on threads of its own (the standard library's ``ThreadingHTTPServer``), never on
the receiving event loop; the event loop only hands it a stats snapshot once a second, and the picture
comes from :class:`~mstvsc_stream.media.mjpeg.MjpegFeed` (JPEG encoding on its own thread, only while
someone watches, at a capped rate).

Exposure: it listens on loopback unless another address is named, and then warns that the picture
leaves the machine unencrypted (a sealed stream's too). A ``Host`` header must be an IP address,
``localhost``, this machine's name or the name the preview was given, so a web page cannot reach it
through a DNS name rebound to this address. Viewers of the picture and connections are limited, and a
client that stops reading is dropped after a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from ..media.mjpeg import MjpegFeed
from ..net.endpoint import Endpoint

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_VIEWERS = 4  # concurrent picture streams
MAX_CONNECTIONS = 16  # concurrent connections of any kind
CLIENT_TIMEOUT_S = 10.0  # a request must arrive, and a picture be taken, within this
HISTORY_S = 120  # seconds of loss history for the sparkline
BOUNDARY = "mstvsc-frame"
STATS_KEYS = ("segment_loss_rate", "gops_released", "gops_decoded", "gops_held", "gops_concealed", "frames_out",
              "frames_dropped_output", "invalid_datagrams", "latency_ms_p50", "latency_ms_p95", "decode_ms_p50",
              "decode_ms_p95", "end_reason", "model", "backend")  # fmt: skip
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; frame-ancestors 'none'",
}


def preview_address(endpoint: Endpoint) -> tuple[str, int]:
    """Where to listen: loopback unless a host is named (``:8080`` is 127.0.0.1:8080)."""
    return (endpoint.host or LOOPBACK), endpoint.port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatsHistory:
    """The receiver's report once a second, turned into what the page shows: the loss and bitrate of the
    last second besides the totals, and the loss of the last :data:`HISTORY_S` seconds."""

    def __init__(self) -> None:
        self._previous: tuple[float, int, int, int] | None = None  # time, expected, received, bytes
        self._loss: deque[float | None] = deque(maxlen=HISTORY_S)
        self._document = b"{}"
        self._lock = threading.Lock()

    def add(self, report: dict[str, object], bytes_received: int, now: float) -> None:
        expected, received = int(report.get("segments_expected") or 0), int(report.get("segments_received") or 0)
        loss_now = kbps = None
        if self._previous is not None:
            then, expected_before, received_before, bytes_before = self._previous
            if expected > expected_before:
                loss_now = round(1 - (received - received_before) / (expected - expected_before), 4)
            kbps = round((bytes_received - bytes_before) * 8 / max(now - then, 1e-3) / 1000, 1)
        self._previous = (now, expected, received, bytes_received)
        self._loss.append(loss_now)
        document = {key: report.get(key) for key in STATS_KEYS}
        document.update(loss_now=loss_now, kbps=kbps, loss_history=list(self._loss), time=time.time())
        with self._lock:
            self._document = json.dumps(document).encode()

    def json(self) -> bytes:
        with self._lock:
            return self._document


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, preview: PreviewServer) -> None:
        self.address_family = family
        self.preview = preview
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT_S
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive holding a slot
    server_version = "mstvsc-recv"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        preview = self.server.preview
        if not preview.connections.acquire(blocking=False):
            self._plain(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections")
            return
        try:
            if not preview.host_allowed(self.headers.get("Host")):
                self._plain(HTTPStatus.FORBIDDEN, "this preview answers only to its own address (Host header)")
            elif self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", _asset("preview.html"))
            elif self.path == "/preview.js":
                self._send(HTTPStatus.OK, "text/javascript; charset=utf-8", _asset("preview.js"))
            elif self.path == "/preview.css":
                self._send(HTTPStatus.OK, "text/css; charset=utf-8", _asset("preview.css"))
            elif self.path == "/stats.json":
                self._send(HTTPStatus.OK, "application/json", preview.stats.json())
            elif self.path == "/stream.mjpg":
                self._stream(preview)
            else:
                self._plain(HTTPStatus.NOT_FOUND, "not found")
        finally:
            preview.connections.release()

    def _stream(self, preview: PreviewServer) -> None:
        if not preview.viewers.acquire(blocking=False):
            self._plain(HTTPStatus.SERVICE_UNAVAILABLE, f"at most {MAX_VIEWERS} viewers at a time")
            return
        feed = preview.feed
        feed.watch()
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self._security_headers()
            self.end_headers()
            sequence = 0
            while not preview.closed:
                picture = feed.next_jpeg(sequence, timeout=1.0)
                if picture is None:
                    continue
                sequence, jpeg = picture
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (ConnectionError, TimeoutError, OSError):
            pass  # the viewer left or stopped reading
        finally:
            feed.leave()
            preview.viewers.release()

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._security_headers()
        self.end_headers()
        self.wfile.write(body)

    def _plain(self, status: HTTPStatus, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode())

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the standard library's name)
        log.debug("preview %s: " + format, self.client_address[0], *args)


def _asset(name: str) -> bytes:
    return (resources.files("mstvsc_stream.pipeline") / "preview_assets" / name).read_bytes()


class PreviewServer:
    """The HTTP side of the preview; :meth:`start` binds and serves on a thread, :meth:`close` stops."""

    def __init__(self, feed: MjpegFeed, listen: Endpoint, sealed: bool = False) -> None:
        self.feed = feed
        self.stats = StatsHistory()
        self.viewers = threading.BoundedSemaphore(MAX_VIEWERS)
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.closed = False
        self._listen = listen
        self._sealed = sealed
        self._names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        if listen.host:
            self._names.add(listen.host.lower())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def start(self) -> str:
        """Binds (an address in use or not ours raises OSError, one line) and serves; returns the URL."""
        host, port = preview_address(self._listen)
        try:
            family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as error:
            raise OSError(f"--http {self._listen}: cannot resolve {host!r}: {error.strerror}") from None
        try:
            self._server = _Server(address[:2], family, self)
        except OSError as error:
            raise OSError(f"--http {self._listen}: {error.strerror or error}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="preview-http", daemon=True)
        self._thread.start()
        if is_loopback(host):
            log.info("preview on %s (this machine only)", self.url)
        else:
            sealed = " (the stream is sealed; its preview is not)" if self._sealed else ""
            log.warning("preview on %s is reachable from other hosts: the picture leaves this machine "
                        "unencrypted%s", self.url, sealed)
        return self.url

    def host_allowed(self, host_header: str | None) -> bool:
        """DNS rebinding guard: the Host header names an IP address, localhost, this machine, or the host
        the preview was given; any port."""
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):
            host = host[1 : host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.split(":")[0]
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            return host in self._names

    def publish(self, report: dict[str, object], bytes_received: int) -> None:
        """The receiver's newest report (from the event loop, once a second)."""
        self.stats.add(report, bytes_received, time.monotonic())

    async def publish_every(self, report: Callable[[], dict[str, object]], bytes_received: Callable[[], int],
                            interval_s: float = 1.0) -> None:
        """Runs on the event loop until cancelled: :meth:`publish` once per ``interval_s``."""
        while True:
            self.publish(report(), bytes_received())
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
