"""The web preview: token rules, /api/status, /healthz, Server-Sent Events, and the page in a real headless
Chromium while the loop runs on a video."""

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from device.outputs.web import WebOutput
from device.reading import Box, Digit, Reading
from tests.conftest import scene, write_video
from tests.sshd import free_port

RUN = [sys.executable, "-m", "device.cli"]
TOKEN = "s3cret-token"


def get(url, headers=None, timeout=5):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def running(mnist_sample, tmp_path_factory):
    """device-run on a video of "42" at its own pace, with log and web outputs and a token."""
    folder = tmp_path_factory.mktemp("web")
    frames = [scene(mnist_sample, ["42"], seed=s).frame for s in (1, 2)]
    video = folder / "42.avi"
    write_video(video, frames, fps=10, count=300)
    port = free_port()
    process = subprocess.Popen(
        [
            *RUN,
            "--source",
            str(video),
            "--realtime",
            "--output",
            "log,web",
            "--web-bind",
            f"127.0.0.1:{port}",
            "--web-token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert json.loads(process.stdout.readline())["text"] == "42"
    yield f"http://127.0.0.1:{port}", folder
    process.terminate()
    process.wait(timeout=10)


def test_token_is_required_and_checked(running):
    base, _ = running
    assert get(f"{base}/api/status")[0] == 401
    assert get(f"{base}/api/status", {"Authorization": "Bearer wrong"})[0] == 401
    assert get(f"{base}/api/status?token=wrong")[0] == 401
    assert get(f"{base}/")[0] == 401
    assert get(f"{base}/stream.mjpg")[0] == 401
    assert get(f"{base}/api/status?token={TOKEN}")[0] == 200


def test_status_and_health(running):
    base, _ = running
    status, body = get(f"{base}/api/status", {"Authorization": f"Bearer {TOKEN}"})
    data = json.loads(body)
    assert status == 200 and data["text"] == "42"
    assert [d["digit"] for d in data["digits"]] == [4, 2]
    assert data["fps"] > 0
    assert set(data["latency_ms"]) == {"segment", "normalize", "classify", "outputs"}
    assert data["frames"] > 0 and data["dropped"] == 0 and data["uptime"] > 0
    # Frames advance, and --realtime paces them: never more than the video's 10 frames a second of uptime
    # (a loaded machine only makes it slower; no absolute rate is asserted).
    later = json.loads(get(f"{base}/api/status", {"Authorization": f"Bearer {TOKEN}"})[1])
    deadline = time.monotonic() + 30
    while later["frames"] == data["frames"] and time.monotonic() < deadline:
        time.sleep(0.2)
        later = json.loads(get(f"{base}/api/status", {"Authorization": f"Bearer {TOKEN}"})[1])
    assert later["frames"] > data["frames"]
    assert later["frames"] <= later["uptime"] * 10 + 2
    assert data["model"]["backend"] == "ai_edge_litert" and len(data["model"]["sha256"]) == 64
    assert get(f"{base}/healthz") == (200, b"ok\n")


def test_server_sent_events(running):
    base, _ = running
    request = urllib.request.Request(f"{base}/events?token={TOKEN}")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        line = response.readline().decode()
    assert line.startswith("data: ") and json.loads(line[6:])["text"] == "42"


def test_page_in_headless_chromium(running):
    base, folder = running
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium missing (apt-get install chromium; scripts/test.sh does)"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={folder / 'profile'}",
        "--window-size=1200,700",
    ]
    shot = folder / "page.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--timeout=4000", f"{base}/?token={TOKEN}"],
        capture_output=True,
        timeout=60,
    )
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", "--timeout=3000", f"{base}/?token={TOKEN}"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert '<div id="reading">42</div>' in dom
    assert "ai_edge_litert" in dom and "segment ms" in dom
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (700, 1200)
    # The stream (top left) shows the camera view: light paper, not the dark page background.
    view = image[30:300, 30:400]
    assert view.mean() > 100 and view.std() > 5
    # The reading in large red type (right of the stream).
    red = (image[:, :, 2] > 200) & (image[:, :, 1] < 120) & (image[:, :, 0] < 120)
    assert red[:, 500:].sum() > 2000


def test_no_token_off_loopback_refuses_to_start(tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((100, 100), 255, np.uint8))
    result = subprocess.run(
        [*RUN, "--source", str(image), "--output", "web", "--web-bind", "0.0.0.0:8091"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "device-run: web bind 0.0.0.0:8091: binding beyond this machine needs a token "
        "(--web-token or [output.web] token)"
    )


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def test_no_jpeg_is_made_while_nobody_watches():
    web = WebOutput(f"127.0.0.1:{free_port()}")
    try:
        frame = np.full((480, 640, 3), 200, np.uint8)
        reading = Reading((Digit(1, 0.9, Box(10, 10, 20, 40)),), changed=True)
        started = time.perf_counter()
        for i in range(500):
            web.show(reading, frame, None, {"frames": i, "fps": 30.0})
        per_call = (time.perf_counter() - started) / 500
        assert web.encoded == 0 and web.viewers == 0
        # show() only stores references: measured in the same run, a call costs a small fraction of one
        # JPEG encode of the same frame (the best of 5, so a busy machine slows both sides alike).
        encode = min(_timed(lambda: cv2.imencode(".jpg", frame)) for _ in range(5))
        assert per_call < encode / 5, (per_call, encode)
    finally:
        web.close()
        web.close()  # idempotent
