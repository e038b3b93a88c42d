"""The unit file: systemd's own verifier and security analysis, offline."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, requires

UNIT = ROOT / "systemd" / "digit-reader.service"
pytestmark = requires(not shutil.which("systemd-analyze") and "systemd-analyze (apt: systemd)")


@pytest.fixture
def rendered(tmp_path):
    # As deploy.sh renders it, with ExecStart pointing at a device-run that exists here.
    device_run = Path(sys.executable).parent / "device-run"
    assert device_run.exists()
    text = UNIT.read_text().replace("@PREFIX@/current/venv/bin/device-run", str(device_run))
    path = tmp_path / "digit-reader.service"
    path.write_text(text)
    return path


def test_unit_verifies_clean(rendered):
    result = subprocess.run(["systemd-analyze", "verify", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_security_exposure_at_most_3(rendered):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(rendered)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for digit-reader.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= 3.0


def test_unit_contract():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-gpiochip rw",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "SupplementaryGroups=video gpio",
        "User=digit-reader",
    ):
        assert line in text.splitlines(), line
    assert "--config /etc/digit-reader/config.toml" in text
