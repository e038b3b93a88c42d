"""GPIO outputs through gpiozero: four BCD LEDs (+ a "valid" LED), 7-segment displays and a match LED.

The pin factory is injected (``MockFactory`` in tests and desktop emulation, ``lgpio`` on a Pi 5), the way
gpiozero itself is meant to be used, and found by name among gpiozero's own ``gpiozero_pin_factories``
entry points. ``show(event)`` updates the pins when the reading changes, ``display(reading)`` at once. All
pins are switched off by ``close()``.
"""

from __future__ import annotations

import contextlib
import logging

from device.errors import ConfigError
from device.events import FrameEvent
from device.outputs import ClosedOnExit
from device.reading import Reading

log = logging.getLogger(__name__)

# Segments a-g lit for "-": the display's way of saying "not sure".
DASH = (0, 0, 0, 0, 0, 0, 1)


NO_GPIO_HELP = (
    "no GPIO pin factory works on this machine (not a Raspberry Pi?); off a Pi use --pin-factory mock, "
    "or --emulate to see the pins on a virtual panel"
)


def _default_factory():
    """gpiozero's own default choice, made now with its fallback warnings kept quiet: off a Pi it tries four
    factories, warns about each and ends in BadPinFactory; that becomes one line saying what to do."""
    import warnings

    from gpiozero import Device
    from gpiozero.exc import BadPinFactory, PinFactoryFallback

    if Device.pin_factory is not None:  # already chosen (GPIOZERO_PIN_FACTORY, or set by the program)
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinFactoryFallback)
        try:
            return Device._default_pin_factory()
        except AttributeError:  # a gpiozero without this (private) helper: let it choose on first use
            return None
        except BadPinFactory:
            raise ConfigError(NO_GPIO_HELP) from None


def make_pin_factory(name: str):
    """A gpiozero pin factory by name; "default" is gpiozero's own choice (a one-line error off a Pi)."""
    from importlib.metadata import entry_points

    from device.config import PIN_FACTORY_GROUP, pin_factories

    if name in ("default", "", None):
        return _default_factory()
    found = [ep for ep in entry_points(group=PIN_FACTORY_GROUP) if ep.name == name]
    if not found:
        raise ConfigError(f"pin factory {name!r}: must be one of {', '.join(pin_factories())}")
    try:
        return found[0].load()()
    except ImportError as exc:
        raise ConfigError(f"pin factory {name}: its library is not installed ({exc.name})") from None
    except Exception as exc:  # gpiozero raises its own errors when no GPIO chip is present
        raise ConfigError(f"pin factory {name}: cannot start ({exc})") from None


def _opened(kind: str, make):
    """``make()``, with gpiozero's own errors (BadPinFactory, PinInUse...) as one line naming the output."""
    try:
        return make()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"output {kind}: cannot open its pins ({type(exc).__name__}: {exc})") from None


def build_bcd(c, context) -> BcdLeds:
    factory = context.pin_factory()
    return _opened(
        "gpio-bcd", lambda: BcdLeds(c.pins, c.valid_pin, c.active_high, pin_factory=factory, digit=c.digit)
    )


def build_seven_segment(c, context) -> SevenSegment:
    factory = context.pin_factory()
    return _opened(
        "gpio-7seg",
        lambda: SevenSegment(c.segment_pins, c.dp_pin, c.digit_pins, c.common_anode, pin_factory=factory),
    )


def build_match_led(c, context) -> MatchLed:
    factory = context.pin_factory()
    return _opened("gpio-led", lambda: MatchLed(c.pin, c.match, c.active_high, pin_factory=factory))


@contextlib.contextmanager
def _factory_as_default(factory):
    """Make ``factory`` gpiozero's default for a moment.

    gpiozero 2.0's LEDMultiCharDisplay builds its internal CompositeOutputDevice without passing the
    pin_factory on, so that one device falls back to the default factory (and fails off a Pi). Only the
    constructor needs it; the devices keep the factory they were built with.
    """
    from gpiozero import Device

    if factory is None:
        yield
        return
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield
    finally:
        Device.pin_factory = previous


def _one_digit(reading: Reading, which: str = "last"):
    if not reading.digits:
        return None
    return reading.digits[0] if which == "first" else reading.digits[-1]


