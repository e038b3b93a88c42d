"""Soak the web preview under abuse: device-run on a looping video with the web output, first alone, then
with N MJPEG viewers and M slow sockets (trickling a request head, reconnecting whenever dropped), inside
the unit's MemoryMax and TasksMax (a cgroup, where this machine lets us make one).

Every second it polls /healthz (as a monitor would), samples the process's resident memory and thread count
from /proc, and counts frames from /api/status. It reports whether the process stayed alive, every health
poll's answer, memory over time, threads, and fps under load against fps alone. A benchmark, not a test:
it prints a table and can write it into docs/benchmarks.md.

    python -m tools.soak_web [--seconds 300] [--viewers 50] [--slow 100] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from host.report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent

UNIT = ROOT / "systemd" / "digit-reader.service"
DEMO = ROOT / "device" / "demo" / "demo.mp4"
TOKEN = "soak-token"


def unit_limits(unit: Path = UNIT) -> tuple[int, int]:
    """(MemoryMax in bytes, TasksMax) of the unit."""
    text = unit.read_text()
    memory = re.search(r"^MemoryMax=(\d+)([KMG]?)\s*$", text, re.MULTILINE)
    tasks = re.search(r"^TasksMax=(\d+)\s*$", text, re.MULTILINE)
    if not memory or not tasks:
        raise SystemExit(f"{unit}: no MemoryMax= or TasksMax= line")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[memory.group(2)]
    return int(memory.group(1)) * scale, int(tasks.group(1))


class Cgroup:
    """A memory + pids cgroup (v2, or v1 controllers) for the process under test; a no-op where this machine
    does not let us make one (``self.where`` says which)."""

    def __init__(self, memory_max: int, tasks_max: int):
        self.dirs: list[Path] = []
        self.where = "not enforced (no writable cgroup here)"
        name = f"soak-web-{os.getpid()}"
        base = Path("/sys/fs/cgroup")
        try:
            if (base / "cgroup.controllers").exists():  # v2
                own = base / Path(
                    Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip()
                ).relative_to("/")
                group = own.parent / name if own != base else base / name
                group.mkdir()
                self.dirs = [group]
                (group / "memory.max").write_text(str(memory_max))
                (group / "pids.max").write_text(str(tasks_max))
                self.where = f"cgroup v2 {group}"
            else:  # v1: memory and pids controllers, each under our own memory group if we are in one
                own_memory = ""
                for line in Path("/proc/self/cgroup").read_text().splitlines():
                    _, controllers, path = line.split(":", 2)
                    if "memory" in controllers.split(","):
                        own_memory = path.lstrip("/")
                memory = base / "memory" / own_memory / name
                pids = base / "pids" / name
                memory.mkdir()
                self.dirs.append(memory)
                pids.mkdir()
                self.dirs.append(pids)
                (memory / "memory.limit_in_bytes").write_text(str(memory_max))
                with contextlib.suppress(OSError):  # no swap accounting: memory alone is the limit
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_max))
                (pids / "pids.max").write_text(str(tasks_max))
                self.where = f"cgroup v1 {memory} + {pids}"
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            self.dirs = []
            self.where = f"not enforced (cannot make a cgroup here: {exc})"

    def add_self(self) -> None:
        """preexec_fn: the child joins the cgroup before it execs."""
        for group in self.dirs:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    def events(self) -> str:
        """OOM kills and refused forks, as the kernel counted them."""
        found = []
        for group in self.dirs:
            for name in ("memory.events", "memory.oom_control", "pids.events", "memory.failcnt"):
                with contextlib.suppress(OSError):
                    found.append(f"{name}: " + " ".join((group / name).read_text().split()))
        return "; ".join(found)

    def close(self) -> None:
        for group in reversed(self.dirs):
            with contextlib.suppress(OSError):
                group.rmdir()


def proc_status(pid: int) -> tuple[float, int] | None:
    """(resident MB, threads) from /proc, None once the process has gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])
    except (OSError, KeyError, ValueError):
        return None


