"""``web`` output: a live preview and status for a headless Pi, served from the device process.

``/`` a page with the camera view (MJPEG), the reading in large type, fps, per-stage latency, backend and
model; ``/stream.mjpg`` the MJPEG stream; ``/api/status`` JSON; ``/events`` Server-Sent Events on reading
changes; ``/healthz`` for monitors. Python's standard ``http.server`` (threaded) serves it: no dependency.

It never slows the camera loop: ``show()`` only stores references and counters; JPEGs are encoded by the
stream's own thread, only while someone watches, at most ``max_fps`` per second, always from the newest frame
(older ones are dropped, never queued). Binding to anything but loopback requires a token, sent as
``Authorization: Bearer <token>`` or ``?token=<token>`` and compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import queue
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2

from device.errors import ConfigError
from device.outputs.window import annotate

log = logging.getLogger(__name__)

# The page lives in its own file (package data), read once at import.
PAGE = (Path(__file__).resolve().parent / "web_page.html").read_text(encoding="utf-8")

LOOPBACK_NAMES = {"localhost"}


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); raises ConfigError naming the value and the rule."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"web bind {bind!r}: must be HOST:PORT, e.g. 127.0.0.1:8088")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebOutput:
    """The preview server. ``show()`` is cheap; the HTTP threads do the work."""

    health = None  # device.health.Health, set by device-run: /metrics and the stall state of /healthz

    def __init__(self, bind: str = "127.0.0.1:8088", token: str = "", max_fps: float = 10.0, model_info=None):
        host, port = parse_bind(bind)
        if not is_loopback(host) and not token:
            raise ConfigError(
                f"web bind {bind}: binding beyond this machine needs a token "
                "(--web-token or [output.web] token)"
            )
        self.token = token
        self.max_fps = max_fps
        self.model_info = model_info or {}
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._frame = None
        self._digits = ()
        self._reading = None
        self._stats: dict = {}
        self._last_frame_time = 0.0
        self._started = time.monotonic()
        self._subscribers: list[queue.Queue] = []
        self.viewers = 0
        self.encoded = 0
        self.source_ended = False  # a finite source (image, video) has ended; its last frame stays
        self._closed = threading.Event()
        handler = type("Handler", (_Handler,), {"web": self})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"web bind {bind}: cannot listen ({exc.strerror or exc})") from None
        self._server.daemon_threads = True
        self.address = self._server.server_address
        self._thread = threading.Thread(target=self._server.serve_forever, name="web", daemon=True)
        self._thread.start()
        log.info("web preview on http://%s:%d/", *self.address[:2])

    # --- called by the loop: store, never encode ---
    def show(self, reading, frame, result, stats) -> None:
        with self._lock:
            self._frame = frame
            self._digits = result.digits if result is not None else reading.digits
            self._reading = reading
            self._stats = dict(stats)
            self._last_frame_time = time.monotonic()
            self._new_frame.notify_all()
            subscribers = list(self._subscribers) if reading.changed else []
        if subscribers:
            data = json.dumps(reading.as_dict())
            for q in subscribers:
                with contextlib.suppress(queue.Full):  # a slow client misses an event, memory stays flat
                    q.put_nowait(data)

    def status(self) -> dict:
        with self._lock:
            reading, stats, last = self._reading, dict(self._stats), self._last_frame_time
        body = reading.as_dict() if reading is not None else {"text": "", "digits": []}
        return {
            **body,
            "fps": round(stats.get("fps", 0.0), 2),
            "latency_ms": {k: round(v, 3) for k, v in stats.get("stage_ms", {}).items()},
            "frames": stats.get("frames", 0),
            "dropped": stats.get("bad_frames", 0),
            "reopens": stats.get("reopens", 0),
            "uptime": round(time.monotonic() - self._started, 1),
            "seconds_since_frame": round(time.monotonic() - last, 2) if last else None,
            "model": self.model_info,
            "source_ended": self.source_ended,
        }

    def authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if not self.token:
            return True
        offered = ""
        header = handler.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered = header[len("Bearer ") :]
        else:
            offered = parse_qs(urlsplit(handler.path).query).get("token", [""])[0]
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def jpeg_frames(self):
        """Yield JPEGs of the newest frame, at most max_fps per second, while the client stays."""
        interval = 1.0 / self.max_fps
        last_sent = 0.0
        while not self._closed.is_set():
            with self._lock:
                self._new_frame.wait(timeout=1.0)
                frame, digits, reading, stats = self._frame, self._digits, self._reading, dict(self._stats)
            if frame is None or reading is None:
                continue
            wait = last_sent + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # frames arriving meanwhile are simply replaced: dropped, not queued
                with self._lock:
                    frame, digits, reading = self._frame, self._digits, self._reading
            ok, jpeg = cv2.imencode(
                ".jpg", annotate(frame, reading, digits, stats), [cv2.IMWRITE_JPEG_QUALITY, 75]
            )
            last_sent = time.monotonic()
            if ok:
                self.encoded += 1
                yield jpeg.tobytes()

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=16)
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            with self._lock:
                self._new_frame.notify_all()
            self._server.shutdown()
            self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    web: WebOutput
    protocol_version = "HTTP/1.1"
    server_version = "digit-reader"

    def log_message(self, fmt, *args) -> None:  # requests go to debug, not to journald at info
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz" and self.web.health is not None:
            fresh, message = self.web.health.healthz()
            status = HTTPStatus.OK if fresh else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, message.encode(), "text/plain")
            return
        if path == "/healthz":
            fresh = (self.web.status()["seconds_since_frame"] or 1e9) < 10
            self._send(
                HTTPStatus.OK if fresh else HTTPStatus.SERVICE_UNAVAILABLE,
                b"ok\n" if fresh else b"no frame in 10 s\n",
                "text/plain",
            )
            return
        if not self.web.authorized(self):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"token required\n",
                "text/plain",
                {"WWW-Authenticate": 'Bearer realm="digit-reader"'},
            )
            return
        if path == "/":
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/api/status":
            self._send(HTTPStatus.OK, json.dumps(self.web.status()).encode(), "application/json")
        elif path == "/stream.mjpg":
            self._stream()
        elif path == "/events":
            self._events()
        elif path == "/metrics" and self.web.health is not None:
            from device.health import CONTENT_TYPE

            self._send(HTTPStatus.OK, self.web.health.metrics().encode(), CONTENT_TYPE)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _start_streaming(self, content_type: str) -> None:
        """Headers of an endless response: no length, no caching, the connection ends with it."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _stream(self) -> None:
        self._start_streaming("multipart/x-mixed-replace; boundary=frame")
        with self.web._lock:
            self.web.viewers += 1
        try:
            for jpeg in self.web.jpeg_frames():
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg
                    + b"\r\n"
                )
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.web._lock:
                self.web.viewers -= 1

    def _events(self) -> None:
        self._start_streaming("text/event-stream")
        q = self.web.subscribe()
        try:
            self.wfile.write(f"data: {json.dumps({'text': self.web.status()['text']})}\n\n".encode())
            self.wfile.flush()
            while not self.web._closed.is_set():
                try:
                    data = q.get(timeout=15)
                    self.wfile.write(f"data: {data}\n\n".encode())
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.web.unsubscribe(q)
