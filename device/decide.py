"""Decision: turn per-frame digits into readings worth reporting.

A live camera flickers: a hand moves, the focus hunts, one frame in ten misreads a 7 as a 1. A reading is
reported when the same text wins ``vote_needed`` of the last ``vote_frames`` frames, "no digits" after
``empty_frames`` empty frames in a row, and ``changed`` is set only when the reported reading changes.
For a still image (``live=False``) every frame's reading is reported as it is.
"""

from __future__ import annotations

from collections import Counter, deque

from device.reading import Digit, Reading


class Decider:
    """Temporal vote over frame readings (confidence thresholds are applied by the pipeline)."""

    def __init__(self, vote_frames: int = 5, vote_needed: int = 3, empty_frames: int = 10, live: bool = True):
        if not 1 <= vote_needed <= vote_frames:
            raise ValueError(f"vote_needed {vote_needed} must be between 1 and vote_frames {vote_frames}")
        self.vote_needed = vote_needed
        self.empty_frames = empty_frames
        self.live = live
        self._history: deque[str] = deque(maxlen=vote_frames)
        self._latest: dict[str, tuple[Digit, ...]] = {}
        self._empty_run = 0
        self._reported: Reading | None = None

    @property
    def current(self) -> Reading:
        """The reading currently reported ("" until the first one)."""
        return self._reported or Reading()

    def update(self, digits: list[Digit] | tuple[Digit, ...]) -> Reading:
        """Feed one frame's digits; returns the reported reading with ``changed`` set on a change."""
        digits = tuple(digits)
        frame_reading = Reading(digits)
        if not self.live:
            return self._report(frame_reading)
        text = frame_reading.text
        self._history.append(text)
        self._latest[text] = digits
        if not digits:
            self._empty_run += 1
            if self._empty_run >= self.empty_frames:
                return self._report(Reading())
            return self._keep()
        self._empty_run = 0
        winner, votes = Counter(t for t in self._history if t).most_common(1)[0]
        if votes >= self.vote_needed:
            # Keep the latest frame's boxes for the winning text, so boxes follow the paper.
            return self._report(Reading(self._latest[winner]))
        return self._keep()

    def _keep(self) -> Reading:
        current = self.current
        return Reading(current.digits, changed=False)

    def _report(self, reading: Reading) -> Reading:
        changed = self._reported is None or reading.text != self._reported.text
        self._reported = Reading(reading.digits, changed=changed)
        # Forget boxes of texts no longer in the window.
        self._latest = {t: d for t, d in self._latest.items() if t in self._history or t == reading.text}
        return self._reported
