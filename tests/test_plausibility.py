"""Plausibility rules: digit count, pattern, range, monotonic with a maximum rate, keep vs publish."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import cv2
import pytest

from device.config import from_dict
from device.decide import Decider
from device.errors import ConfigError
from device.plausibility import Checker, PlausibleDecider, Rules
from device.reading import Box, Digit
from tests.conftest import scene


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def digits(text: str) -> list[Digit]:
    return [Digit(int(c), 0.99, Box(10 * i, 0, 8, 10)) for i, c in enumerate(text)]


def still(rules: Rules, clock=None) -> PlausibleDecider:
    """A decider that reports every frame (as for a still image), checked by ``rules``."""
    return PlausibleDecider(Decider(live=False), rules, clock or Clock())


@pytest.mark.parametrize(
    ("rules", "text", "problem"),
    [
        (Rules(digits=(4,)), "123", "3 digits, expected 4"),
        (Rules(digits=(4,)), "1234", None),
        (Rules(digits=(2, 3)), "1234", "4 digits, expected 2 to 3"),
        (Rules(digits=(2, 3)), "12", None),
        (Rules(pattern=r"0\d{3}"), "1234", "does not match pattern '0\\\\d{3}'"),
        (Rules(pattern=r"0\d{3}"), "0234", None),
        (Rules(value_range=(10, 99)), "100", "100 outside [10, 99]"),
        (Rules(value_range=(10, 99)), "4?", "not a number"),
        (Rules(value_range=(10, 99)), "42", None),
    ],
)
def test_single_rules(rules, text, problem):
    assert Checker(rules).problem(text) == problem


def test_monotonic_with_a_maximum_change_per_minute():
    clock = Clock()
    checker = Checker(Rules(monotonic=True, max_change_per_minute=5), clock)
    assert checker.problem("100") is None
    checker.accept("100")
    assert checker.problem("99") == "went down from 100 to 99 (monotonic)"
    clock.now += 60
    assert checker.problem("105") is None  # 5 in one minute
    assert checker.problem("106") == "rose by 6 in 60 s (at most 5 per minute)"
    clock.now += 60
    assert checker.problem("110") is None  # 10 in two minutes


def test_keep_policy_keeps_the_last_good_reading_flagged(caplog):
    clock = Clock()
    decider = still(Rules(digits=(4,), monotonic=True), clock)
    first = decider.update(digits("1000"))
    assert first.text == "1000" and first.changed and not first.extra
    with caplog.at_level(logging.WARNING, logger="device.plausibility"):
        bad = decider.update(digits("999"))
    assert bad.text == "1000" and bad.changed
    assert bad.extra == {"implausible": True, "reason": "3 digits, expected 4", "rejected": "999"}
    assert "reading '999' implausible: 3 digits, expected 4; keeping '1000'" in caplog.text
    good = decider.update(digits("1001"))
    assert good.text == "1001" and not good.extra
    assert decider.current.text == "1001" and decider.implausible == 1


def test_publish_policy_reports_the_new_reading_flagged():
    decider = still(Rules(value_range=(0, 500), on_implausible="publish"))
    decider.update(digits("42"))
    flagged = decider.update(digits("900"))
    assert flagged.text == "900" and flagged.extra["implausible"] is True
    assert flagged.extra["reason"] == "900 outside [0, 500]"


def test_without_rules_readings_pass_untouched():
    decider = still(Rules())
    assert not Rules().active
    reading = decider.update(digits("7"))
    assert reading.text == "7" and reading.extra == {}


def test_live_vote_then_rules():
    decider = PlausibleDecider(Decider(5, 3, live=True), Rules(digits=(2,)), Clock())
    texts = [decider.update(digits(t)) for t in ["42", "42", "42", "7", "7", "7", "7"]]
    assert [r.text for r in texts if r.changed] == ["42", "42"]
    assert texts[-1].extra["rejected"] == "7" and not texts[-1].changed


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ({"digits": [5, 3]}, "decision.digits = [5, 3]: must be [], [n] or [low, high]"),
        ({"digits": [1, 2, 3]}, "decision.digits = [1, 2, 3]: must be [], [n] or [low, high]"),
        ({"pattern": "(["}, "decision.pattern = '([': not a regular expression"),
        ({"value_range": [9, 1]}, "decision.value_range = [9.0, 1.0]: must be [] or [low, high]"),
        ({"on_implausible": "drop"}, "decision.on_implausible = 'drop': must be one of keep, publish"),
        ({"max_change_per_minute": -1}, "decision.max_change_per_minute = -1: must be between 0.0 and"),
    ],
)
def test_bad_rules_name_key_value_and_rule(decision, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict({"decision": decision}, "c.toml: ")


def test_device_run_applies_the_rules_before_the_outputs(mnist_sample, tmp_path):
    image = tmp_path / "42.png"
    cv2.imwrite(str(image), scene(mnist_sample, ["42"], seed=1).frame)
    config = tmp_path / "meter.toml"
    config.write_text('[decision]\ndigits = [4]\non_implausible = "publish"\n')
    run = [sys.executable, "-m", "device.cli", "--source", str(image), "--once", "--json"]
    plain = subprocess.run(run, capture_output=True, text=True, check=True)
    assert json.loads(plain.stdout)["text"] == "42"
    checked = subprocess.run([*run, "--config", str(config)], capture_output=True, text=True, check=True)
    assert json.loads(checked.stdout)["text"] == "42"
    assert "reading '42' implausible: 2 digits, expected 4; publishing it flagged" in checked.stderr
    config.write_text("[decision]\ndigits = [4]\n")
    kept = subprocess.run([*run, "--config", str(config)], capture_output=True, text=True, check=True)
    assert json.loads(kept.stdout)["text"] == ""  # nothing good yet to keep
