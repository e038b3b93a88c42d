"""``--save-crops DIR``: keep what the model saw, to build a custom dataset from the user's own camera.

Each classified digit is stored as its normalized 28x28 PNG in ``DIR/<predicted digit>/`` (``DIR/unsure/``
below the confidence threshold) and its raw camera crop in ``DIR/<digit>/raw/``, named
``<time>_<confidence>_<n>.png``. Fix wrong labels by moving files between the digit folders, then
``host-eval --data DIR`` and ``host-train --extra-data DIR``. Stops saving at ``limit`` files.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2

from device.segment import to_grey

log = logging.getLogger(__name__)


def _write_png(path: Path, image) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)  # never a half-written PNG in the dataset


class CropSaver:
    """An output that saves digit crops; on live sources only when the reading changes (no floods)."""

    def __init__(self, folder: str | Path, limit: int = 5000, live: bool = True):
        self.folder = Path(folder)
        self.limit = limit
        self.live = live
        self.folder.mkdir(parents=True, exist_ok=True)
        self.saved = sum(1 for _ in self.folder.glob("*/*.png"))
        self._warned = False

    def show(self, reading, frame, result, stats) -> None:
        if result is None or frame is None or (self.live and not reading.changed) or not result.digits:
            return
        grey = to_grey(frame)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        for n, (digit, image) in enumerate(zip(result.digits, result.normalized, strict=True)):
            if self.saved >= self.limit:
                if not self._warned:
                    log.warning(
                        "--save-crops: %d crops in %s, the limit; not saving more", self.saved, self.folder
                    )
                    self._warned = True
                return
            label = "unsure" if digit.value is None else str(digit.value)
            name = f"{stamp}_{digit.confidence:.2f}_{n}.png"
            (self.folder / label / "raw").mkdir(parents=True, exist_ok=True)
            x, y, w, h = digit.box.as_list()
            pad = max(2, h // 8)
            raw = grey[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
            _write_png(self.folder / label / name, image)
            _write_png(self.folder / label / "raw" / name, raw)
            self.saved += 1

    def close(self) -> None:
        pass
