"""The MQTT / metrics drop-in: installed as a real drop-in beside the unit, systemd's security analysis of the
unit with it stays at or below 2.0, and the unit without it still has no network."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, requires

pytestmark = requires(not shutil.which("systemd-analyze") and "systemd-analyze (apt: systemd)")


def exposure(root: Path, dropins: list[str]) -> float:
    units = root / "etc" / "systemd" / "system"
    (units / "digit-reader.service.d").mkdir(parents=True, exist_ok=True)
    device_run = Path(sys.executable).parent / "device-run"
    text = (ROOT / "systemd" / "digit-reader.service").read_text()
    (units / "digit-reader.service").write_text(
        text.replace("@PREFIX@/current/venv/bin/device-run", str(device_run))
    )
    for name in dropins:
        shutil.copy(ROOT / "systemd" / name, units / "digit-reader.service.d" / name)
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--no-pager",
            f"--root={root}",
            "digit-reader.service",
        ],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for digit-reader.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    return float(match.group(1))


def test_mqtt_dropin_keeps_exposure_at_most_2(tmp_path):
    closed = exposure(tmp_path / "closed", [])
    opened = exposure(tmp_path / "mqtt", ["mqtt.conf"])
    both = exposure(tmp_path / "both", ["mqtt.conf", "web.conf"])
    assert closed < opened  # the drop-in really is applied
    assert opened <= 2.0 and both <= 2.0


def test_mqtt_dropin_opens_only_ip_sockets_to_the_local_network():
    lines = (ROOT / "systemd" / "mqtt.conf").read_text().splitlines()
    assert "PrivateNetwork=no" in lines
    assert "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6" in lines
    allow = next(line for line in lines if line.startswith("IPAddressAllow="))
    assert "any" not in allow.split("=", 1)[1].split()
