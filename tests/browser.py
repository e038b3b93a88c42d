"""A real headless Chromium, driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

A test waits for what it checks (an element's state, a reading on the page) with a deadline instead of
guessing how long a page takes: ``--dump-dom`` dumps as soon as the page's load event fires, and the first
part of an MJPEG stream fires it, so a dump races the page's own scripts on a busy machine.

The protocol needs no library: JSON messages separated by NUL bytes, commands on the browser's fd 3, replies
and events on its fd 4.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with one page; ``with Chromium(profile) as page: page.open(url) ...``."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1200, 700)):
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            raise BrowserError("chromium missing (apt-get install chromium; scripts/test.sh does)")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def on_fds_3_and_4():
            # Copy above any low descriptor first, so neither pipe end is overwritten by the other's dup2.
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self._process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=on_fds_3_and_4,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self._session = None
        self._closed = False
        self.size = size

    # --- the protocol ---
    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, timeout: float = 60.0, page: bool = True) -> dict:
        """Send a command (to the page's session unless ``page`` is false) and return its result."""
        wanted = self._send(method, params, self._session if page else None)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})

    # --- what tests use ---
    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, page=False)[
            "sessionId"
        ]
        width, height = self.size
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> bool:
        """Poll a JavaScript condition until it is true or ``timeout`` s pass; its last value."""
        deadline = time.monotonic() + timeout
        while True:
            # An exception (the page not there yet: still about:blank, or loading) counts as "not yet".
            guarded = f"(() => {{ try {{ return Boolean({expression}); }} catch (e) {{ return false; }} }})()"
            if self.evaluate(guarded):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._process.poll() is None:
            with contextlib.suppress(BrowserError, OSError):
                self.call("Browser.close", page=False, timeout=10)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
