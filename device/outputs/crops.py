"""``--save-crops DIR``: keep what the model saw, to build a custom dataset from the user's own camera.

Each classified digit is stored as its normalized 28x28 PNG in ``DIR/<predicted digit>/`` (``DIR/unsure/``
below the confidence threshold) and its raw camera crop in ``DIR/<digit>/raw/``, named
``<time>_<confidence>_<n>.png``; what the model rejected as "not a digit" goes to ``DIR/none/`` (the
confidence in the name is then the "none" probability). Fix wrong labels by moving files between the
folders (a digit wrongly rejected from ``none/`` to its digit, a wrongly read mark into ``none/``), then
``host-eval --data DIR`` and ``host-train --extra-data DIR``. Stops saving at ``limit`` files.

A write that fails (full disk, read-only folder, no permission) never leaves a file under a final name: the
PNG is encoded in memory, written to a hidden temporary file, fsynced, its size checked, and only then
renamed. The failure is logged once, crops pause for ``RETRY_SECONDS`` and the reader keeps reading.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import cv2

from device.errors import ConfigError
from device.events import FrameEvent
from device.outputs import ClosedOnExit
from device.safeio import write_atomically
from device.segment import to_grey

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0


def _write_png(path: Path, image) -> None:
    """Encode in memory, then write atomically: never a half-written or empty PNG in the dataset."""
    try:
        ok, encoded = cv2.imencode(".png", image)
    except cv2.error:
        ok = False
    if not ok or encoded.size == 0:
        raise OSError(f"{path}: the image could not be encoded as PNG")
    write_atomically(path, encoded.tobytes())


def build(section, context) -> CropSaver:
    return CropSaver(section.folder, section.max_files, context.live)


class CropSaver(ClosedOnExit):
    """An output that saves digit crops as PNG files; on live sources only when the reading changes (no
    floods)."""

    def __init__(self, folder: str | Path, limit: int = 5000, live: bool = True):
        self.folder = Path(folder)
        self.limit = limit
        self.live = live
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.saved = sum(1 for _ in self.folder.glob("*/*.png"))
        except OSError as exc:
            raise ConfigError(
                f"--save-crops {self.folder}: cannot use the folder ({exc.strerror or exc})"
            ) from None
        self._warned = False
        self.failures = 0
        self._paused_until = 0.0
        self._failing = False

    def show(self, event: FrameEvent) -> None:
        reading, frame, result = event.reading, event.frame, event.result
        if result is None or frame is None or (self.live and not reading.changed):
            return
        if not result.digits and not getattr(result, "rejected", None):
            return
        if time.monotonic() < self._paused_until:
            return
        try:
            self._save(frame, result)
        except OSError as exc:
            self.failures += 1
            self._paused_until = time.monotonic() + RETRY_SECONDS
            if not self._failing:  # once per outage, not once per frame
                self._failing = True
                log.warning(
                    "--save-crops: cannot write in %s (%s); crops paused, retrying every %.0f s",
                    self.folder,
                    exc.strerror or exc,
                    RETRY_SECONDS,
                )
            return
        if self._failing:
            self._failing = False
            log.info("--save-crops: writing crops again in %s", self.folder)

    def _save(self, frame, result) -> None:
        grey = to_grey(frame)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        kept = [
            ("unsure" if digit.value is None else str(digit.value), digit.confidence, digit.box, image)
            for digit, image in zip(result.digits, result.normalized, strict=True)
        ]
        rejected = [
            ("none", r.prediction.none, r.segment.box, r.normalized) for r in getattr(result, "rejected", [])
        ]
        for n, (label, confidence, box, image) in enumerate(kept + rejected):
            if self.saved >= self.limit:
                if not self._warned:
                    log.warning(
                        "--save-crops: %d crops in %s, the limit; not saving more", self.saved, self.folder
                    )
                    self._warned = True
                return
            name = f"{stamp}_{confidence:.2f}_{n}.png"
            (self.folder / label / "raw").mkdir(parents=True, exist_ok=True)
            x, y, w, h = box.as_list()
            pad = max(2, h // 8)
            raw = grey[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
            _write_png(self.folder / label / name, image)
            try:
                _write_png(self.folder / label / "raw" / name, raw)
            except OSError:
                with contextlib.suppress(OSError):  # keep the pair together: both or neither
                    os.unlink(self.folder / label / name)
                raise
            self.saved += 1
