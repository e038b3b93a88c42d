"""The web preview: token rules, /api/status, /healthz, Server-Sent Events, and the page in a real headless
Chromium while the loop runs on a video."""

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from device.events import FrameEvent, LoopStats
from device.outputs.web import WebOutput
from device.reading import Box, Digit, Reading
from tests.browser import Chromium
from tests.conftest import ROOT, scene, write_video
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
    """device-run on a video of "42" at its own pace, looped, with log and web outputs and a token."""
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
            "--loop",  # the video (30 s) must outlast the module's tests, however slowly they run
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


READING_BGR = (0x5E, 0xD4, 0xFF)  # --reading: #ffd45e, the large reading's colour
LIVE = "document.getElementById('state').dataset.state === 'live'"
HAS_RECENT = "document.querySelector('#recent li') !== null"


def test_page_in_headless_chromium(running, tmp_path):
    base, _ = running
    shot = tmp_path / "page.png"
    with Chromium(tmp_path / "profile", size=(1200, 700)) as page:
        page.open(f"{base}/?token={TOKEN}")
        # Both must arrive: a reading (by the event stream) and the live state (by the status poll). The page
        # is waited for, never timed: a busy machine only takes longer.
        assert page.wait_for(f"{LIVE} && {HAS_RECENT}"), page.evaluate("document.body.outerHTML")
        # The camera view shows a frame (the MJPEG stream has delivered one) before the screenshot.
        assert page.wait_for("document.getElementById('view').naturalWidth > 0")
        dom = page.dom()
        page.screenshot(shot)
    assert "<h1>digit-reader" in dom
    assert 'data-state="live"' in dom and ">live</span>" in dom
    assert re.search(r'<div id="reading"[^>]*>42</div>', dom)
    assert re.search(r'<ol id="recent"[^>]*><li><span class="text">42</span><time datetime="[^"]+">', dom)
    assert re.search(r"\d+\.\d fps · segment \d+\.\d ms", dom)
    assert "<summary>Model and counters</summary>" in dom and "ai_edge_litert" in dom
    assert re.search(r"<dt>sha256</dt><dd>[0-9a-f]{64}</dd>", dom)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (700, 1200)
    # Desktop: the camera view (light paper) on the left, the reading in large amber type on the right.
    assert image[120:450, 40:650].mean() > 100 and image[120:450, 40:650].std() > 5
    amber = np.all(np.abs(image.astype(int) - READING_BGR) < 30, axis=2)
    assert amber[:, 720:].sum() > 3000 and amber[:, :700].sum() < 500


def test_page_on_a_phone_screen(running, tmp_path):
    base, _ = running
    shot = tmp_path / "phone.png"
    with Chromium(tmp_path / "profile", size=(390, 844)) as page:
        page.open(f"{base}/?token={TOKEN}")
        assert page.wait_for(HAS_RECENT) and page.wait_for("document.getElementById('view').naturalWidth > 0")
        page.screenshot(shot)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (844, 390)
    # One column: the view across the width at the top, the reading below it; nothing cut off at the side.
    view = image[90:300, 20:370]
    assert view.mean() > 100 and view.std() > 5
    amber = np.all(np.abs(image.astype(int) - READING_BGR) < 30, axis=2)
    rows = np.nonzero(amber.sum(axis=1))[0]
    assert amber.sum() > 1000 and rows.min() > 300


def test_page_says_stalled_without_frames(tmp_path):
    web = WebOutput(
        f"127.0.0.1:{free_port()}", model_info={"name": "m.tflite", "backend": "b", "sha256": "0" * 64}
    )
    try:
        with Chromium(tmp_path / "profile") as page:
            page.open(f"http://127.0.0.1:{web.address[1]}/")
            assert page.wait_for("document.getElementById('state').dataset.state !== 'connecting'")
            dom = page.dom()
    finally:
        web.close()
    assert 'data-state="stalled"' in dom and "No new frame for a while." in dom


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_page_is_self_contained_labelled_and_has_contrast():
    from device.outputs.web import PAGE

    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//|@import|url\(", PAGE)  # no external assets
    assert 'lang="en"' in PAGE and 'name="viewport"' in PAGE
    assert re.search(r'<img id="view" alt="[^"]{10,}"', PAGE)
    assert 'id="state" role="status"' in PAGE and 'id="reading" aria-live="polite"' in PAGE
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", PAGE))
    pairs = [("fg", "bg"), ("fg", "panel"), ("muted", "bg"), ("muted", "panel"), ("reading", "panel")]
    pairs += [("pill-fg", "live"), ("pill-fg", "stalled"), ("pill-fg", "down"), ("pill-fg", "muted")]
    for text, background in pairs:
        light, dark = sorted((_luminance(colours[text]), _luminance(colours[background])), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (text, background)  # WCAG AA for normal text


def test_image_source_keeps_serving_its_last_frame_until_stopped(mnist_sample, tmp_path):
    image = tmp_path / "page.png"
    cv2.imwrite(str(image), scene(mnist_sample, ["58"], seed=4).frame)
    port = free_port()
    process = subprocess.Popen(
        [*RUN, "--source", str(image), "--output", "log,web", "--web-bind", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(process.stdout.readline())["text"] == "58"
        status = {}
        deadline = time.monotonic() + 60  # a hang guard
        while not status.get("source_ended") and time.monotonic() < deadline:
            time.sleep(0.2)
            status = json.loads(get(f"http://127.0.0.1:{port}/api/status")[1])
        assert status["source_ended"] and status["text"] == "58" and status["frames"] == 1
        assert process.poll() is None  # still serving
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=10) as stream:
            head = stream.read(200)
        assert b"Content-Type: image/jpeg" in head
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert "keeps serving its last frame until stopped" in process.stderr.read()


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
            web.show(FrameEvent(reading, frame, None, LoopStats(frames=i, fps=30.0)))
        per_call = (time.perf_counter() - started) / 500
        assert web.encoded == 0 and web.viewers == 0
        # show() only stores references: measured in the same run, a call costs a small fraction of one
        # JPEG encode of the same frame (the best of 5, so a busy machine slows both sides alike).
        encode = min(_timed(lambda: cv2.imencode(".jpg", frame)) for _ in range(5))
        assert per_call < encode / 5, (per_call, encode)
    finally:
        web.close()
        web.close()  # idempotent


def test_screenshot_script_photographs_a_real_run(tmp_path):
    """docs/web.png is made by tools/screenshot_web.py from a running device-run, not by hand."""
    out, phone = tmp_path / "web.png", tmp_path / "phone.png"
    result = subprocess.run(
        [sys.executable, "-m", "tools.screenshot_web", "--out", out, "--phone", phone],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "device-run is reading '2026'" in result.stdout
    assert cv2.imread(str(out)).shape[:2] == (720, 1200) and cv2.imread(str(phone)).shape[:2] == (844, 390)
