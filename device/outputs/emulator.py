"""Desktop emulation: the camera view next to a virtual panel drawn from the mock GPIO pins' real states.

``device-run --emulate`` runs the gpio-7seg and gpio-bcd outputs on gpiozero's ``MockFactory``; this window
reads the pins back (not the reading) and draws what the hardware would show: the lit segments of the
7-segment display and the BCD and "valid" LEDs. Keys: ``q`` quit, ``s`` save the frame and its crops,
``p`` pause (the view then says "PAUSED").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from device.errors import ConfigError
from device.events import FrameEvent
from device.outputs import ClosedOnExit, QuitRequested
from device.outputs.window import annotate, close_window, has_gui

log = logging.getLogger(__name__)

VIEW_HEIGHT = 480
PANEL_WIDTH = 300
LIT, DARK = (40, 40, 255), (40, 40, 60)  # BGR: red LED segments, unlit segments
LED_ON, LED_OFF = (60, 230, 60), (50, 70, 50)
PAUSED_COLOR = (0, 215, 255)  # BGR amber: the "PAUSED" banner
LABEL, FONT = (200, 200, 200), cv2.FONT_HERSHEY_SIMPLEX
PAUSED_TEXT = "PAUSED - p: resume, s: save, q: quit"

# Seven-segment geometry in panel coordinates: the digit's box is 120 x 200 at (90, 40).
SEG_X, SEG_Y, SEG_W, SEG_H, SEG_T = 90, 40, 120, 200, 16
SEGMENT_RECTS = {  # x0, y0, x1, y1 of each segment a-g
    "a": (SEG_X + SEG_T, SEG_Y, SEG_X + SEG_W - SEG_T, SEG_Y + SEG_T),
    "b": (SEG_X + SEG_W - SEG_T, SEG_Y + SEG_T, SEG_X + SEG_W, SEG_Y + SEG_H // 2 - SEG_T // 2),
    "c": (SEG_X + SEG_W - SEG_T, SEG_Y + SEG_H // 2 + SEG_T // 2, SEG_X + SEG_W, SEG_Y + SEG_H - SEG_T),
    "d": (SEG_X + SEG_T, SEG_Y + SEG_H - SEG_T, SEG_X + SEG_W - SEG_T, SEG_Y + SEG_H),
    "e": (SEG_X, SEG_Y + SEG_H // 2 + SEG_T // 2, SEG_X + SEG_T, SEG_Y + SEG_H - SEG_T),
    "f": (SEG_X, SEG_Y + SEG_T, SEG_X + SEG_T, SEG_Y + SEG_H // 2 - SEG_T // 2),
    "g": (
        SEG_X + SEG_T,
        SEG_Y + SEG_H // 2 - SEG_T // 2,
        SEG_X + SEG_W - SEG_T,
        SEG_Y + SEG_H // 2 + SEG_T // 2,
    ),
}
LED_CENTERS = [(60 + 50 * i, 320) for i in range(4)] + [(260, 320)]  # bits 3..0 left to right, then "valid"


def segment_center(name: str) -> tuple[int, int]:
    """Panel coordinates of the middle of segment ``name`` (for tests and documentation)."""
    x0, y0, x1, y1 = SEGMENT_RECTS[name]
    return (x0 + x1) // 2, (y0 + y1) // 2


def draw_paused(view: np.ndarray) -> None:
    """An amber "PAUSED" banner across the bottom of the camera view (in place)."""
    h, w = view.shape[:2]
    cv2.rectangle(view, (0, h - 44), (w, h), (0, 0, 0), -1)
    cv2.putText(view, PAUSED_TEXT, (10, h - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.7, PAUSED_COLOR, 2)


def build(_section, context) -> EmulatorWindow:
    """The emulator on the GPIO outputs' own (mock) pin factory; config validation made sure they run."""
    seg, bcd = context.config.output.gpio_7seg, context.config.output.gpio_bcd
    return EmulatorWindow(
        context.pin_factory(),
        seg.segment_pins,
        bcd.pins,
        bcd.valid_pin,
        seg.common_anode,
        bcd.active_high,
        stop=context.stop,
        bcd_digit=bcd.digit,
    )