class Load:
    """All abusive clients on one selector thread: viewers read the MJPEG stream as fast as it comes (and
    come back a second after a 503 or a drop); slow sockets send one byte of a request head every 2 s and
    reconnect when the server drops them."""

    def __init__(self, address, viewers: int, slow: int):
        self.address, self.n_viewers, self.n_slow = address, viewers, slow
        self.selector = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.counts = {
            "viewer 200": 0,
            "viewer 503": 0,
            "viewer bytes": 0,
            "slow dropped": 0,
            "connect errors": 0,
        }
        self._retry: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        for _ in range(self.n_viewers):
            self._connect("viewer")
        for _ in range(self.n_slow):
            self._connect("slow")
        self._thread.start()

    def _connect(self, kind: str) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=2)
        except OSError:
            self.counts["connect errors"] += 1
            self._retry.append((time.monotonic() + 1, kind))
            return
        sock.setblocking(False)
        state = {"kind": kind, "head": b"", "next_byte": time.monotonic(), "sent": 0}
        if kind == "viewer":
            sock.send(f"GET /stream.mjpg?token={TOKEN} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
        self.selector.register(sock, selectors.EVENT_READ, state)

    def _close(self, sock, state) -> None:
        self.selector.unregister(sock)
        sock.close()
        if state["kind"] == "slow":
            self.counts["slow dropped"] += 1
        self._retry.append((time.monotonic() + (1.0 if state["kind"] == "viewer" else 0.1), state["kind"]))

    def _run(self) -> None:
        request = b"GET /api/status HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"a" * 10_000
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                sock, state = key.fileobj, key.data
                try:
                    data = sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._close(sock, state)
                    continue
                if state["kind"] == "viewer":
                    if not state["head"]:
                        state["head"] = data[:12]
                        self.counts["viewer 200" if b" 200" in data[:16] else "viewer 503"] += 1
                    self.counts["viewer bytes"] += len(data)
            now = time.monotonic()
            for key in list(self.selector.get_map().values()):
                state = key.data
                if state["kind"] == "slow" and now >= state["next_byte"]:
                    state["next_byte"] = now + 2.0
                    with contextlib.suppress(OSError):
                        key.fileobj.send(request[state["sent"] : state["sent"] + 1])
                        state["sent"] += 1
            due = [kind for when, kind in self._retry if when <= now]
            self._retry = [(when, kind) for when, kind in self._retry if when > now]
            for kind in due:
                self._connect(kind)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""
    except OSError as exc:
        return 0, str(exc).encode()


def soak(seconds: float, baseline: float, viewers: int, slow: int, realtime: bool, source: Path) -> dict:
    memory_max, tasks_max = unit_limits()
    folder = Path(tempfile.mkdtemp(prefix="soak-web-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = folder / "config.toml"
    config.write_text(
        f'[camera]\nsource = "{source}"\nloop = true\nrealtime = {str(realtime).lower()}\n'
        '[output]\nenabled = ["log", "web"]\n'
        f'[output.web]\nbind = "127.0.0.1:{port}"\ntoken_file = "{token_file}"\n'
    )
    cgroup = Cgroup(memory_max, tasks_max)
    process = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=cgroup.add_self if cgroup.dirs else None,
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while get(f"{base}/healthz")[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("device-run did not start:\n" + "".join(stderr[-20:]))
        time.sleep(0.2)

    def frames() -> int:
        status, body = get(f"{base}/api/status?token={TOKEN}", timeout=5)
        return json.loads(body)["frames"] if status == 200 else -1

    samples: list[dict] = []

    def phase(name: str, length: float) -> dict:
        start_frames, started = frames(), time.monotonic()
        health: dict[int, int] = {}
        end = started + length
        while time.monotonic() < end and process.poll() is None:
            tick = time.monotonic()
            code = get(f"{base}/healthz")[0]
            health[code] = health.get(code, 0) + 1
            status = proc_status(process.pid)
            if status:
                samples.append({"phase": name, "t": tick - started, "rss": status[0], "threads": status[1]})
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        elapsed = time.monotonic() - started
        end_frames = frames()
        fps = (end_frames - start_frames) / elapsed if start_frames >= 0 and end_frames >= 0 else 0.0
        return {"fps": fps, "health": health, "seconds": elapsed}

    alone = phase("alone", baseline)
    load = Load(("127.0.0.1", port), viewers, slow)
    load.start()
    loaded = phase("load", seconds)
    load.close()
    alive = process.poll() is None
    process.terminate()
    try:
        code = process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    reader.join(timeout=5)
    events = cgroup.events()
    cgroup.close()
    tracebacks = sum("Traceback" in line for line in stderr)
    return {
        "alone": alone,
        "load": loaded,
        "alive": alive,
        "exit": code,
        "samples": samples,
        "counts": load.counts,
        "cgroup": cgroup.where,
        "events": events,
        "tracebacks": tracebacks,
        "log_lines": len(stderr),
        "limits": (memory_max, tasks_max),
    }


def report(r: dict, viewers: int, slow: int, realtime: bool) -> str:
    load = [s for s in r["samples"] if s["phase"] == "load"]
    polls = sum(r["load"]["health"].values())
    ok = r["load"]["health"].get(200, 0)
    ratio = r["load"]["fps"] / r["alone"]["fps"] if r["alone"]["fps"] else 0.0
    minutes: dict[int, list[dict]] = {}
    for s in load:
        minutes.setdefault(int(s["t"] // 60), []).append(s)
    memory_max, tasks_max = r["limits"]
    pace = "at its own pace" if realtime else "as fast as it goes"
    c = r["counts"]
    rss = f"{min(s['rss'] for s in load):.1f}-{max(s['rss'] for s in load):.1f}" if load else "n/a"
    threads = max(s["threads"] for s in load) if load else "n/a"
    lines = [
        "## Web preview under abuse (`python -m tools.soak_web`)",
        "",
        f"{machine()}. device-run on the demo video ({pace}) with log and web outputs "
        f"(defaults: max_viewers 4, max_connections 24, header_timeout 5 s), "
        f"{r['alone']['seconds']:.0f} s alone, then {r['load']['seconds']:.0f} s with {viewers} viewers "
        f"(MJPEG) and {slow} slow sockets; limits "
        f"MemoryMax={memory_max >> 20}M, TasksMax={tasks_max}: {r['cgroup']}.",
        "",
        f"- Alive at the end: {'yes' if r['alive'] else 'NO'} (exit code {r['exit']} after SIGTERM); "
        f"tracebacks in its log: {r['tracebacks']} ({r['log_lines']} log lines)",
        f"- /healthz under load: {ok} of {polls} polls answered 200 ({r['load']['health']})",
        f"- fps: {r['alone']['fps']:.1f} alone, {r['load']['fps']:.1f} under load ({ratio:.0%} of alone)",
        f"- Viewers: {c['viewer 200']} streams served, {c['viewer 503']} refused with 503, "
        f"{c['viewer bytes'] / 1e6:.1f} MB of MJPEG received; slow sockets dropped by the header timeout: "
        f"{c['slow dropped']}; connect errors: {c['connect errors']}",
        f"- Resident memory under load: {rss} MB; threads at most {threads}",
        f"- Kernel counters: {r['events'] or 'n/a'}",
        "",
        "| minute | resident memory (MB) | threads (max) | /healthz |",
        "|---|---|---|---|",
    ]
    for minute, group in sorted(minutes.items()):
        lines.append(
            f"| {minute + 1} | {min(s['rss'] for s in group):.1f}-{max(s['rss'] for s in group):.1f} "
            f"| {max(s['threads'] for s in group)} | {len(group)} polls |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="time under load (default 5 minutes)")
    parser.add_argument("--baseline-seconds", type=float, default=30.0, help="time alone first")
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--fast", action="store_true", help="run the video as fast as it goes, not paced")
    parser.add_argument("--source", type=Path, default=DEMO)
    parser.add_argument("--write", metavar="MARKDOWN", help="put the report into this file")
    args = parser.parse_args(argv)
    result = soak(args.seconds, args.baseline_seconds, args.viewers, args.slow, not args.fast, args.source)
    text = report(result, args.viewers, args.slow, not args.fast)
    print(text)
    if args.write:
        write_section(Path(args.write), "web-soak", text)
    polls = sum(result["load"]["health"].values())
    healthy = result["load"]["health"].get(200, 0) == polls > 0
    return 0 if result["alive"] and healthy and result["tracebacks"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
