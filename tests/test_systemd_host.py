"""End to end on a real systemd host: a Debian bookworm root (debootstrap) booted with systemd-nspawn, sshd
inside, deployed to by scripts/deploy.sh in systemd mode. Checks the service comes up READY (Type=notify)
with a STATUS line, and that a frozen reader is killed by the watchdog and restarted.

Slow (building the root takes minutes, booting about one): marked ``systemd``; scripts/test.sh runs it.
The root is cached in $DIGIT_READER_NSPAWN_ROOT (default /var/tmp/digit-reader-nspawn/root)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, needs, scene, write_video
from tests.sshd import free_port, make_client_key

pytestmark = pytest.mark.systemd

NSPAWN_ROOT = Path(os.environ.get("DIGIT_READER_NSPAWN_ROOT", "/var/tmp/digit-reader-nspawn/root"))
PACKAGES = (
    "systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,python3-pip,python3-numpy,python3-opencv,"
    "ca-certificates,sudo,iproute2"
)


def build_root() -> None:
    if (NSPAWN_ROOT / "usr" / "bin" / "python3").exists() and (
        NSPAWN_ROOT / "usr" / "sbin" / "sshd"
    ).exists():
        return
    needs(not shutil.which("debootstrap") and "debootstrap (apt-get install debootstrap systemd-container)")
    NSPAWN_ROOT.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={PACKAGES}",
            "bookworm",
            str(NSPAWN_ROOT),
            "http://deb.debian.org/debian",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=1800,
    )


def ssh(key, port, command, timeout=60):
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def host(tmp_path_factory, mnist_sample):
    needs(os.geteuid() != 0 and "root (for systemd-nspawn)")
    needs(not shutil.which("systemd-nspawn") and "systemd-nspawn (apt-get install systemd-container)")
    build_root()
    key = make_client_key(tmp_path_factory.mktemp("key"))
    port = free_port()
    # Prepare the root: our key, sshd on a free loopback port (the container shares the host network),
    # the CA bundle for pip, and a long test video as the "camera".
    (NSPAWN_ROOT / "root" / ".ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    (NSPAWN_ROOT / "root" / ".ssh" / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    (NSPAWN_ROOT / "etc" / "ssh" / "sshd_config.d").mkdir(parents=True, exist_ok=True)
    (NSPAWN_ROOT / "etc" / "ssh" / "sshd_config.d" / "test.conf").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
    )
    shutil.copy(
        "/etc/ssl/certs/ca-certificates.crt", NSPAWN_ROOT / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    )
    media = NSPAWN_ROOT / "srv" / "camera"
    media.mkdir(parents=True, exist_ok=True)
    frames = [scene(mnist_sample, ["314"], seed=40 + i % 3, blur=0.5).frame for i in range(3)]
    write_video(media / "long.avi", frames, fps=5, count=1500)  # five minutes at its own pace (realtime)
    os.chmod(media / "long.avi", 0o644)
    etc = NSPAWN_ROOT / "etc" / "digit-reader"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "config.toml").write_text('[camera]\nsource = "/srv/camera/long.avi"\nrealtime = true\n')

    machine = subprocess.Popen(
        ["systemd-nspawn", "-D", str(NSPAWN_ROOT), "-b", "--register=no", "--keep-unit", "--console=passive"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            result = (
                ssh(key, port, "systemctl is-system-running --wait", timeout=120)
                if _listening(port)
                else None
            )
            if result is not None and result.stdout.strip() in ("running", "degraded"):
                break
            assert machine.poll() is None, "systemd-nspawn exited"
            time.sleep(2)
        else:
            pytest.fail("the nspawn host did not boot within 3 minutes")
        yield key, port
    finally:
        if _listening(port):
            ssh(key, port, "systemctl poweroff", timeout=30)
        try:
            machine.wait(timeout=60)
        except subprocess.TimeoutExpired:
            machine.kill()


def _listening(port) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_deploy_starts_a_ready_service_and_watchdog_restarts_a_frozen_one(host, tmp_path):
    key, port = host
    result = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "deploy.sh"),
            "--no-apt",
            "--python",  # builds the wheel: this interpreter has pip and setuptools
            sys.executable,
            "--identity",
            str(key),
            "--known-hosts",
            str(tmp_path / "known"),
            f"root@127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].split()[-1] == "ok"

    show = ssh(
        key,
        port,
        "systemctl show -p ActiveState -p SubState -p StatusText -p User -p NRestarts digit-reader.service",
    ).stdout
    props = dict(line.split("=", 1) for line in show.strip().splitlines())
    assert props["ActiveState"] == "active" and props["SubState"] == "running"
    assert props["User"] == "digit-reader"
    time.sleep(3)
    status = ssh(key, port, "systemctl show -p StatusText --value digit-reader.service").stdout
    assert "reading '314'" in status, status
    journal = ssh(key, port, "journalctl -u digit-reader.service -o cat --no-pager").stdout
    assert "on ai_edge_litert" in journal

    # Freeze the reader (as a camera read that never returns would): the watchdog must restart it.
    ssh(
        key,
        port,
        "mkdir -p /run/systemd/system/digit-reader.service.d && printf '[Service]\\nWatchdogSec=4\\n' "
        "> /run/systemd/system/digit-reader.service.d/test.conf && systemctl daemon-reload && "
        "systemctl restart digit-reader.service",
    )
    time.sleep(6)
    pid = ssh(key, port, "systemctl show -p MainPID --value digit-reader.service").stdout.strip()
    assert pid.isdigit() and int(pid) > 0
    ssh(key, port, f"kill -STOP {pid}")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        new_pid = ssh(key, port, "systemctl show -p MainPID --value digit-reader.service").stdout.strip()
        if new_pid not in (pid, "0"):
            break
        time.sleep(1)
    journal = ssh(key, port, "journalctl -u digit-reader.service -o cat --no-pager").stdout
    assert "Watchdog timeout" in journal, journal[-2000:]
    assert new_pid not in (pid, "0"), "not restarted after the watchdog timeout"
    ssh(key, port, "rm -r /run/systemd/system/digit-reader.service.d; systemctl daemon-reload")
