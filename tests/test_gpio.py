"""GPIO outputs on gpiozero's own MockFactory: the exact pin states for every digit."""

import pytest
from gpiozero.pins.mock import MockFactory

from device.events import FrameEvent, LoopStats
from device.outputs.gpio import BcdLeds, MatchLed, SevenSegment, make_pin_factory
from device.reading import Box, Digit, Reading

# The standard seven-segment patterns, segments a b c d e f g (the hardware's truth, not our code's).
SEGMENTS = {
    "0": "1111110",
    "1": "0110000",
    "2": "1101101",
    "3": "1111001",
    "4": "0110011",
    "5": "1011011",
    "6": "1011111",
    "7": "1110000",
    "8": "1111111",
    "9": "1111011",
    "-": "0000001",
    " ": "0000000",
}
SEG_PINS = [17, 27, 22, 10, 9, 11, 0]
BCD_PINS = [5, 6, 13, 19]


def reading(text, changed=True):
    ds = tuple(Digit(None if c == "?" else int(c), 0.9, Box(i * 30, 0, 20, 40)) for i, c in enumerate(text))
    return Reading(ds, changed=changed)


def states(factory, pins):
    return "".join("1" if factory.pin(p).state else "0" for p in pins)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.mark.parametrize("digit", range(10))
def test_bcd_shows_each_digit_in_binary(factory, digit):
    leds = BcdLeds(BCD_PINS, valid_pin=26, pin_factory=factory)
    leds.show(FrameEvent(reading(str(digit))))
    expected = "".join(str((digit >> bit) & 1) for bit in range(4))
    assert states(factory, BCD_PINS) == expected
    assert factory.pin(26).state is True
    leds.close()
    assert states(factory, [*BCD_PINS, 26]) == "00000"
    leds.close()  # idempotent


def test_bcd_unsure_and_empty_are_dark(factory):
    leds = BcdLeds(BCD_PINS, valid_pin=26, pin_factory=factory)
    leds.show(FrameEvent(reading("7")))
    leds.show(FrameEvent(reading("?")))
    assert states(factory, [*BCD_PINS, 26]) == "00000"
    leds.show(FrameEvent(reading("9")))
    leds.show(FrameEvent(reading("", changed=True)))
    assert states(factory, [*BCD_PINS, 26]) == "00000"
    leds.close()


@pytest.mark.parametrize("char", list("0123456789"))
def test_seven_segment_common_cathode(factory, char):
    display = SevenSegment(SEG_PINS, pin_factory=factory)
    display.show(FrameEvent(reading(char)))
    assert states(factory, SEG_PINS) == SEGMENTS[char]
    display.close()
    assert states(factory, SEG_PINS) == "0000000"


def test_seven_segment_common_anode_inverts_and_unsure_is_dash(factory):
    display = SevenSegment(SEG_PINS, common_anode=True, pin_factory=factory)
    display.show(FrameEvent(reading("4")))
    inverted = "".join("0" if c == "1" else "1" for c in SEGMENTS["4"])
    assert states(factory, SEG_PINS) == inverted
    display.show(FrameEvent(reading("?")))
    assert states(factory, SEG_PINS) == "".join("0" if c == "1" else "1" for c in SEGMENTS["-"])
    display.close()
    assert states(factory, SEG_PINS) == "1111111"  # common anode: high = off


def test_multi_digit_display_shows_last_digits(factory):
    display = SevenSegment(SEG_PINS, digit_pins=[20, 21], pin_factory=factory)
    assert display.text_for(reading("1234")) == "34"
    assert display.text_for(reading("7")) == " 7"
    assert display.text_for(reading("5?")) == "5-"
    display.show(FrameEvent(reading("42")))
    assert display._display.value == ("4", "2")
    display.close()
    assert states(factory, SEG_PINS) == "0000000"