class EmulatorWindow(ClosedOnExit):
    """Window output for ``--emulate``: camera view with boxes + panel read from the mock pins."""

    def __init__(
        self,
        factory,
        segment_pins,
        bcd_pins,
        valid_pin: int = -1,
        common_anode: bool = False,
        bcd_active_high: bool = True,
        title: str = "digit-reader (emulation)",
        stop=None,
        save_dir: str | Path = "captures",
        bcd_digit: str = "last",
        render_only: bool = False,
    ):
        """``render_only``: no window (compose() and panel() only), for tests and screenshots."""
        if not render_only and not has_gui():
            raise ConfigError(
                "--emulate: this OpenCV has no GUI support (opencv-python-headless); install the GUI build: "
                "pip uninstall -y opencv-python-headless && pip install opencv-python  (or pip install "
                "-e '.[emulate]' in a fresh venv)"
            )
        self.factory = factory
        self.segment_pins = list(segment_pins)
        self.bcd_pins = list(bcd_pins)
        self.valid_pin = valid_pin
        self.common_anode = common_anode
        self.bcd_active_high = bcd_active_high
        self.title = title
        self.stop = stop
        self.save_dir = Path(save_dir)
        self.bcd_digit = bcd_digit
        self.paused = False
        self._open = not render_only
        if not render_only:
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
            cv2.moveWindow(title, 0, 0)

    def _pin_on(self, pin: int, active_high: bool) -> bool:
        return bool(self.factory.pin(pin).state) == active_high

    def panel(self) -> np.ndarray:
        """The virtual hardware, drawn from the pins' current states."""
        image = np.full((VIEW_HEIGHT, PANEL_WIDTH, 3), 25, np.uint8)
        # Each label says which digit of the reading it shows, so a reading of several digits is no puzzle.
        cv2.putText(image, "7-segment: last digit", (SEG_X - 50, 28), FONT, 0.55, LABEL, 1)
        for name, pin in zip("abcdefg", self.segment_pins, strict=True):
            x0, y0, x1, y1 = SEGMENT_RECTS[name]
            lit = self._pin_on(pin, not self.common_anode)
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), LIT if lit else DARK, -1)
        cv2.putText(image, f"BCD: {self.bcd_digit} digit", (20, 270), FONT, 0.55, LABEL, 1)
        for (x, y), label in zip(LED_CENTERS, ("8", "4", "2", "1", "valid"), strict=True):
            (w, _), _ = cv2.getTextSize(label, FONT, 0.45, 1)
            cv2.putText(image, label, (x - w // 2, y - 24), FONT, 0.45, LABEL, 1)
        pins = [*reversed(self.bcd_pins), self.valid_pin]
        for (x, y), pin in zip(LED_CENTERS, pins, strict=True):
            on = pin >= 0 and self._pin_on(pin, self.bcd_active_high)
            cv2.circle(image, (x, y), 16, LED_ON if on else LED_OFF, -1)
        return image

    def compose(self, frame, reading, digits, fps: float) -> np.ndarray:
        view = annotate(frame, reading, digits, fps)
        scale = VIEW_HEIGHT / view.shape[0]
        view = cv2.resize(view, (round(view.shape[1] * scale), VIEW_HEIGHT))
        if self.paused:
            draw_paused(view)
        return np.hstack([view, self.panel()])

    def show(self, event: FrameEvent) -> None:
        frame, reading, result, fps = event.frame, event.reading, event.result, event.stats.fps
        if not self._open or frame is None:
            return
        digits = result.digits if result is not None else reading.digits
        cv2.imshow(self.title, self.compose(frame, reading, digits, fps))
        self._keys(cv2.waitKey(1) & 0xFF, frame, result)
        if self.paused:  # say so on screen, on the frame that stays
            cv2.imshow(self.title, self.compose(frame, reading, digits, fps))
        while self.paused and not (self.stop is not None and self.stop.is_set()):
            self._keys(cv2.waitKey(50) & 0xFF, frame, result)

    def _keys(self, key: int, frame, result) -> None:
        if key == ord("q"):
            raise QuitRequested("q pressed")
        if key == ord("p"):
            self.paused = not self.paused
            log.info("paused" if self.paused else "resumed")
        if key == ord("s"):
            self.save(frame, result)

    def save(self, frame, result) -> Path:
        """Save the frame and the normalized crops of its digits into save_dir/<time>/."""
        folder = self.save_dir / time.strftime("%Y%m%d-%H%M%S")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "frame.png"), frame)
        if result is not None:
            for n, (digit, image) in enumerate(zip(result.digits, result.normalized, strict=True)):
                cv2.imwrite(str(folder / f"{n}_{digit.char.replace('?', 'unsure')}.png"), image)
        log.info("saved the frame and %d crops in %s", len(result.digits) if result else 0, folder)
        return folder

    def close(self) -> None:
        if self._open:
            self._open = False
            close_window(self.title)
