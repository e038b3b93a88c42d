"""``web`` output: a live preview and status for a headless Pi, served from the device process.

``/`` a page with the camera view (MJPEG), the reading in large type, fps, per-stage latency, backend and
model; ``/stream.mjpg`` the MJPEG stream; ``/api/status`` JSON; ``/events`` Server-Sent Events on reading
changes; ``/healthz`` for monitors (200 exactly when a frame was processed within ``health_seconds``).
Python's standard library serves it: no dependency.

It never slows the camera loop: ``show()`` only stores references and counters; one encoder thread makes a
JPEG of the newest frame, only while someone watches, at most ``max_fps`` per second, and every viewer is
sent that same JPEG (older frames are dropped, never queued). Binding to anything but loopback requires a
token, sent as ``Authorization: Bearer <token>`` or ``?token=<token>`` and compared in constant time.

Bounded whatever clients do: one selector thread accepts connections and reads request heads (a slow or
idle client costs a socket, never a thread, and is dropped after ``header_timeout`` s); a complete head is
served by one of at most ``max_connections`` threads, each connection closed after its response; at most
``max_viewers`` streams (MJPEG and events each); anything beyond a limit gets 503 at once, before any work.
A client that goes away costs one debug line. The token never reaches the log.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import logging
import queue
import re
import select
import selectors
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import cv2

from device.config import is_loopback, parse_bind, web_token
from device.errors import ConfigError
from device.events import FrameEvent, LoopStats
from device.outputs import ClosedOnExit
from device.outputs.window import annotate

log = logging.getLogger(__name__)

# The page lives in its own file (package data), read once at import.
PAGE = (resources.files("device.outputs") / "web_page.html").read_text(encoding="utf-8")

MAX_HEAD_BYTES = 16 * 1024  # request line and headers; a longer head gets 431
MAX_PENDING = 256  # connections still sending their head; beyond it the oldest is dropped
SEND_TIMEOUT = 10.0  # a client that does not take its bytes for this long is dropped
TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s'\"]*", re.IGNORECASE)
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nbusy\n"
)
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def redact(text: str) -> str:
    """``?token=secret`` -> ``?token=***`` (request lines are logged at debug level)."""
    return TOKEN_IN_TEXT.sub(r"\1***", text)


def build(w, context) -> WebOutput:
    web = WebOutput(
        w.bind,
        web_token(w),
        w.max_fps,
        context.model_info,
        max_viewers=w.max_viewers,
        max_connections=w.max_connections,
        header_timeout=w.header_timeout,
        health_seconds=w.health_seconds,
    )
    web.health = context.health
    return web


class WebOutput(ClosedOnExit):
    """The preview server. ``show()`` is cheap; the HTTP threads do the work."""

    health = None  # device.health.Health, set by device-run: /metrics and the stall state of /healthz

    def __init__(
        self,
        bind: str = "127.0.0.1:8088",
        token: str = "",
        max_fps: float = 10.0,
        model_info=None,
        max_viewers: int = 4,
        max_connections: int = 24,
        header_timeout: float = 5.0,
        health_seconds: float = 10.0,
    ):
        host, port = parse_bind(bind)
        if not is_loopback(host) and not token:
            raise ConfigError(
                f"web bind {bind}: binding beyond this machine needs a token "
                "(--web-token or [output.web] token)"
            )
        self.token = token
        self.max_fps = max_fps
        self.max_viewers = max_viewers
        self.health_seconds = health_seconds
        self.model_info = model_info or {}
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._frame = None
        self._frame_seq = 0
        self._digits = ()
        self._reading = None
        self._stats = LoopStats()
        self._last_frame_time = 0.0
        self._started = time.monotonic()
        self._subscribers: list[queue.Queue] = []
        self.viewers = 0
        self.encoded = 0
        self.source_ended = False  # a finite source (image, video) has ended; its last frame stays
        self.sent = 0  # JPEGs written to viewers (all of them share each encode)
        self.refused = 0  # connections answered 503 or dropped for a limit
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._new_jpeg = threading.Condition(self._lock)
        self._encoder: threading.Thread | None = None
        self._closed = threading.Event()
        handler = type("Handler", (_Handler,), {"web": self})
        self._server = _Server((host, port), bind, handler, max_connections, header_timeout, self)
        self.address = self._server.address
        self._thread = threading.Thread(target=self._server.serve, name="web", daemon=True)
        self._thread.start()
        log.info("web preview on http://%s:%d/", *self.address[:2])

    # --- called by the loop: store, never encode ---
    def show(self, event: FrameEvent) -> None:
        reading = event.reading
        with self._lock:
            self._frame = event.frame
            self._digits = event.result.digits if event.result is not None else reading.digits
            self._reading = reading
            self._stats = event.stats
            self._last_frame_time = time.monotonic()
            self._frame_seq += 1
            self._new_frame.notify_all()
            subscribers = list(self._subscribers) if reading.changed else []
        if subscribers:
            data = json.dumps(reading.as_dict())
            for q in subscribers:
                with contextlib.suppress(queue.Full):  # a slow client misses an event, memory stays flat
                    q.put_nowait(data)

    def healthy(self) -> bool:
        """A frame was processed within ``health_seconds`` (no rounding: a brand-new frame is fresh)."""
        with self._lock:
            last = self._last_frame_time
        return bool(last) and time.monotonic() - last < self.health_seconds

    def status(self) -> dict:
        with self._lock:
            reading, stats, last = self._reading, self._stats, self._last_frame_time
        body = reading.as_dict() if reading is not None else {"text": "", "digits": []}
        return {
            **body,
            "fps": round(stats.fps, 2),
            "latency_ms": {k: round(v, 3) for k, v in stats.stage_ms.items()},
            "frames": stats.frames,
            "dropped": stats.bad_frames,  # the page's word (and /api/status's) for frames that were bad
            "reopens": stats.reopens,
            "slow_frames": stats.slow_frames,
            "cluttered_frames": stats.cluttered_frames,
            "viewers": self.viewers,
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

    def add_viewer(self) -> bool:
        """Count a new stream viewer; False when ``max_viewers`` already watch."""
        with self._lock:
            if self.viewers >= self.max_viewers:
                self.refused += 1
                return False
            self.viewers += 1
            if self._encoder is None:
                self._encoder = threading.Thread(target=self._encode_loop, name="web-jpeg", daemon=True)
                self._encoder.start()
            self._new_frame.notify_all()
            return True

    def remove_viewer(self) -> None:
        with self._lock:
            self.viewers -= 1

    def _encode_loop(self) -> None:
        """The one place JPEGs are made: the newest frame, at most max_fps, only while someone watches."""
        interval = 1.0 / self.max_fps
        last_sent = 0.0
        seen = 0
        while not self._closed.is_set():
            with self._lock:
                self._new_frame.wait_for(
                    lambda seen=seen: self._closed.is_set() or (self.viewers > 0 and self._frame_seq != seen),
                    timeout=1.0,
                )
                if (
                    self._closed.is_set()
                    or self.viewers == 0
                    or self._frame_seq == seen
                    or self._reading is None
                ):
                    continue
            wait = last_sent + interval - time.monotonic()
            if wait > 0 and self._closed.wait(wait):
                break  # frames arriving meanwhile are simply replaced: dropped, not queued
            with self._lock:
                frame, digits, reading, stats = self._frame, self._digits, self._reading, self._stats
                seen = self._frame_seq
            try:
                ok, jpeg = cv2.imencode(
                    ".jpg", annotate(frame, reading, digits, stats.fps), [cv2.IMWRITE_JPEG_QUALITY, 75]
                )
            except (cv2.error, ValueError, TypeError) as exc:
                log.debug("preview frame not encoded: %s", exc)
                ok = False
            last_sent = time.monotonic()
            if ok:
                data = jpeg.tobytes()
                with self._lock:
                    self._jpeg, self._jpeg_seq = data, self._jpeg_seq + 1
                    self.encoded += 1
                    self._new_jpeg.notify_all()

    def jpeg_frames(self):
        """Yield the shared JPEG each time a newer one is made, while the client stays."""
        seq = 0
        while not self._closed.is_set():
            with self._lock:
                self._new_jpeg.wait_for(lambda seq=seq: self._jpeg_seq != seq or self._closed.is_set(), 1.0)
                if self._jpeg_seq == seq or self._jpeg is None:
                    continue
                seq, jpeg = self._jpeg_seq, self._jpeg
            yield jpeg

    def subscribe(self) -> queue.Queue | None:
        """A queue of reading-change events; None when ``max_viewers`` already listen."""
        q: queue.Queue = queue.Queue(maxsize=16)
        with self._lock:
            if len(self._subscribers) >= self.max_viewers:
                self.refused += 1
                return None
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
                self._new_jpeg.notify_all()
            self._server.close()
            self._thread.join(timeout=5)


class _Server:
    """Accept connections and read request heads in one selector thread; serve complete requests on at
    most ``max_connections`` threads; answer 503 beyond that, drop heads slower than ``header_timeout``."""

    def __init__(self, address, bind: str, handler, max_connections: int, header_timeout: float, web):
        self.handler, self.max_connections, self.header_timeout, self.web = (
            handler,
            max_connections,
            header_timeout,
            web,
        )
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        try:
            infos = socket.getaddrinfo(address[0], address[1], family, socket.SOCK_STREAM)
            self._listener = socket.socket(infos[0][0], socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(infos[0][4])
            self._listener.listen(128)
        except OSError as exc:
            with contextlib.suppress(Exception):
                self._listener.close()
            raise ConfigError(f"web bind {bind}: cannot listen ({exc.strerror or exc})") from None
        self._listener.setblocking(False)
        self.address = self._listener.getsockname()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pending: dict[socket.socket, tuple[bytearray, float, tuple]] = {}
        self._active = 0
        self._active_lock = threading.Lock()
        self._closed = threading.Event()

    def serve(self) -> None:
        try:
            while not self._closed.is_set():
                for key, _ in self._selector.select(timeout=0.25):
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._read_head(key.fileobj)
                self._expire()
        except (OSError, ValueError):
            if not self._closed.is_set():
                log.exception("web preview: the server stopped")
        finally:
            for sock in list(self._pending):
                self._drop(sock)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: shed the oldest pending connection
                log.debug("web: accept failed: %s", exc)
                if self._pending:
                    self._drop(next(iter(self._pending)))
                return
            if len(self._pending) >= MAX_PENDING:
                self.web.refused += 1
                self._drop(next(iter(self._pending)))  # the oldest: most likely a slow client
            sock.setblocking(False)
            self._pending[sock] = (bytearray(), time.monotonic() + self.header_timeout, peer)
            self._selector.register(sock, selectors.EVENT_READ)

    def _read_head(self, sock) -> None:
        buffer, _, peer = self._pending[sock]
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("web: %s went away (%s)", peer[0], exc)
            self._drop(sock)
            return
        if not data:
            self._drop(sock)
            return
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0 and len(buffer) > MAX_HEAD_BYTES:
            self._reply_and_drop(sock, HEAD_TOO_LARGE)
            return
        if end < 0:
            return
        self._selector.unregister(sock)
        del self._pending[sock]
        with self._active_lock:
            busy = self._active >= self.max_connections
            if not busy:
                self._active += 1
        if busy:
            self.web.refused += 1
            self._reply(sock, BUSY)
            sock.close()
            return
        head = bytes(buffer[: end + 4])
        threading.Thread(
            target=self._handle, args=(sock, head, peer), name="web-request", daemon=True
        ).start()

    def _handle(self, sock, head: bytes, peer) -> None:
        try:
            sock.setblocking(True)
            sock.settimeout(SEND_TIMEOUT)
            self.handler((sock, head), peer, self)
        except OSError as exc:  # reset, broken pipe, timeout: the client's business, one debug line
            log.debug("web: %s went away (%s)", peer[0], exc)
        except Exception:
            log.exception("web: request from %s failed", peer[0])
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._active_lock:
                self._active -= 1

    def _expire(self) -> None:
        now = time.monotonic()
        for sock, (_, deadline, peer) in list(self._pending.items()):
            if now > deadline:
                log.debug("web: %s sent no complete request in %.0f s; dropped", peer[0], self.header_timeout)
                self._drop(sock)

    def _reply(self, sock, data: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.send(data)  # non-blocking: a few hundred bytes fit any socket buffer

    def _reply_and_drop(self, sock, data: bytes) -> None:
        self._reply(sock, data)
        self._drop(sock)

    def _drop(self, sock) -> None:
        self._pending.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)
        sock.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(self._listener)
        self._listener.close()


class _SocketWriter(io.BufferedIOBase):
    """``wfile``: every write is sent whole (``sendall``), under the socket's send timeout."""

    def __init__(self, sock):
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class _Handler(BaseHTTPRequestHandler):
    web: WebOutput
    protocol_version = "HTTP/1.1"
    server_version = "digit-reader"

    def setup(self) -> None:
        # The selector thread has read the head already; one request per connection.
        self.connection, head = self.request
        self.rfile = io.BytesIO(head)
        self.wfile = _SocketWriter(self.connection)

    def finish(self) -> None:
        pass

    def version_string(self) -> str:
        return self.server_version  # no Python version for the world to see

    def end_headers(self) -> None:
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        if not self.close_connection:
            self.send_header("Connection", "close")
        self.close_connection = True
        super().end_headers()

    def log_message(self, fmt, *args) -> None:  # requests go to debug, not to journald at info
        log.debug("%s %s", self.address_string(), redact(fmt % args))

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz" and self.web.health is not None:
            fresh, message = self.web.health.healthz()
            status = HTTPStatus.OK if fresh else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, message.encode(), "text/plain")
            return
        if path == "/healthz":
            fresh = self.web.healthy()
            self._send(
                HTTPStatus.OK if fresh else HTTPStatus.SERVICE_UNAVAILABLE,
                b"ok\n" if fresh else f"no frame in {self.web.health_seconds:g} s\n".encode(),
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

    def _start_streaming(self, content_type: str) -> bool:
        """Headers of an endless response: no length, no caching, the connection ends with it.
        False for HEAD: the headers are the whole answer."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        return self.command != "HEAD"

    def _busy(self) -> None:
        self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n", "text/plain", {"Retry-After": "5"})

    def _stream(self) -> None:
        if not self.web.add_viewer():
            self._busy()
            return
        try:
            if not self._start_streaming("multipart/x-mixed-replace; boundary=frame"):
                return
            for jpeg in self.web.jpeg_frames():
                # The shared JPEG is sent as it is: no per-viewer copy.
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                )
                self.wfile.write(jpeg)
                self.wfile.write(b"\r\n")
                self.web.sent += 1
        finally:
            self.web.remove_viewer()

    def _client_gone(self) -> bool:
        """The client has closed its end (a stream's slot is given back within a second, not at the next
        write)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True

    def _events(self) -> None:
        q = self.web.subscribe()
        if q is None:
            self._busy()
            return
        try:
            if not self._start_streaming("text/event-stream"):
                return
            self.wfile.write(f"data: {json.dumps({'text': self.web.status()['text']})}\n\n".encode())
            self.wfile.flush()
            quiet = 0
            while not self.web._closed.is_set() and not self._client_gone():
                try:
                    data = q.get(timeout=1)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    quiet = 0
                except queue.Empty:
                    quiet += 1
                    if quiet % 15 == 0:
                        self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        finally:
            self.web.unsubscribe(q)
