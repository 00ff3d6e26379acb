"""A second, independent MSTVSC receiver written from docs/wire-format.md alone.

What it proves: the wire specification is complete enough to turn captured datagrams into *pictures*.
It was written without reading `mstvsc_stream/` and must never import it: it parses the 3-byte header
and the session descriptor, reads 8-bit GOP numbers as 32-bit counters, reassembles each GOP by label,
zero-fills what is missing, unpacks the 3-bit codes, undoes the SplitMix64 interleaving with the
pre-shared seed, builds the element-level loss mask, runs the shipped ONNX decoder graph found by the
graph contract, crops and rounds, and writes PNG frames, a y4m file or a .npy array.
`tests/test_independent_decoder.py` compares its pictures with the project's own receiver path.

Subcommands (plain Python + numpy + onnxruntime; the capture helpers use only the standard library):

    capture  --listen 127.0.0.1:PORT --out cap.bin [--forward 127.0.0.1:PORT2] [--idle-exit S]
    replay   --capture cap.bin --to 127.0.0.1:PORT [--drop 0.5 --drop-seed 1]
    decode   --capture cap.bin --model-dir models/mstvsc-small-c48 --out frames.y4m|frames.npy|DIR
             [--seed 0x4D53545653433031] [--precision fp32|int8] [--drop 0.5 --drop-seed 1]

A capture file is `MSTVCAP1` followed by records `u64 arrival_ns (since the first) | u32 length | bytes`,
big-endian, in arrival order.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import socket
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"MSTVCAP1"
DESCRIPTOR_LABEL = 0xFFFF
DEFAULT_SEED = 0x4D53545653433031
DESCRIPTOR_FIXED = 52
MAX_SEGMENTS = 4096
MAX_PACKED = 1 << 20
MAX_W, MAX_H = 3840, 2160
MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------- capture files

def write_capture(path: str, records: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        f.write(MAGIC)
        for t_ns, data in records:
            f.write(struct.pack(">QI", t_ns, len(data)))
            f.write(data)


def read_capture(path: str) -> list[tuple[int, bytes]]:
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != MAGIC:
        raise ValueError(f"{path}: not a capture file (no {MAGIC!r} magic)")
    out, pos = [], 8
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        t_ns, n = struct.unpack_from(">QI", blob, pos)
        pos += 12
        out.append((t_ns, blob[pos:pos + n]))
        pos += n
    return out


def drop_records(records: list, fraction: float, seed: int) -> list:
    """Keep each datagram with probability 1 - fraction (independent, seeded)."""
    if fraction <= 0:
        return list(records)
    keep = np.random.default_rng(seed).random(len(records)) >= fraction
    return [r for r, k in zip(records, keep) if k]


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1"), int(port)


def cmd_capture(args) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(parse_addr(args.listen))
    fwd = parse_addr(args.forward) if args.forward else None
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if fwd else None
    records, t0, last = [], None, time.monotonic()
    sock.settimeout(0.2)
    while True:
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            if records and time.monotonic() - last > args.idle_exit:
                break
            continue
        now = time.monotonic_ns()
        t0 = now if t0 is None else t0
        last = time.monotonic()
        records.append((now - t0, data))
        if out is not None:
            out.sendto(data, fwd)
    write_capture(args.out, records)
    print(f"captured {len(records)} datagrams into {args.out}")
    return 0


def cmd_replay(args) -> int:
    records = drop_records(read_capture(args.capture), args.drop, args.drop_seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = parse_addr(args.to)
    start = time.monotonic_ns()
    first = records[0][0] if records else 0
    for t_ns, data in records:
        wait = (t_ns - first) - (time.monotonic_ns() - start)
        if wait > 0:
            time.sleep(wait / 1e9)
        sock.sendto(data, dest)
    print(f"replayed {len(records)} datagrams to {args.to}")
    return 0


# ----------------------------------------------------------------------------- wire

@dataclass(frozen=True)
class Descriptor:
    gop_number: int
    flags: int
    session_id: int
    gop_counter: int
    capture_time_us: int
    width: int
    height: int
    fps_milli: int
    gop_length: int
    n_elements: int
    payload_size: int
    n_segments: int
    seed_fingerprint: bytes
    model_hash: bytes
    model_name: str

    @property
    def geometry(self) -> tuple:
        return (self.width, self.height, self.fps_milli, self.gop_length, self.n_elements,
                self.payload_size, self.n_segments, self.seed_fingerprint, self.model_hash,
                self.model_name)

    @property
    def packed_size(self) -> int:
        return 3 * math.ceil(self.n_elements / 8)


class Invalid(ValueError):
    """A datagram the spec says to drop; the message is the drop reason."""


def parse_descriptor(datagram: bytes) -> Descriptor:
    body = datagram[3:]
    if len(body) < DESCRIPTOR_FIXED:
        raise Invalid("short")
    (version, flags, session_id, counter, capture_us, width, height, fps_milli, gop_length,
     n_elements, payload_size, n_segments) = struct.unpack_from(">BBQIQHHIBIHH", body, 0)
    seed_fp, model_hash, name_len = body[39:43], body[43:51], body[51]
    if version != 1:
        raise Invalid("version")
    if len(body) != DESCRIPTOR_FIXED + name_len:
        raise Invalid("descriptor_length")
    try:
        name = body[52:52 + name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("model_name") from None
    if name_len > 64:
        raise Invalid("model_name")
    if (width == 0 or height == 0 or gop_length == 0 or n_elements == 0 or payload_size == 0
            or payload_size % 3 or datagram[0] != counter % 256
            or n_segments != math.ceil(3 * math.ceil(n_elements / 8) / payload_size)):
        raise Invalid("descriptor_inconsistent")
    if width > MAX_W or height > MAX_H:
        raise Invalid("frame_size")
    if 3 * math.ceil(n_elements / 8) > MAX_PACKED or n_segments > MAX_SEGMENTS:
        raise Invalid("descriptor_limit")
    return Descriptor(datagram[0], flags, session_id, counter, capture_us, width, height, fps_milli,
                      gop_length, n_elements, payload_size, n_segments, seed_fp, model_hash, name)


def seed_fingerprint(seed: int) -> bytes:
    return hashlib.sha256(seed.to_bytes(8, "big")).digest()[:4]


def counter_from_number(number: int, reference: int) -> int:
    """The 32-bit counter nearest `reference` with this low byte; 128 away reads as behind."""
    d = ((number - reference % 256 + 128) % 256) - 128
    return reference + d


def permutation(n: int, seed: int) -> np.ndarray:
    """perm[j] = latent element carried at transmitted position j (SplitMix64 keys, sorted)."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed & MASK64) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        key = z ^ (z >> np.uint64(31))
    return np.argsort(key, kind="stable")


