"""Careful file access for input the user (or a broken environment) controls.

``read_regular`` refuses FIFOs, devices (``/dev/zero``), sockets and folders before reading a byte, and
never reads more than a stated limit, so a wrong path fails in one line instead of hanging or eating
memory. ``image_size`` reads an image's width and height from its header, so a decompression bomb is
refused before it is decoded. ``write_atomically`` (bytes) and ``save_atomically`` (a writer that wants a
file name: Keras, matplotlib) put a file under its final name only when every byte is on disk; the crops,
the host's models and the benchmark reports are all written through them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path


def read_regular(path: str | Path, what: str, limit: int, error=OSError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; otherwise ``error("<path>: <rule>")``.

    Opened non-blocking (a FIFO must not block the open) and checked with fstat on the open descriptor,
    so the file that is checked is the file that is read."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: {what} must be a regular file, not {kind_of(info.st_mode)}")
        if info.st_size > limit:
            raise error(f"{path}: {what} is {info.st_size} bytes, more than the limit of {limit}")
        chunks, total = [], 0
        while True:
            try:
                os.set_blocking(fd, True)
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except OSError as exc:
                raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # the file grew while being read
                raise error(f"{path}: {what} is more than the limit of {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_regular(path: str | Path, what: str, error=OSError) -> None:
    """Raise ``error`` unless ``path`` is (a link to) a regular file; never opens it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise error(f"{path}: {what} must be a regular file, not {kind_of(mode)}")


def kind_of(mode: int) -> str:
    """'a FIFO', 'a character device'... for messages."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, PNM, TIFF, WebP or GIF; None if unknown."""
    try:
        return _image_size(data)
    except (struct.error, IndexError, ValueError):
        return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:2] == b"BM":
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:1] == b"P" and data[1:2] in b"123456":
        fields: list[bytes] = []
        for line in data[2:4096].split(b"\n"):
            fields += line.split(b"#", 1)[0].split()
            if len(fields) >= 2:
                return int(fields[0]), int(fields[1])
        return None
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    found = {}
    for n in range(min(count, 512)):
        entry = data[offset + 2 + 12 * n : offset + 14 + 12 * n]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            value = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12])[0]
            found[tag] = value
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path``: a temporary file beside it, every byte written and fsynced, its size
    checked, then renamed into place. On any failure the temporary file is removed and OSError raised;
    nothing ever appears under ``path`` unless it is complete."""
    path = Path(path)
    if not data:
        raise OSError(f"{path}: refusing to write an empty file")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            if os.fstat(fd).st_size != len(data):
                raise OSError(f"{tmp}: size on disk differs from the {len(data)} bytes written")
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_atomically(path: str | Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` into a hidden temporary file beside ``path`` with the same suffix (Keras and
    matplotlib choose the format by it), fsynced and renamed over ``path``; on any failure the temporary
    file is removed and ``path`` left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
