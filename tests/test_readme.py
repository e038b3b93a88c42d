"""The README tells the truth where a test can check it: what the scripts install, the flags it names, the
smallest-build recipe's exact commands, and that the folders its commands write are not committed."""

import re
import shutil
import subprocess
import sys

import pytest

from device.cli import parse_args
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
PAGE = ROOT / "device" / "demo" / "page.jpg"


def words(text: str) -> list[str]:
    return text.replace("`", " ").split()


def test_readme_lists_what_test_sh_installs():
    script = (ROOT / "scripts" / "test.sh").read_text()
    installed = words(re.search(r"APT_PACKAGES=\(([^)]*)\)", script).group(1))
    listed = re.search(r"1\. apt \(sudo when not root\): `([^`]*)`", README.replace("\n   ", " "))
    assert listed, "README: the apt list of scripts/test.sh is missing"
    assert words(listed.group(1)) == installed


def test_readme_lists_what_install_pi_installs():
    script = (ROOT / "scripts" / "install-pi.sh").read_text()
    wanted = words(re.search(r"wanted=\(([^)]*)\)", script).group(1))
    listed = re.search(r"`install-pi\.sh` installs `([^`]*)`", README.replace("\n", " "))
    assert listed and words(listed.group(1)) == wanted


def test_every_flag_in_the_device_run_synopsis_exists(capsys):
    synopsis = re.search(r"```\ndevice-run \[(.*?)```", README, re.S).group(1)
    flags = set(re.findall(r"--[a-z][a-z-]*", synopsis))
    assert {"--led-pin", "--led-match", "--source", "--demo"} <= flags
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    known = set(re.findall(r"--[a-z][a-z-]*", capsys.readouterr().out))
    assert flags <= known, flags - known


def recipe_commands() -> list[str]:
    section = README.split("### The smallest useful build", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\.venv/bin/device-run (.*)$", section, re.M)


@pytest.mark.parametrize("command", recipe_commands())
def test_smallest_build_recipe_commands_run(command):
    """Each recipe command as written, with the demo page for the webcam and mock pins for the Pi's."""
    args = command.split()
    assert args[:2] == ["--source", "webcam:0"]
    args[1] = str(PAGE)
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", *args, "--pin-factory", "mock", "--once"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "4096 17\n"


def test_recipes_exist():
    assert len(recipe_commands()) == 2


@pytest.mark.skipif(not shutil.which("git") or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_folders_written_by_documented_commands_are_ignored():
    paths = ["captures/20260101-000000/frame.png", "crops/7/x.png", "reports/confusion.png"]
    result = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *paths], capture_output=True, text=True)
    assert result.stdout.split() == paths