class BcdLeds(ClosedOnExit):
    """Four LEDs show one digit in binary (``pins`` = bit 0, 1, 2, 3); ``valid_pin`` lights for a sure digit.

    With several digits in the reading, the last one (reading order) is shown by default: the same digit a
    one-digit 7-segment display shows; ``digit="first"`` shows the first one.
    """

    def __init__(
        self,
        pins,
        valid_pin: int | None = None,
        active_high: bool = True,
        pin_factory=None,
        digit: str = "last",
    ):
        from gpiozero import LED, LEDBoard

        if digit not in ("first", "last"):
            raise ConfigError(f"output gpio-bcd: digit {digit!r}: must be first or last")
        self.digit = digit

        self._bits = LEDBoard(*pins, active_high=active_high, pin_factory=pin_factory)
        self._valid = None
        if valid_pin is not None and valid_pin >= 0:
            self._valid = LED(valid_pin, active_high=active_high, pin_factory=pin_factory)

    def show(self, event: FrameEvent) -> None:
        if event.reading.changed:
            self.display(event.reading)

    def display(self, reading: Reading) -> None:
        """Show ``reading``'s digit now."""
        if self._bits is None:
            return
        digit = _one_digit(reading, self.digit)
        value = digit.value if digit is not None else None
        if value is None:
            self._bits.off()
        else:
            self._bits.value = tuple((value >> bit) & 1 for bit in range(4))
        if self._valid is not None:
            self._valid.value = value is not None

    def close(self) -> None:
        for device in (self._bits, self._valid):
            if device is not None and not device.closed:
                device.off()
                device.close()
        self._bits = self._valid = None


class SevenSegment(ClosedOnExit):
    """A 7-segment display: ``LEDCharDisplay`` for one digit, ``LEDMultiCharDisplay`` with digit pins.

    Unsure digits show "-", no digits a blank display. With more digits than the display has, the last
    ones are shown (like a counter).
    """

    def __init__(
        self,
        segment_pins,
        dp_pin: int | None = None,
        digit_pins=(),
        common_anode: bool = False,
        pin_factory=None,
    ):
        from gpiozero import LEDCharDisplay, LEDMultiCharDisplay

        active_high = not common_anode
        dp = dp_pin if dp_pin is not None and dp_pin >= 0 else None
        self._char = LEDCharDisplay(*segment_pins, dp=dp, active_high=active_high, pin_factory=pin_factory)
        if "-" not in self._char.font:
            self._char.font["-"] = DASH
        self._width = max(1, len(digit_pins))
        self._display = self._char
        if digit_pins:
            # Digit-select transistors are switched the opposite way to the segments on a common-anode module.
            with _factory_as_default(pin_factory):
                self._display = LEDMultiCharDisplay(
                    self._char, *digit_pins, active_high=active_high, pin_factory=pin_factory
                )

    def text_for(self, reading: Reading) -> str:
        """What the display shows for a reading (right-aligned, '?' as '-')."""
        chars = "".join(d.char for d in reading.digits).replace("?", "-")
        return chars[-self._width :].rjust(self._width)

    def show(self, event: FrameEvent) -> None:
        if event.reading.changed:
            self.display(event.reading)

    def display(self, reading: Reading) -> None:
        """Show ``reading`` now."""
        if self._display is None:
            return
        text = self.text_for(reading)
        self._display.value = text if self._width > 1 else text[0]

    def close(self) -> None:
        display, self._display = self._display, None
        if display is not None and display is not self._char:
            display.value = " " * self._width  # stops the multiplexing thread, digit selects off
            self._char.off()  # a blank value leaves the last segments driven; switch them off too
            display.close()
        if self._char is not None and not self._char.closed:
            self._char.off()
            self._char.close()
        self._char = None


class MatchLed(ClosedOnExit):
    """One LED that lights while the reading matches: ``match`` is a regular expression the whole reading
    text must match (``42``, ``4[0-9]``, ``7|11``); empty means any reading with at least one sure digit."""

    def __init__(self, pin: int, match: str = "", active_high: bool = True, pin_factory=None):
        import re

        from gpiozero import LED

        try:
            self._pattern = re.compile(match) if match else None
        except re.error as exc:
            raise ConfigError(f"output gpio-led: match {match!r}: not a regular expression ({exc})") from None
        self._led = LED(pin, active_high=active_high, pin_factory=pin_factory)

    def matches(self, reading: Reading) -> bool:
        if self._pattern is None:
            return any(d.value is not None for d in reading.digits)
        return self._pattern.fullmatch(reading.text) is not None

    def show(self, event: FrameEvent) -> None:
        if event.reading.changed:
            self.display(event.reading)

    def display(self, reading: Reading) -> None:
        """Light the LED now if ``reading`` matches, else switch it off."""
        if self._led is not None:
            self._led.value = self.matches(reading)

    def close(self) -> None:
        led, self._led = self._led, None
        if led is not None and not led.closed:
            led.off()
            led.close()
