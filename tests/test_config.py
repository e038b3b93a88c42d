"""TOML config: defaults, validation messages naming key, value and rule, --check-config."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from device.config import Config, from_dict, load_config
from device.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_shipped_example_are_valid():
    assert load_config(None) == Config()
    example = load_config(ROOT / "systemd" / "config.toml")
    assert example.camera.source == "auto" == Config().camera.source


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[camera]\nfps = 0", "c.toml: camera.fps = 0: must be between 1 and 240"),
        (
            "[camera]\nfsp = 30",
            "c.toml: camera.fsp: unknown key (known: source, width, height, fps, realtime, loop, "
            "reopen_max_seconds, max_pixels)",
        ),
        ("[camera]\nwidth = '640'", "c.toml: camera.width = '640': must be a whole number"),
        (
            "[output]\nenabled = ['log', 'lcd']",
            "c.toml: output.enabled[1] = 'lcd': "
            "must be one of log, gpio-bcd, gpio-7seg, window, web, gpio-led, mqtt",
        ),
        (
            "[decision]\nvote_needed = 7",
            "c.toml: decision.vote_needed = 7: must not exceed decision.vote_frames (5)",
        ),
        ("[output.gpio_bcd]\npins = [1, 2]", "c.toml: output.gpio_bcd.pins = [1, 2]: must list 4 pins"),
        (
            "[output.gpio_bcd]\npins = [1, 2, 3, 99]",
            "c.toml: output.gpio_bcd.pins[3] = 99: must be between 0 and 53",
        ),
        ("[model]\nverify_sha256 = 1", "c.toml: model.verify_sha256 = 1: must be true or false"),
        (
            "[segmentation]\nplain_pages = 'no'",
            "c.toml: segmentation.plain_pages = 'no': must be true or false",
        ),
        (
            "[segmentation]\nroi = [0.5, 0, 0.7, 1]",
            "c.toml: segmentation.roi = [0.5, 0.0, 0.7, 1.0]: "
            "must be [x, y, w, h] fractions inside the frame",
        ),
        ("camera = 3", "c.toml: camera must be a table"),
    ],
)
def test_errors_name_key_value_and_rule(toml, message):
    with pytest.raises(ConfigError) as err:
        from_dict(tomllib.loads(toml), "c.toml: ")
    assert str(err.value) == message


def test_check_config_cli(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[camera]\nsource = 'webcam:0'\n")
    bad.write_text("[service]\nlog_level = 'loud'\n")
    ok = subprocess.run(
        [sys.executable, "-m", "device.cli", "--check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == f"{good}: ok"
    fail = subprocess.run(
        [sys.executable, "-m", "device.cli", "--check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fail.returncode == 2
    assert fail.stderr.strip() == (
        f"device-run: {bad}: service.log_level = 'loud': must be one of debug, info, warning, error"
    )
    (tmp_path / "broken.toml").write_text("[camera\n")
    broken = subprocess.run(
        [sys.executable, "-m", "device.cli", "--check-config", str(tmp_path / "broken.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        broken.returncode == 2 and "not valid TOML" in broken.stderr and len(broken.stderr.splitlines()) == 1
    )


def test_plain_pages_reaches_the_segmenter():
    from device.assemble import segment_settings

    assert segment_settings(from_dict({})).plain_pages
    assert not segment_settings(from_dict({"segmentation": {"plain_pages": False}})).plain_pages
