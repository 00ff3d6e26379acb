"""``mstvsc-keygen``: write a key file for sealed streams (``--key-file`` on mstvsc-send and mstvsc-recv).

    mstvsc-keygen stream.key          # 64 hex digits of 32 random bytes, mode 0600
    mstvsc-keygen stream.key --force  # replace an existing key

Also where the senders and receivers read key files, so that the format lives in one place.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import sys
from pathlib import Path

from ..wire.sealing import KEY_BYTES, format_key, parse_key
from .common import parser, run_main

log = logging.getLogger(__name__)


def write_key_file(path: Path, key: bytes, force: bool = False) -> None:
    """Write ``key`` readable by its owner only; refuse to replace a file unless ``force``.

    ``force`` writes a new file beside it and renames it over ``path``, so a symbolic link at ``path`` is
    replaced itself: the file it points to (perhaps not the user's) is never written."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory; name the key file to write")
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new") if force else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ValueError(f"{path} exists; give --force to replace it") from None
    except OSError as exc:
        raise ValueError(f"cannot write key file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as file:
            file.write(format_key(key))
        if force:
            os.replace(target, path)
    except BaseException:
        if force:
            target.unlink(missing_ok=True)
        raise


def read_key_file(path: Path) -> bytes:
    """The key in ``path``; a one-line ValueError if it cannot be read or is not a key. Warns when
    others than the owner may read it."""
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        key = parse_key(text)
    except ValueError as exc:
        raise ValueError(f"key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by others than its owner (chmod 600 it)", path)
    return key


def main(argv: list[str] | None = None) -> int:
    p = parser("mstvsc-keygen", f"Write a new {KEY_BYTES}-byte key for sealed streams (--key-file).")
    p.add_argument("path", type=Path, help="key file to write (mode 0600)")
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    args = p.parse_args(argv)

    def body() -> int:
        write_key_file(args.path, secrets.token_bytes(KEY_BYTES), args.force)
        if not args.quiet:
            print(f"wrote a new key to {args.path}; copy it to the sender and the receiver over a secure channel")
        return 0

    return run_main(p.prog, body)


if __name__ == "__main__":
    sys.exit(main())
