"""Soak the service: device-run as systemd runs it, on a looping video, for ten minutes by default.

It gets the shipped config (systemd/config.toml) with the video as its camera, a real sd_notify socket and the
unit's own WatchdogSec, exactly as under systemd. The script samples the process's resident memory from /proc,
times every WATCHDOG=1, and at the end sends SIGTERM and times the exit. A benchmark, not a test: it prints a
table and can write it into docs/benchmarks.md.

    python -m tools.soak_service [--seconds 600] [--source VIDEO] [--realtime] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from host.report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent

UNIT = ROOT / "systemd" / "digit-reader.service"
CONFIG = ROOT / "systemd" / "config.toml"
DEMO = ROOT / "device" / "demo" / "demo.mp4"


def unit_watchdog_seconds(unit: Path = UNIT) -> float:
    """``WatchdogSec=`` of the unit, in seconds (plain seconds, or with an s/min suffix)."""
    match = re.search(r"^WatchdogSec=(\d+(?:\.\d+)?)\s*(s|min)?\s*$", unit.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"{unit}: no WatchdogSec= line")
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def rss_mb(pid: int) -> float | None:
    """Resident memory of a running process in MB, from /proc (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def collect_lines(stream, into: list) -> None:
    """Append ``(monotonic time, line)`` for every line of a pipe until it closes."""
    for line in stream:
        into.append((time.monotonic(), line.rstrip("\n")))


def soak(source: Path, seconds: float, watchdog: float, realtime: bool) -> dict:
    """Run device-run for ``seconds`` under a fake systemd manager; return what was measured."""
    # The same main() as the unit's venv/bin/device-run, without depending on where the script was installed.
    device_run = [sys.executable, "-m", "device.cli"]
    command = [*device_run, "--config", str(CONFIG), "--source", str(source), "--loop", "--output", "log"]
    if realtime:
        command.append("--realtime")
    with tempfile.TemporaryDirectory() as tmp:
        address = str(Path(tmp) / "notify")
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(address)
        manager.settimeout(0.25)
        env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC=str(int(watchdog * 1e6)))
        env.pop("WATCHDOG_PID", None)
        started = time.monotonic()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        readings, logs = [], []
        readers = [
            threading.Thread(target=collect_lines, args=(process.stdout, readings), daemon=True),
            threading.Thread(target=collect_lines, args=(process.stderr, logs), daemon=True),
        ]
        for reader in readers:
            reader.start()
        messages, memory = [], []
        next_sample = started
        deadline = started + seconds
        stop_sent = None
        while True:
            now = time.monotonic()
            if stop_sent is None and now >= deadline:
                process.send_signal(signal.SIGTERM)
                stop_sent = now
            # Memory from READY on: before it the process is still importing and loading the model.
            if messages and now >= next_sample and stop_sent is None:
                rss = rss_mb(process.pid)
                if rss is not None:
                    memory.append((now - started, rss))
                next_sample += 5.0
            try:
                data = manager.recv(4096)
                messages.append((time.monotonic() - started, data.decode()))
            except TimeoutError:
                pass
            if process.poll() is not None:
                break
            if stop_sent is not None and now - stop_sent > 15:
                process.kill()
        exited = time.monotonic()
        for reader in readers:
            reader.join(timeout=5)
        manager.close()

    pings = [t for t, m in messages if "WATCHDOG=1" in m.split("\n")]
    ready = next((t for t, m in messages if "READY=1" in m.split("\n")), None)
    gaps = [b - a for a, b in zip([ready or 0.0, *pings], pings, strict=False)] if pings else []
    final = next((line for _, line in reversed(logs) if "stopped after" in line), "")
    frames = re.search(r"stopped after (\d+) frames \((\d+) bad, (\d+) cluttered, (\d+) reopens\)", final)
    run_seconds = (stop_sent or exited) - started
    return {
        "seconds": run_seconds,
        "returncode": process.returncode,
        "ready_after": ready,
        "pings": len(pings),
        "max_gap": max(gaps, default=None),
        "missed": sum(gap > watchdog for gap in gaps),
        "stopping": any("STOPPING=1" in m.split("\n") for _, m in messages),
        "stop_seconds": exited - stop_sent if stop_sent else None,
        "frames": int(frames.group(1)) if frames else None,
        "bad": int(frames.group(2)) if frames else None,
        "cluttered": int(frames.group(3)) if frames else None,
        "reopens": int(frames.group(4)) if frames else None,
        "readings": len(readings),
        "memory": memory,
        "errors": [line for _, line in logs if line.startswith(("ERROR", "CRITICAL", "Traceback"))],
    }