def test_pin_factory_names():
    from gpiozero import Device

    from device.errors import ConfigError

    assert isinstance(make_pin_factory("mock"), MockFactory)
    previous, Device.pin_factory = Device.pin_factory, MockFactory()
    try:  # a factory already chosen (by GPIOZERO_PIN_FACTORY or the program) is left to gpiozero
        assert make_pin_factory("default") is None
    finally:
        Device.pin_factory = previous
    if not _on_a_pi():
        with pytest.raises(ConfigError, match="off a Pi use --pin-factory mock"):
            make_pin_factory("default")
    with pytest.raises(ConfigError, match="must be one of"):
        make_pin_factory("gpio9000")


def _on_a_pi() -> bool:
    from pathlib import Path

    model = Path("/proc/device-tree/model")
    return model.exists() and "Raspberry Pi" in model.read_text(errors="replace")


@pytest.mark.skipif(_on_a_pi(), reason="a Raspberry Pi has a default pin factory")
def test_gpio_output_off_a_pi_without_a_pin_factory_is_one_line():
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "--source", str(ROOT / "device" / "demo" / "page.jpg"), "--once",
         "--output", "gpio-bcd"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "device-run: no GPIO pin factory works on this machine (not a Raspberry Pi?); off a Pi use "
        "--pin-factory mock, or --emulate to see the pins on a virtual panel"
    )


@pytest.mark.parametrize(
    "match, lit_for",
    [("", {"7", "42", "4?", "142"}), ("42", {"42"}), ("4[0-9]", {"42"}), ("7|42", {"7", "42"})],
)
def test_match_led_lights_while_the_reading_matches(factory, match, lit_for):
    led = MatchLed(21, match, pin_factory=factory)
    for text in ("7", "42", "4?", "?", "", "142"):
        led.show(FrameEvent(reading(text)))
        assert factory.pin(21).state == (text in lit_for), (match, text)
    led.show(FrameEvent(reading("42")))
    led.show(
        FrameEvent(reading("7", changed=False), stats=LoopStats(frames=2))
    )  # the loop's unchanged readings: left as is
    assert factory.pin(21).state == ("42" in lit_for)
    led.close()
    led.close()
    assert not factory.pin(21).state


def test_match_led_active_low_and_a_bad_pattern(factory):
    from device.errors import ConfigError

    led = MatchLed(20, "3", active_high=False, pin_factory=factory)
    led.show(FrameEvent(reading("3")))
    assert factory.pin(20).state is False  # active low: lit means driven low
    led.show(FrameEvent(reading("8")))
    assert factory.pin(20).state is True
    led.close()
    with pytest.raises(ConfigError, match=r"output gpio-led: match '\(': not a regular expression"):
        MatchLed(16, "(", pin_factory=factory)


def test_gpio_led_from_the_cli_and_a_bad_match_is_one_line():
    import subprocess
    import sys

    from tests.conftest import ROOT

    page = str(ROOT / "device" / "demo" / "page.jpg")
    run = [sys.executable, "-m", "device.cli", "--source", page, "--once", "--pin-factory", "mock"]
    ok = subprocess.run([*run, "--output", "gpio-led", "--led-match", "4096 17", "--led-pin", "16"],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout == "4096 17\n", ok.stderr
    bad = subprocess.run([*run, "--output", "gpio-led", "--led-match", "("], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .startswith("device-run: output.gpio_led.match = '(': not a regular expression")
    )


def test_bcd_shows_the_last_digit_like_the_seven_segment_or_the_first_when_asked(factory):
    leds = BcdLeds(BCD_PINS, valid_pin=26, pin_factory=factory)
    display = SevenSegment(SEG_PINS, pin_factory=factory)
    for output in (leds, display):
        output.show(FrameEvent(reading("2026")))
    assert states(factory, BCD_PINS) == "0110"  # 6, bit 0 first
    assert states(factory, SEG_PINS) == SEGMENTS["6"]
    leds.close()
    display.close()
    first = BcdLeds(BCD_PINS, pin_factory=factory, digit="first")
    first.show(FrameEvent(reading("2026")))
    assert states(factory, BCD_PINS) == "0100"  # 2
    first.close()
