"""Plausibility rules: is a new stable reading believable before any output sees it?

Rules (all optional, from ``[decision]``): the number of digits (exact or a range), a regular expression the
whole text must match, a numeric range, and a monotonic mode (a counter or meter that only goes up) with a
maximum change per minute. When a reading breaks a rule the policy decides:

- ``keep`` (default, "stale, not wrong"): the last good reading stays reported, flagged ``implausible``;
- ``publish``: the new reading is reported, flagged ``implausible``.

The flag, the reason and the rejected text ride in ``Reading.extra`` (outputs put them in their attributes);
each rejection is logged once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from device.reading import Reading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """What a plausible reading looks like; the defaults accept everything."""

    digits: tuple[int, ...] = ()
    pattern: str = ""
    value_range: tuple[float, ...] = ()
    monotonic: bool = False
    max_change_per_minute: float = 0.0
    on_implausible: str = "keep"

    @classmethod
    def from_config(cls, decision) -> Rules:
        return cls(
            tuple(decision.digits),
            decision.pattern,
            tuple(decision.value_range),
            decision.monotonic,
            decision.max_change_per_minute,
            decision.on_implausible,
        )

    @property
    def active(self) -> bool:
        return bool(self.digits or self.pattern or self.value_range or self.monotonic)

    @property
    def numeric(self) -> bool:
        return bool(self.value_range or self.monotonic)


def numeric_value(text: str) -> float | None:
    """The reading as a number (lines joined, spaces dropped); None when it has no digits or an unsure one."""
    joined = text.replace(" ", "")
    return float(int(joined)) if joined.isdigit() else None


class Checker:
    """Judges readings against ``Rules``, remembering the last good value for the monotonic rule."""

    def __init__(self, rules: Rules, clock: Callable[[], float] = time.monotonic):
        self.rules = rules
        self.clock = clock
        self._pattern = re.compile(rules.pattern) if rules.pattern else None
        self._last_value: float | None = None
        self._last_time = 0.0

    def problem(self, text: str) -> str | None:
        """Why ``text`` is implausible, or None when every rule holds."""
        r = self.rules
        count = sum(c != " " for c in text)
        if r.digits:
            low, high = (r.digits[0], r.digits[0]) if len(r.digits) == 1 else r.digits
            if not low <= count <= high:
                want = str(low) if low == high else f"{low} to {high}"
                return f"{count} digits, expected {want}"
        if self._pattern is not None and not self._pattern.fullmatch(text):
            return f"does not match pattern {r.pattern!r}"
        if not r.numeric:
            return None
        value = numeric_value(text)
        if value is None:
            return "not a number"
        if r.value_range and not r.value_range[0] <= value <= r.value_range[1]:
            return f"{value:g} outside [{r.value_range[0]:g}, {r.value_range[1]:g}]"
        if r.monotonic and self._last_value is not None:
            if value < self._last_value:
                return f"went down from {self._last_value:g} to {value:g} (monotonic)"
            if r.max_change_per_minute > 0:
                minutes = max(self.clock() - self._last_time, 0.0) / 60.0
                allowed = r.max_change_per_minute * max(minutes, 1 / 60)
                if value - self._last_value > allowed:
                    return (
                        f"rose by {value - self._last_value:g} in {minutes * 60:.0f} s "
                        f"(at most {r.max_change_per_minute:g} per minute)"
                    )
        return None

    def accept(self, text: str) -> None:
        """Remember ``text`` as the last good reading."""
        value = numeric_value(text)
        if value is not None:
            self._last_value, self._last_time = value, self.clock()


class PlausibleDecider:
    """Wraps a ``Decider``: same ``update()``/``current``, with every new stable reading checked first."""

    def __init__(self, decider, rules: Rules, clock: Callable[[], float] = time.monotonic):
        self.decider = decider
        self.rules = rules
        self.checker = Checker(rules, clock)
        self._current: Reading | None = None
        self.implausible = 0

    @property
    def current(self) -> Reading:
        return self._current or self.decider.current

    def update(self, digits) -> Reading:
        reading = self.decider.update(digits)
        if not self.rules.active:
            return reading
        if not reading.changed:
            current = self.current
            return Reading(current.digits, changed=False, extra=current.extra)
        problem = self.checker.problem(reading.text)
        if problem is None:
            self.checker.accept(reading.text)
            self._current = reading
            return reading
        self.implausible += 1
        flags = {"implausible": True, "reason": problem, "rejected": reading.text}
        if self.rules.on_implausible == "publish":
            log.warning("reading %r implausible: %s; publishing it flagged", reading.text, problem)
            self._current = Reading(reading.digits, changed=True, extra=flags)
        else:
            kept = self._current or Reading()
            log.warning("reading %r implausible: %s; keeping %r", reading.text, problem, kept.text)
            self._current = Reading(kept.digits, changed=True, extra=flags)
        return self._current
