"""Frame sources: picamera2 (CSI camera), OpenCV (USB webcam, video file), an image, a folder of images, and
``auto`` (the default): the CSI camera if there is one, else the first webcam that opens.

Every source has ``read() -> frame or None`` (None: a finite source has ended), ``close()`` (idempotent),
``live`` (a camera, whose frames should be voted on) and works as a context manager. A camera whose read
fails raises :class:`SourceError`; the service loop then reopens it with back-off.
Hardware libraries are imported only by the source that needs them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from device.errors import SourceError
from device.safeio import check_regular, image_size, read_regular

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"}
MAX_PIXELS = 40_000_000  # camera.max_pixels: larger images are refused from their header, before decoding
MAX_IMAGE_BYTES = 256 << 20
MAX_WEBCAM_INDEX = 1023
V4L2_MAJOR = 81


class FrameSource(Protocol):
    """What the loop needs from a source."""

    name: str
    live: bool

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _OpenCVCapture(_Closing):
    """A source reading from ``self._capture``, a cv2.VideoCapture released once on close."""

    _capture = None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file: a regular file only, its size read from the header and checked against
    ``max_pixels`` before a byte is decoded (a 1 MB PNG can claim 32000x32000 pixels)."""
    data = read_regular(path, "image", MAX_IMAGE_BYTES, SourceError)
    size = image_size(data)
    if size is None:
        raise SourceError(
            f"source {path}: not a readable image (not a PNG, JPEG, BMP, PNM, TIFF, WebP or GIF header)"
        )
    width, height = size
    if width * height > max_pixels:
        raise SourceError(
            f"source {path}: image is {width}x{height} = {width * height} pixels, "
            f"more than camera.max_pixels = {max_pixels}"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise SourceError(f"source {path}: not a readable image ({_cv2_message(exc)})") from None
    if image is None or image.size == 0:
        raise SourceError(f"source {path}: not a readable image")
    return image


def _cv2_message(exc: Exception) -> str:
    """The last meaningful line of a cv2.error (they span several lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__


class ImageSource(_Closing):
    """One still image, delivered once."""

    live = False

    def __init__(self, path: str | Path, max_pixels: int = MAX_PIXELS):
        self.path = Path(path)
        self.name = str(self.path)
        self._image: np.ndarray | None = _read_image(self.path, max_pixels)

    def read(self) -> np.ndarray | None:
        image, self._image = self._image, None
        return image

    def close(self) -> None:
        self._image = None


class FolderSource(_Closing):
    """The images of a folder, in sorted file-name order (over and over with ``loop``).

    The folder is listed at the start of each pass, so files deleted meanwhile are not read (and new ones
    are). An entry that cannot be read (unreadable, empty, a broken link, a FIFO, a folder named
    ``*.png``, too many pixels) is skipped with one warning; a pass that yields no image at all raises
    SourceError, so a folder with nothing readable ends the run (exit 4) instead of spinning."""

    live = False

    def __init__(self, folder: str | Path, loop: bool = False, max_pixels: int = MAX_PIXELS):
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.loop = loop
        self.max_pixels = max_pixels
        self._bad: dict[str, tuple] = {}  # name -> (mtime, size) when it failed: not re-read until it changes
        self._files = self._list()
        if not self._files:
            raise SourceError(
                f"source {self.folder}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self._next = 0
        self._read_this_pass = 0
        self._closed = False
        self.skipped = 0

    def _list(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            reason = exc.strerror or exc
            raise SourceError(f"source {self.folder}: cannot list the folder ({reason})") from None

    def read(self) -> np.ndarray | None:
        while not self._closed:
            if self._next >= len(self._files):
                if not self._read_this_pass:
                    raise SourceError(
                        f"source {self.folder}: no readable image in the folder ({self.skipped} skipped)"
                    )
                if not self.loop:
                    return None
                self._files, self._next, self._read_this_pass = self._list(), 0, 0
                if not self._files:
                    raise SourceError(f"source {self.folder}: folder has no images any more")
            path = self._files[self._next]
            self._next += 1
            try:
                info = path.stat()
                version = (info.st_mtime_ns, info.st_size)
            except OSError:
                version = None
            if path.name in self._bad and self._bad[path.name] == version:
                self.skipped += 1  # known bad and unchanged: skipped without reading (or a decoder's noise)
                continue
            try:
                image = _read_image(path, self.max_pixels)
            except SourceError as exc:
                self.skipped += 1
                self._bad[path.name] = version
                log.warning("%s; skipped", exc)  # once per entry (and again only if it changes)
                continue
            self._bad.pop(path.name, None)
            self._read_this_pass += 1
            return image
        return None

    def close(self) -> None:
        self._closed = True
        self._files = []
        self._next = 0


class VideoSource(_OpenCVCapture):
    """A video file through OpenCV: as fast as the pipeline runs, or at its frame rate (``realtime``);
    from the start again at its end with ``loop`` (a kiosk demo, a soak test)."""

    live = True  # a video stands in for a camera: its frames are voted on

    def __init__(self, path: str | Path, realtime: bool = False, loop: bool = False):
        self.path = Path(path)
        self.name = str(self.path)
        self.loop = loop
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"source {self.path}: OpenCV cannot open this video")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self.realtime = realtime
        self._due = None

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        if self.realtime:
            now = time.monotonic()
            self._due = now if self._due is None else self._due + 1.0 / self.fps
            if self._due > now:
                time.sleep(self._due - now)
        ok, frame = self._capture.read()
        if not ok and self.loop:
            # Rewinding is not reliable for every container and codec; reopening is.
            self._capture.release()
            self._capture = cv2.VideoCapture(str(self.path))
            ok, frame = self._capture.read()
            if not ok:
                raise SourceError(f"source {self.path}: no frame after reopening the video to loop it")
        return frame if ok else None


class OpenCVCamera(_OpenCVCapture):
    """A V4L2 camera (USB webcam) through OpenCV: ``webcam:N`` or ``/dev/videoN``."""

    live = True

    def __init__(self, device: int | str, width: int = 640, height: int = 480, fps: int = 30):
        self.device = device
        self.name = f"webcam:{device}" if isinstance(device, int) else str(device)
        try:
            backend = (cv2.CAP_V4L2,) if hasattr(cv2, "CAP_V4L2") else ()
            self._capture = cv2.VideoCapture(device, *backend)
        except (cv2.error, OverflowError, SystemError) as exc:
            raise SourceError(f"source {self.name}: cannot open ({_cv2_message(exc)})") from None
        if not self._capture.isOpened():
            self._capture.release()
            self._capture = None
            raise SourceError(
                f"source {self.name}: camera not found or busy (is it plugged in? ls /dev/video*)"
            )
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        # A camera that buffers hands out stale frames; we want the newest one (drop, don't queue).
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def read(self) -> np.ndarray:
        if self._capture is None:
            raise SourceError(f"source {self.name}: camera is closed")
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise SourceError(f"source {self.name}: camera read failed")
        return frame


class Picamera2Source(_Closing):
    """The Raspberry Pi CSI camera through picamera2: a low-resolution YUV420 stream, its Y plane as grey."""

    live = True
    name = "picamera2"

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError(
                "source picamera2: the picamera2 module is not installed; on Raspberry Pi OS run "
                "'sudo apt install python3-picamera2' and create the venv with --system-site-packages"
            ) from None
        self.width, self.height = width, height
        try:
            self._camera = Picamera2()
            config = self._camera.create_video_configuration(
                main={"size": (width, height), "format": "YUV420"},
                controls={"FrameRate": float(fps)},
                buffer_count=2,
            )
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # libcamera raises RuntimeError, IndexError (no camera), OSError...
            raise SourceError(f"source picamera2: cannot start the camera ({exc})") from None

    def read(self) -> np.ndarray:
        if self._camera is None:
            raise SourceError("source picamera2: camera is closed")
        try:
            yuv = self._camera.capture_array("main")
        except Exception as exc:
            raise SourceError(f"source picamera2: capture failed ({exc})") from None
        # YUV420 arrives as (height * 3/2, stride); the first `height` rows are the luminance plane.
        return yuv[: self.height, : self.width]

    def close(self) -> None:
        camera, self._camera = getattr(self, "_camera", None), None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()


AUTO_HELP = (
    "pass --source webcam:N (a USB webcam), a video, an image or a folder of images; or try device-run --demo"
)


def csi_cameras() -> list:
    """The CSI cameras libcamera sees through picamera2; [] where picamera2 is not importable."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return []
    try:
        return list(Picamera2.global_camera_info())
    except Exception:  # libcamera missing or broken: no CSI camera to use
        return []


def webcam_devices() -> list[str]:
    """The V4L2 video nodes present, in number order (a webcam usually has two: capture and metadata)."""
    nodes = Path("/dev").glob("video*")
    return sorted((str(p) for p in nodes if p.name[5:].isdigit()), key=lambda n: int(n[len("/dev/video") :]))


def open_auto(
    width=640, height=480, fps=30, csi=csi_cameras, webcams=webcam_devices, open_csi=None, open_webcam=None
):
    """``auto``: the CSI camera where picamera2 imports and sees one, else the first webcam that opens, else
    a one-line SourceError saying what to pass. The probes and openers are injectable (tests)."""
    if csi():
        log.info("source auto: the CSI camera (picamera2)")
        return (open_csi or Picamera2Source)(width, height, fps)
    open_webcam = open_webcam or OpenCVCamera
    tried = []
    for node in webcams():
        try:
            source = open_webcam(node, width, height, fps)
        except SourceError:
            tried.append(node)
            continue
        log.info("source auto: the webcam %s", node)
        return source
    found = f"{', '.join(tried)} did not open" if tried else "no /dev/video* device"
    raise SourceError(f"source auto: no camera found (no CSI camera through picamera2; {found}); {AUTO_HELP}")


def open_source(
    spec: str,
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    realtime: bool = False,
    loop: bool = False,
    max_pixels: int = MAX_PIXELS,
):
    """Open a source from its command-line spelling; ``loop`` repeats a video or a folder forever."""
    if spec == "auto":
        return open_auto(width, height, fps)
    if spec == "picamera2":
        return Picamera2Source(width, height, fps)
    match = re.fullmatch(r"webcam:(\d+)", spec)
    if match:
        if len(match.group(1)) > 4 or int(match.group(1)) > MAX_WEBCAM_INDEX:
            raise SourceError(f"source {spec}: webcam number must be between 0 and {MAX_WEBCAM_INDEX}")
        return OpenCVCamera(int(match.group(1)), width, height, fps)
    if re.fullmatch(r"/dev/video\d{1,4}", spec):
        return OpenCVCamera(spec, width, height, fps)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, loop, max_pixels)
    if not path.exists():
        raise SourceError(
            f"source {spec}: no such file or folder "
            "(use auto, picamera2, webcam:N, /dev/videoN, a video, an image or a folder)"
        )
    with contextlib.suppress(OSError):  # a V4L2 node by another name (/dev/v4l/by-id/...) is a camera
        info = path.stat()
        if stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) == V4L2_MAJOR:
            return OpenCVCamera(str(path), width, height, fps)
    # A FIFO would block OpenCV forever, /dev/zero never ends: only regular files (or links to them).
    check_regular(path, "source", SourceError)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, max_pixels)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSource(path, realtime, loop)
    # Unknown extension: an image if its header says so, else a video.
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise SourceError(f"source {spec}: cannot read ({exc.strerror or exc})") from None
    if image_size(head) is not None:
        return ImageSource(path, max_pixels)
    return VideoSource(path, realtime, loop)
