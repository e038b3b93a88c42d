"""Issue 10, config: a bounded, seeded loop of mutations of systemd/config.toml. Each one is either
accepted or refused with one ConfigError (never another exception), and what --check-config accepts also
starts (the GPIO outputs open on mock pins). Plus the rules that used to pass the check and fail at start."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys

import pytest

from device.assemble import OutputContext, open_outputs
from device.config import load_config, replace
from device.errors import ConfigError
from tests.conftest import ROOT

SHIPPED = (ROOT / "systemd" / "config.toml").read_bytes()
MUTATIONS = 400
VALUES = [
    b"nan",
    b"inf",
    b"-inf",
    b"+nan",
    b"1e999",
    b"-1",
    b"0",
    b"99999999999999999999",
    b'"x"',
    b'"\xff\xfe"',
    b"[]",
    b"[nan, 0, 0.5, 0.5]",
    b"[0.1, 0.1, inf, 0.2]",
    b"{a = 1}",
    b"true",
    b"[1, [2, [3]]]",
    b'"0.0.0.0:8088"',
    b'"[::1]:80"',
    b'"host:99999"',
    b'"::::"',
    b"17",
    b"[17, 17, 22, 10, 9, 11, 0]",
    b"[5, 6, 13, 17]",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    kind = rng.randrange(8)
    i = rng.randrange(len(lines))
    if kind == 0 and b"=" in lines[i]:  # a key gets another value
        key = lines[i].split(b"=", 1)[0]
        lines[i] = key + b"= " + rng.choice(VALUES)
    elif kind == 1:  # random bytes, UTF-8 or not
        pos = rng.randrange(len(data))
        return data[:pos] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4))) + data[pos:]
    elif kind == 2:  # truncated
        return data[: rng.randrange(len(data))]
    elif kind == 3:  # a line twice
        lines.insert(i, lines[i])
    elif kind == 4:  # deep nesting
        depth = rng.choice([50, 500, 5000])
        lines.append(b"deep = " + b"[" * depth + b"]" * depth)
        if rng.random() < 0.5:
            lines.append(b"[camera]\nroi = " + b"[" * depth + b"1" + b"]" * depth)
    elif kind == 5:  # an inline table nested deep
        depth = rng.choice([100, 3000])
        lines.append(b"x = " + b"{a = " * depth + b"1" + b"}" * depth)
    elif kind == 6:  # web on, somewhere
        lines = [
            b'enabled = ["log", "web", "gpio-bcd", "gpio-7seg"]' if line.startswith(b"enabled") else line
            for line in lines
        ]
    else:  # a line dropped
        del lines[i]
    return b"\n".join(lines)


def test_fuzzed_configs_give_a_config_or_one_config_error(tmp_path):
    rng = random.Random(10)
    path = tmp_path / "config.toml"
    accepted = refused = opened = 0
    for _ in range(MUTATIONS):
        data = SHIPPED
        for _ in range(rng.randrange(1, 4)):
            data = mutate(rng, data)
        path.write_bytes(data)
        try:
            config = load_config(path)
        except ConfigError as exc:
            refused += 1
            assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
            continue
        accepted += 1
        # What the check accepts must start: the GPIO outputs open their pins (mock), a web bind parses.
        gpio = [k for k in config.output.enabled if k.startswith("gpio")]
        gpio_only = replace(config, "output", enabled=gpio, pin_factory="mock")
        with contextlib.ExitStack() as stack:
            opened += len(open_outputs(stack, OutputContext(gpio_only)))
    print(
        f"\n{MUTATIONS} mutated configs: {accepted} accepted, {refused} refused in one line, "
        f"{opened} outputs opened"
    )
    assert accepted > 20 and refused > 100, (accepted, refused)
    assert opened > 0


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[segmentation]\nroi = [nan, 0.0, 0.5, 0.5]", "segmentation.roi[0] = nan: must be a finite number"),
        ("[segmentation]\nroi = [0.0, 0.0, inf, 0.5]", "segmentation.roi[2] = inf: must be a finite number"),
        ("[decision]\nmin_confidence = nan", "decision.min_confidence = nan: must be a finite number"),
        ("[output.web]\nmax_fps = inf", "output.web.max_fps = inf: must be a finite number"),
        (
            "[output.gpio_bcd]\npins = [5, 6, 13, 5]",
            "output.gpio_bcd.pins: GPIO 5 is also used by output.gpio_bcd.pins",
        ),
        ("[output.gpio_bcd]\nvalid_pin = 13", "output.gpio_bcd.valid_pin: GPIO 13 is also used by"),
        (
            '[output]\nenabled = ["gpio-bcd", "gpio-7seg"]\n[output.gpio_bcd]\npins = [5, 6, 13, 17]',
            "GPIO 17 is also used by output.gpio_bcd.pins; each pin once (both outputs are enabled)",
        ),
        ("[output.gpio_7seg]\ndp_pin = 17", "output.gpio_7seg.dp_pin: GPIO 17 is also used by"),
        ('[output.web]\nbind = "localhost"', "web bind 'localhost': must be HOST:PORT"),
        ('[output.web]\nbind = "1.2.3.4:99999"', "web bind '1.2.3.4:99999': must be HOST:PORT"),
        ('[output.web]\nbind = "bad host!:80"', "web bind 'bad host!:80': must be HOST:PORT"),
        (
            '[output]\nenabled = ["web"]\n[output.web]\nbind = "0.0.0.0:8088"',
            "web bind 0.0.0.0:8088: binding beyond this machine needs a token",
        ),
        ('[output.web]\ntoken_file = "/nonexistent/token"', None),  # only read when web needs it
    ],
)
def test_check_config_sees_what_would_fail_at_start(tmp_path, toml, fragment):
    path = tmp_path / "c.toml"
    path.write_text(toml + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "--check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr
    if fragment is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip().splitlines() == [
        f"device-run: {path}: " + result.stderr.split(f"{path}: ", 1)[1].strip()
    ]
    assert fragment in result.stderr, result.stderr


def test_web_token_file_rule_is_in_the_check(tmp_path):
    token = tmp_path / "token"
    token.write_text("abc\n")
    path = tmp_path / "c.toml"
    path.write_text(
        f'[output]\nenabled = ["web"]\n[output.web]\nbind = "0.0.0.0:8088"\ntoken_file = "{token}"\n'
    )
    assert load_config(path).output.web.token_file == str(token)
    token.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(path)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'[camera]\nsource = "\xff\xfe"\n', "not UTF-8 text"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, "not valid TOML"),
        (b"x = " + b"{a = " * 5000 + b"1" + b"}" * 5000, "not valid TOML"),
        (b"[camera]\n" + b"fps = 1\n" * 2, "not valid TOML"),
    ],
)
def test_bytes_that_used_to_raise(tmp_path, data, fragment):
    path = tmp_path / "c.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)
