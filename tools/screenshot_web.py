#!/usr/bin/env python3
"""Make docs/web.png (and docs/web-phone.png) from a real run: device-run on the bundled demo video with the
web preview, photographed by headless Chromium once a reading is on the page.

    python -m tools.screenshot_web [--out docs/web.png] [--phone docs/web-phone.png] [--source VIDEO]

Needs chromium (apt install chromium). The page is shown as a visitor sees it; nothing is drawn by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "device" / "demo" / "demo.mp4"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_reading(base: str, limit: float = 60.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/status", timeout=5) as response:
                status = json.load(response)
            if status["text"] and status["fps"] > 0:
                return status
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"screenshot_web: no reading from {base} within {limit:.0f} s")


def shoot(browser: str, url: str, out: Path, size: tuple[int, int], profile: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
         f"--screenshot={out}", "--timeout=5000", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({size[0]}x{size[1]})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "web.png", help="desktop screenshot")
    parser.add_argument("--phone", type=Path, default=ROOT / "docs" / "web-phone.png", help="phone-size shot")
    parser.add_argument("--source", type=Path, default=DEMO, help="video to read (default: the bundled demo)")
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("screenshot_web: chromium not found (apt install chromium)", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    reader = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "--source", str(args.source), "--realtime", "--loop",
         "--output", "web", "--web-bind", f"127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        status = wait_for_reading(base)
        print(f"device-run is reading {status['text']!r} at {status['fps']:.1f} fps on {base}")
        with tempfile.TemporaryDirectory() as profile:
            shoot(browser, f"{base}/", args.out, (1200, 720), Path(profile) / "desktop")
            if args.phone:
                shoot(browser, f"{base}/", args.phone, (390, 844), Path(profile) / "phone")
    finally:
        reader.send_signal(signal.SIGTERM)
        try:
            reader.wait(timeout=30)
        except subprocess.TimeoutExpired:
            reader.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
