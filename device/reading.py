"""The small value types that flow between the stages."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels, plus the reading-order line it belongs to."""

    x: int
    y: int
    w: int
    h: int
    line: int = 0

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Digit:
    """One classified digit: ``value`` is None when the classifier was not sure enough (shown as '?')."""

    value: int | None
    confidence: float
    box: Box

    @property
    def char(self) -> str:
        return "?" if self.value is None else str(self.value)

    def as_dict(self) -> dict:
        # JSON has no NaN: a model that outputs one gives a null confidence (and a "?" digit upstream).
        confidence = float(self.confidence)
        shown = round(confidence, 4) if math.isfinite(confidence) else None
        return {"digit": self.value, "confidence": shown, "box": self.box.as_list()}


@dataclass(frozen=True)
class Reading:
    """What was read in a frame: digits in reading order; ``text`` joins lines with one space."""

    digits: tuple[Digit, ...] = ()
    changed: bool = False
    # What the plausibility rules say of it (``implausible``, ``reason``, ``rejected``); empty when they pass.
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        lines: dict[int, str] = {}
        for digit in self.digits:
            lines[digit.box.line] = lines.get(digit.box.line, "") + digit.char
        return " ".join(lines[k] for k in sorted(lines))

    def as_dict(self) -> dict:
        return {"text": self.text, "digits": [d.as_dict() for d in self.digits]}