def unpack3(packed: bytes, n: int) -> np.ndarray:
    """3 bytes -> 8 codes (MSB first, 3-bit two's complement); keeps the first n codes."""
    b = np.frombuffer(packed, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    word = (b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2]
    shifts = np.arange(21, -1, -3, dtype=np.uint32)
    v = ((word[:, None] >> shifts) & 7).astype(np.int8).reshape(-1)
    v[v >= 4] -= 8
    return v[:n]


def reassemble(desc: Descriptor, payloads: dict[int, bytes], seed: int):
    """Codes (int8, latent order, 0 where lost) and mask (True = arrived) of one GOP."""
    ps, n = desc.payload_size, desc.n_elements
    buf = bytearray(desc.packed_size)
    tx_mask = np.zeros(n, dtype=bool)
    per_seg = ps // 3 * 8
    for label, data in payloads.items():
        buf[label * ps: label * ps + len(data)] = data
        tx_mask[label * per_seg: min((label + 1) * per_seg, n)] = True
    tx_codes = unpack3(bytes(buf), n)
    perm = permutation(n, seed)
    codes = np.empty(n, dtype=np.int8)
    mask = np.empty(n, dtype=bool)
    codes[perm] = tx_codes
    mask[perm] = tx_mask
    codes[~mask] = 0
    return codes, mask


# ----------------------------------------------------------------------------- GOP assembly

@dataclass
class Gop:
    desc: Descriptor | None = None
    payloads: dict[int, bytes] = field(default_factory=dict)


@dataclass
class Stream:
    """One session's GOPs, keyed by 32-bit counter, built from datagrams in arrival order."""
    seed: int
    session: Descriptor | None = None
    newest: int | None = None
    gops: dict[int, Gop] = field(default_factory=dict)
    held: list[bytes] = field(default_factory=list)
    end_counter: int | None = None
    drops: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def feed(self, datagram: bytes) -> None:
        if len(datagram) < 3:
            return self.drop("short")
        label = int.from_bytes(datagram[1:3], "big")
        if label == DESCRIPTOR_LABEL:
            try:
                desc = parse_descriptor(datagram)
            except Invalid as e:
                return self.drop(str(e))
            return self._descriptor(desc)
        if self.session is None:
            self.held.append(datagram)
            return None
        return self._segment(datagram, label)

    def _descriptor(self, desc: Descriptor) -> None:
        if desc.seed_fingerprint != seed_fingerprint(self.seed):
            return self.drop("seed_mismatch")
        if self.session is None:
            self.session = desc
        elif desc.session_id != self.session.session_id:
            return self.drop("second_source")  # one session is enough for a capture
        elif desc.geometry != self.session.geometry:
            return self.drop("descriptor_changed")
        self.newest = desc.gop_counter if self.newest is None else max(self.newest, desc.gop_counter)
        gop = self.gops.setdefault(desc.gop_counter, Gop())
        if gop.desc is None:
            gop.desc = desc
        if desc.flags & 1:
            self.end_counter = desc.gop_counter
        held, self.held = self.held, []
        for d in held:
            self._segment(d, int.from_bytes(d[1:3], "big"))

    def _segment(self, datagram: bytes, label: int) -> None:
        s = self.session
        if label >= s.n_segments:
            return self.drop("label_range")
        want = s.payload_size if label < s.n_segments - 1 else s.packed_size - label * s.payload_size
        if len(datagram) - 3 != want:
            return self.drop("payload_size")
        counter = counter_from_number(datagram[0], self.newest)
        if counter - self.newest >= 32:  # max_ahead: at most 31 GOPs past the reference
            return self.drop("gop_window")
        self.gops.setdefault(counter, Gop()).payloads.setdefault(label, datagram[3:])

    def counters(self) -> range:
        """Every GOP counter from the first seen to the last (the end flag's, else the newest)."""
        if not self.gops:
            return range(0)
        last = self.end_counter if self.end_counter is not None else max(self.gops)
        return range(min(self.gops), last + 1)


# ----------------------------------------------------------------------------- pictures

def padded(n: int) -> int:
    return -(-n // 64) * 64


class GraphDecoder:
    """The shipped `decoder-WpxHp[.int8].onnx` graph, used per the spec's contract."""

    def __init__(self, model_dir: str, desc: Descriptor, precision: str, threads: int = 1):
        import onnxruntime as ort

        self.w, self.h, self.t = desc.width, desc.height, desc.gop_length
        self.wp, self.hp = padded(self.w), padded(self.h)
        suffix = ".int8.onnx" if precision == "int8" else ".onnx"
        path = os.path.join(model_dir, f"decoder-{self.wp}x{self.hp}{suffix}")
        if not os.path.exists(path):
            raise SystemExit(f"error: no decoder graph {path} for {self.w}x{self.h}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        meta = self.sess.get_modelmeta().custom_metadata_map
        if meta.get("mstvsc.graph_format") != "1":
            raise SystemExit(f"error: {path}: graph format {meta.get('mstvsc.graph_format')!r}, want '1'")
        graph_hash = bytes.fromhex(meta.get("mstvsc.weights_sha256", "")[:16])
        if graph_hash != desc.model_hash:
            raise SystemExit(f"error: stream model hash {desc.model_hash.hex()} is not this graph's "
                             f"{graph_hash.hex()} ({path})")
        shape = {i.name: i.shape for i in self.sess.get_inputs()}
        self.common_shape = tuple(shape["codes_common"])
        self.indiv_shape = tuple(shape["codes_individual"])
        c = self.common_shape[-1]
        hc, wc = self.hp // 32, self.wp // 32
        expect = c * (hc * wc + self.t * (hc // 2) * (wc // 2))
        if self.common_shape != (1, 1, hc, wc, c) or self.indiv_shape != (1, self.t, hc // 2, wc // 2, c) \
                or expect != desc.n_elements:
            raise SystemExit(f"error: stream has {desc.n_elements} elements; graph {path} expects {expect}")
        self.n_common = int(np.prod(self.common_shape))

    def decode(self, codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """uint8 frames [T, H, W, 3]."""
        x = codes.astype(np.float32)
        m = mask.astype(np.float32)
        nc = self.n_common
        feeds = {
            "codes_common": x[:nc].reshape(self.common_shape),
            "codes_individual": x[nc:].reshape(self.indiv_shape),
            "received_common": m[:nc].reshape(self.common_shape),
            "received_individual": m[nc:].reshape(self.indiv_shape),
        }
        (frames,) = self.sess.run(["frames"], feeds)
        crop = frames[0, :, : self.h, : self.w, :]
        return np.clip(np.round(crop * 255.0), 0, 255).astype(np.uint8)


def decode_records(records: list[tuple[int, bytes]], model_dir: str, seed: int = DEFAULT_SEED,
                   precision: str = "int8", threads: int = 1, log=None) -> tuple[np.ndarray, dict, int]:
    """All frames of the capture's (first) session, [N, H, W, 3] uint8, its counters and fps x 1000."""
    stream = Stream(seed=seed)
    for _, data in records:
        stream.feed(data)
    if stream.session is None:
        raise SystemExit("error: no valid session descriptor in the capture")
    desc = stream.session
    dec = GraphDecoder(model_dir, desc, precision, threads)
    frames, last = [], None
    stats = {"gops": 0, "gops_decoded": 0, "gops_concealed": 0, "segments_expected": 0,
             "segments_received": 0, "drops": stream.drops}
    for counter in stream.counters():
        gop = stream.gops.get(counter)
        stats["gops"] += 1
        stats["segments_expected"] += desc.n_segments
        if (gop is None or not gop.payloads) and last is not None:
            # Nothing arrived: show the last frame again, rather than decode an all-lost latent.
            stats["gops_concealed"] += 1
            frames.extend([last] * desc.gop_length)
            continue
        # Nothing to hold yet (the stream's first GOP): an all-lost GOP is decoded anyway.
        payloads = gop.payloads if gop is not None else {}
        stats["segments_received"] += len(payloads)
        codes, mask = reassemble(desc, payloads, seed)
        pics = dec.decode(codes, mask)
        stats["gops_decoded" if payloads else "gops_concealed"] += 1
        frames.extend(pics)
        last = pics[-1]
        if log:
            log(f"GOP {counter}: {len(gop.payloads)}/{desc.n_segments} segments")
    return np.stack(frames), stats, desc.fps_milli


# ----------------------------------------------------------------------------- outputs

def write_png(path: str, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def write_y4m(path: str, frames: np.ndarray, fps_milli: int) -> None:
    """4:4:4 y4m (BT.601 full-range), so no chroma is thrown away."""
    n, h, w, _ = frames.shape
    rgb = frames.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128 + (rgb[..., 2] - y) * 0.564
    cr = 128 + (rgb[..., 0] - y) * 0.713
    planes = np.clip(np.round(np.stack([y, cb, cr], axis=1)), 0, 255).astype(np.uint8)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps_milli}:1000 Ip A1:1 C444 XCOLORRANGE=FULL\n".encode())
        for p in planes:
            f.write(b"FRAME\n" + p.tobytes())


def cmd_decode(args) -> int:
    try:
        records = drop_records(read_capture(args.capture), args.drop, args.drop_seed)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    frames, stats, fps_milli = decode_records(records, args.model_dir, args.seed, args.precision,
                                              args.threads, log=print if args.verbose else None)
    out = args.out
    if out.endswith(".npy"):
        np.save(out, frames)
    elif out.endswith(".y4m"):
        write_y4m(out, frames, fps_milli)
    else:
        os.makedirs(out, exist_ok=True)
        for i, f in enumerate(frames):
            write_png(os.path.join(out, f"frame{i:05d}.png"), f)
    print(f"{len(frames)} frames -> {out}; {stats}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--listen", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--forward")
    c.add_argument("--idle-exit", type=float, default=3.0)
    r = sub.add_parser("replay")
    r.add_argument("--capture", required=True)
    r.add_argument("--to", required=True)
    for q in (r, d := sub.add_parser("decode")):
        q.add_argument("--drop", type=float, default=0.0, help="drop this share of datagrams (seeded)")
        q.add_argument("--drop-seed", type=int, default=1)
    d.add_argument("--capture", required=True)
    d.add_argument("--model-dir", default=os.path.join(os.path.dirname(__file__), "..", "models",
                                                         "mstvsc-small-c48"))
    d.add_argument("--out", required=True, help="DIR for PNGs, or FILE.y4m / FILE.npy")
    d.add_argument("--seed", type=lambda s: int(s, 0), default=DEFAULT_SEED)
    d.add_argument("--precision", choices=["fp32", "int8"], default="int8",
                   help="which shipped graph (int8: what mstvsc-recv uses on a CPU; pixels differ from fp32)")
    d.add_argument("--threads", type=int, default=1)
    d.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    return {"capture": cmd_capture, "replay": cmd_replay, "decode": cmd_decode}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
