"""Issue 10, web preview under abuse: one JPEG encode per frame for every viewer, max_viewers, slow and idle
sockets cost no thread and never shut out /healthz, resets cost at most a debug line, exact health,
security headers, HEAD, no token in the log, the token from a file."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time

import numpy as np
import pytest

from device.config import WebConfig, web_token
from device.errors import ConfigError
from device.events import FrameEvent, LoopStats
from device.outputs.web import WebOutput
from device.reading import Box, Digit, Reading
from tests.sshd import free_port

TOKEN = "s3cret-token"
READING = Reading((Digit(4, 0.9, Box(10, 10, 20, 40)), Digit(2, 0.8, Box(40, 10, 20, 40))), changed=True)


class Feeder:
    """Calls web.show() like the camera loop, ``fps`` times a second, on its own thread."""

    def __init__(self, web: WebOutput, fps: float = 50.0):
        self.web, self.interval, self.frames = web, 1.0 / fps, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        frame = np.full((240, 320, 3), 200, np.uint8)
        while not self._stop.wait(self.interval):
            self.frames += 1
            self.web.show(FrameEvent(READING, frame, None, LoopStats(frames=self.frames, fps=50.0)))

    def stop(self):
        self._stop.set()
        self._thread.join()


@pytest.fixture
def web():
    output = WebOutput(
        f"127.0.0.1:{free_port()}", TOKEN, max_fps=20, max_viewers=3, max_connections=4, header_timeout=1.0
    )
    feeder = Feeder(output)
    while not output.healthy():
        time.sleep(0.01)
    yield output
    feeder.stop()
    output.close()


def request(web, method="GET", path="/healthz", headers=None, timeout=5.0):
    connection = http.client.HTTPConnection(*web.address[:2], timeout=timeout)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    streaming = path.startswith(("/stream", "/events")) and response.status == 200
    body = response.read() if not streaming else b""
    return connection, response, body


def open_stream(web, n_parts=1):
    """A viewer: reads the first part of the MJPEG stream and keeps the connection open."""
    sock = socket.create_connection(web.address[:2], timeout=5)
    sock.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while data.count(b"--frame") < n_parts:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return sock, data


def test_healthz_is_exactly_a_frame_within_n_seconds():
    web = WebOutput(f"127.0.0.1:{free_port()}", health_seconds=1.0)
    try:
        assert request(web)[1].status == 503  # no frame yet
        frame = np.zeros((10, 10), np.uint8)
        codes = []
        for _ in range(40):  # a brand-new frame (age 0.0) is fresh: no flapping
            web.show(FrameEvent(READING, frame))
            codes.append(request(web)[1].status)
        assert codes == [200] * 40
        web._last_frame_time -= 1.5  # the last frame is now older than health_seconds
        assert request(web)[1].status == 503
    finally:
        web.close()


def test_one_encode_per_frame_for_all_viewers(web):
    viewers = [open_stream(web)[0] for _ in range(3)]
    time.sleep(0.5)
    encoded_before = web.encoded
    sent_before = web.sent
    time.sleep(1.0)
    encoded, sent = web.encoded - encoded_before, web.sent - sent_before
    for sock in viewers:
        sock.close()
    # Every JPEG made went to all three viewers: one encode per frame, not one per viewer and frame.
    assert encoded > 0 and sent >= 2.5 * encoded, (encoded, sent)


def test_the_viewer_beyond_max_viewers_gets_503_before_any_work(web):
    viewers = [open_stream(web)[0] for _ in range(3)]
    _, response, body = request(web, path=f"/stream.mjpg?token={TOKEN}")
    assert response.status == 503 and body == b"too many viewers\n"
    # Events have their own cap. The refused stream's request thread is given back just after its 503 is
    # sent: until then a fourth request finds all max_connections busy ("busy", not "too many viewers").
    deadline = time.monotonic() + 10
    while True:
        _, response, body = request(web, path=f"/events?token={TOKEN}")
        if response.status != 503 or body != b"busy\n" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status == 200
    for sock in viewers:
        sock.close()
    time.sleep(0.3)
    sock, data = open_stream(web)  # a slot is free again once a viewer leaves
    assert b"--frame" in data
    sock.close()


def test_slow_and_idle_sockets_cost_no_thread_and_never_shut_out_health(web):
    threads_before = threading.active_count()
    slow = []
    for _ in range(60):  # 15 times max_connections, trickling a header and never finishing it
        sock = socket.create_connection(web.address[:2], timeout=5)
        sock.sendall(b"GET /api/status HTTP/1.1\r\nX-Slow: ")
        slow.append(sock)
    idle = [socket.create_connection(web.address[:2], timeout=5) for _ in range(20)]
    time.sleep(0.3)
    assert threading.active_count() <= threads_before + 1  # no thread per slow or idle client
    codes = [request(web)[1].status for _ in range(10)]
    assert codes == [200] * 10
    # The header timeout (1 s here) drops them: each one reads end-of-file.
    time.sleep(2.0)
    dropped = 0
    for sock in slow + idle:
        sock.settimeout(2)
        try:
            dropped += sock.recv(100) == b""
        except OSError:
            dropped += 1
        sock.close()
    assert dropped == len(slow) + len(idle)


def test_more_requests_than_max_connections_get_503_at_once(web):
    viewers = [open_stream(web)[0] for _ in range(3)]  # 3 of the 4 request threads are busy streaming
    events = socket.create_connection(web.address[:2], timeout=5)
    events.sendall(f"GET /events?token={TOKEN} HTTP/1.1\r\n\r\n".encode())
    assert events.recv(100).startswith(b"HTTP/1.1 200")  # the fourth
    _, response, body = request(web)
    assert response.status == 503 and body == b"busy\n"
    for sock in [*viewers, events]:
        sock.close()


def reset(web, data: bytes) -> None:
    sock = socket.create_connection(web.address[:2], timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    if data:
        sock.sendall(data)
    sock.close()


def test_client_resets_cost_at_most_a_debug_line_each(web, caplog):
    caplog.set_level(logging.DEBUG, logger="device.outputs.web")
    n = 30
    for i in range(n):
        if i % 3 == 0:
            reset(web, b"GET /api/sta")  # mid-head
        elif i % 3 == 1:
            reset(web, f"GET /api/status?token={TOKEN} HTTP/1.1\r\n\r\n".encode())  # mid-response
        else:
            sock, _ = open_stream(web)  # mid-stream
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    time.sleep(1.0)
    records = [r for r in caplog.records if r.name.startswith("device")]
    assert all(r.levelno <= logging.DEBUG for r in records), [r.getMessage() for r in records]
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in records)
    went_away = [r for r in records if "went away" in r.getMessage()]
    assert len(went_away) <= n


def test_security_headers_head_and_server(web):
    _, response, body = request(web, "HEAD", "/healthz")
    assert response.status == 200 and body == b""
    _, response, body = request(web, "HEAD", f"/?token={TOKEN}")
    assert response.status == 200 and body == b"" and int(response.headers["Content-Length"]) > 100
    _, response, _ = request(web, "HEAD", f"/stream.mjpg?token={TOKEN}")
    assert response.status == 200 and response.headers["Content-Type"].startswith("multipart/")
    for path in ("/healthz", f"/?token={TOKEN}", "/api/status"):
        _, response, _ = request(web, "GET", path)
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Server"] == "digit-reader"  # no Python version


def test_token_never_reaches_the_log(web, caplog):
    caplog.set_level(logging.DEBUG)
    for path in (f"/api/status?token={TOKEN}", f"/?a=1&token={TOKEN}&b=2", f"/nope?token={TOKEN}"):
        request(web, path=path)
    request(web, path=f"/api/status?token={TOKEN}x")  # a wrong one, too
    raw = socket.create_connection(web.address[:2], timeout=5)
    raw.sendall(f"GET /?token={TOKEN} HTTP/9.9\r\n\r\n".encode())  # a malformed request is logged too
    raw.recv(1000)
    raw.close()
    time.sleep(0.3)
    assert caplog.records and TOKEN not in caplog.text
    assert "token=***" in caplog.text


def test_token_from_a_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    assert web_token(WebConfig(token_file=str(path))) == TOKEN
    assert web_token(WebConfig(token="inline", token_file=str(path))) == "inline"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        web_token(WebConfig(token_file=str(path)))
    with pytest.raises(ConfigError, match="must be a regular file"):
        web_token(WebConfig(token_file="/dev/zero"))