def report(result: dict, source: Path, watchdog: float, realtime: bool, watchdog_from: str) -> str:
    """The soak's numbers as Markdown: a memory-over-time table and one line per check."""
    memory = result["memory"]
    rows = ["| minute | resident memory (MB) |", "|---:|---:|"]
    marks = sorted({min(int(t // 60), int(result["seconds"] // 60)) for t, _ in memory})
    for minute in marks:
        samples = [rss for t, rss in memory if int(t // 60) == minute]
        rows.append(f"| {minute} | {max(samples):.1f} |")
    warm = min(60.0, result["seconds"] / 2)
    settled = [rss for t, rss in memory if t >= warm] or [memory[-1][1]]
    frames = result["frames"]
    fps = f"{frames / result['seconds']:.0f}" if frames else "?"
    gap = f"{result['max_gap']:.1f} s" if result["max_gap"] is not None else "none"
    stop = f"{result['stop_seconds']:.2f} s" if result["stop_seconds"] is not None else "?"
    lines = [
        f"`device-run` with systemd/config.toml on `{source.name}` looped "
        f"({'at its frame rate' if realtime else 'as fast as it runs'}), output `log`, "
        f"for {result['seconds'] / 60:.1f} minutes; a real sd_notify socket, WatchdogSec={watchdog:g} "
        f"({watchdog_from}).",
        "",
        *rows,
        "",
        f"- Frames: {frames} ({fps} frames/s), {result['bad']} bad, {result['cluttered']} cluttered, "
        f"{result['reopens']} reopens, "
        f"{result['readings']} reading changes logged.",
        f"- Memory: {memory[0][1]:.1f} MB at READY; {min(settled):.1f} to {max(settled):.1f} MB from "
        f"{warm:.0f} s on; {memory[-1][1]:.1f} MB at the end.",
        f"- Watchdog: READY after {result['ready_after']:.1f} s, {result['pings']} pings, longest gap {gap}, "
        f"{result['missed']} missed (gap over {watchdog:g} s).",
        f"- SIGTERM: exit code {result['returncode']} after {stop}, STOPPING=1 "
        f"{'sent' if result['stopping'] else 'NOT sent'}; {len(result['errors'])} error lines in the log.",
        "",
        f"Machine: {machine()}.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to run (default 10 minutes)")
    parser.add_argument("--source", type=Path, default=DEMO, help="video to loop (default: the demo)")
    parser.add_argument("--realtime", action="store_true", help="pace the video like a camera")
    parser.add_argument("--watchdog-sec", type=float, help="watchdog interval (default: the unit's)")
    parser.add_argument("--write", metavar="MARKDOWN", help="put the report into this file")
    args = parser.parse_args(argv)
    watchdog = args.watchdog_sec or unit_watchdog_seconds()
    result = soak(args.source, args.seconds, watchdog, args.realtime)
    if not result["memory"] or result["ready_after"] is None:
        print("device-run never became ready:\n" + "\n".join(result["errors"]), file=sys.stderr)
        return 1
    watchdog_from = "--watchdog-sec" if args.watchdog_sec else "the unit's"
    text = report(result, args.source, watchdog, args.realtime, watchdog_from)
    print(text)
    if args.write:
        title = "## Service soak (`python -m tools.soak_service`)"
        write_section(Path(args.write), "service-soak", f"{title}\n\n{text}")
    healthy = result["missed"] == 0 and result["returncode"] == 0 and result["stopping"]
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
