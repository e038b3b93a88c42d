"""``window`` output: an OpenCV window with the frame, the boxes, digits, confidences and fps; ``q`` quits."""

from __future__ import annotations

import cv2
import numpy as np

from device.errors import ConfigError
from device.events import FrameEvent
from device.outputs import ClosedOnExit, QuitRequested
from device.reading import Reading

GREEN, ORANGE, WHITE, BLACK = (60, 200, 60), (0, 160, 255), (255, 255, 255), (0, 0, 0)


def has_gui() -> bool:
    """True when this OpenCV build can open windows (opencv-python, not -headless)."""
    info = cv2.getBuildInformation()
    gui = next((line for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    return gui.split(":", 1)[-1].strip().upper() not in ("", "NONE")


def close_window(title: str) -> None:
    """Destroy a window and let the GUI loop process it; harmless if it is already gone."""
    try:
        cv2.destroyWindow(title)
        cv2.waitKey(1)
    except cv2.error:
        pass


def annotate(frame: np.ndarray, reading: Reading, digits, fps: float, scale: float = 1.0) -> np.ndarray:
    """A copy of the frame (BGR) with each digit's box, value and confidence, the reading and fps drawn on."""
    image = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    image = image.copy() if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale)
    thickness = max(1, round(image.shape[0] / 300))
    for digit in digits:
        x, y, w, h = (round(v * scale) for v in digit.box.as_list())
        color = GREEN if digit.value is not None else ORANGE
        cv2.rectangle(image, (x, y), (x + w, y + h), color, thickness)
        label = f"{digit.char} {digit.confidence:.2f}"
        cv2.putText(
            image, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * thickness, color, thickness
        )
    banner = f"{reading.text or '-'}   {fps:.1f} fps"
    cv2.rectangle(image, (0, 0), (image.shape[1], 28 * thickness), BLACK, -1)
    cv2.putText(
        image, banner, (6, 22 * thickness), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * thickness, WHITE, thickness
    )
    return image


def build(section, _context) -> WindowOutput:
    return WindowOutput(section.title, section.scale)


class WindowOutput(ClosedOnExit):
    """Shows every processed frame; closing it or pressing ``q`` ends the loop."""

    def __init__(self, title: str = "digit-reader", scale: float = 1.0):
        if not has_gui():
            raise ConfigError(
                "output window: this OpenCV has no GUI support (opencv-python-headless); "
                "pip install opencv-python, or drop 'window' from the outputs"
            )
        self.title, self.scale = title, scale
        self._open = True
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, event: FrameEvent) -> None:
        if not self._open or event.frame is None:
            return
        digits = event.result.digits if event.result is not None else event.reading.digits
        cv2.imshow(self.title, annotate(event.frame, event.reading, digits, event.stats.fps, self.scale))
        if (cv2.waitKey(1) & 0xFF) == ord("q"):
            raise QuitRequested("q pressed")

    def close(self) -> None:
        if self._open:
            self._open = False
            close_window(self.title)
