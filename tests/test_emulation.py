"""Desktop emulation in a real window under Xvfb: the panel drawn from the mock pins shows the digit.

Needs an OpenCV with GUI support: the Raspberry-Pi-like venv (apt python3-opencv) has one, the main venv's
opencv-python-headless does not, so there the clear error message is checked instead."""

import shutil
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from device.outputs.emulator import DARK, LED_CENTERS, LED_ON, LIT, SEG_H, SEG_W, SEG_X, SEG_Y, segment_center
from device.outputs.window import has_gui
from tests.conftest import ROOT, needs, scene, write_video

RUN = [sys.executable, "-m", "device.cli"]


def read_xwd(path) -> np.ndarray:
    """Xvfb's -fbdir screen (XWD, 32 bits per pixel) as a BGR image."""
    raw = path.read_bytes()
    header = struct.unpack(">25I", raw[:100])
    size, ncolors, bytes_per_line, width, height = header[0], header[19], header[12], header[4], header[5]
    pixels = np.frombuffer(raw, np.uint8, offset=size + ncolors * 12, count=bytes_per_line * height)
    return pixels.reshape(height, bytes_per_line)[:, : width * 4].reshape(height, width, 4)[:, :, :3].copy()


@pytest.mark.skipif(has_gui(), reason="this OpenCV has GUI support")
def test_headless_opencv_gives_a_clear_message():
    video = ROOT / "device" / "demo" / "demo.mp4"
    result = subprocess.run(
        [*RUN, "--emulate", "--source", str(video)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no GUI support" in result.stderr and "pip install opencv-python" in result.stderr


@pytest.mark.skipif(not has_gui(), reason="needs an OpenCV with GUI support (the Pi-like venv has one)")
def test_emulation_window_shows_the_digit_on_the_virtual_panel(tmp_path, mnist_sample):
    needs(not shutil.which("Xvfb") and "Xvfb (apt-get install xvfb; scripts/test.sh does)")
    frames = [scene(mnist_sample, ["3"], seed=s).frame for s in (1, 2)]
    video = tmp_path / "three.avi"
    write_video(video, frames, fps=10, count=150)
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    display = f":{90 + (int(time.time()) % 9)}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1600x900x24", "-fbdir", str(fbdir), "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reader = None
    try:
        time.sleep(1.0)
        env = {"DISPLAY": display, "PATH": "/usr/bin:/bin"}
        reader = subprocess.Popen(
            [*RUN, "--emulate", "--source", str(video), "--realtime", "--output", "log"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(tmp_path),
        )
        assert '"text": "3"' in reader.stdout.readline()
        time.sleep(2.0)  # let the window paint a few frames
        screen = read_xwd(fbdir / "Xvfb_screen0")
    finally:
        if reader is not None:
            reader.terminate()
            reader.wait(timeout=10)
        xvfb.terminate()
        xvfb.wait(timeout=10)
    cv2.imwrite(str(tmp_path / "screen.png"), screen)
    # Find the 7-segment digit by its exact segment colours, then check every segment and LED.
    segment_pixels = np.all(screen == LIT, axis=2) | np.all(screen == DARK, axis=2)
    segment_pixels = cv2.morphologyEx(
        segment_pixels.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)
    )
    ys, xs = np.nonzero(segment_pixels)
    assert len(xs), "no 7-segment panel on the screen"
    assert abs((xs.max() - xs.min() + 1) - SEG_W) <= 2 and abs((ys.max() - ys.min() + 1) - SEG_H) <= 2
    origin_x, origin_y = xs.min() - SEG_X, ys.min() - SEG_Y
    lit = {
        name
        for name in "abcdefg"
        if tuple(screen[origin_y + segment_center(name)[1], origin_x + segment_center(name)[0]]) == LIT
    }
    assert lit == set("abcdg")  # a seven-segment "3"
    leds = [tuple(screen[origin_y + y, origin_x + x]) == LED_ON for x, y in LED_CENTERS]
    assert leds == [False, False, True, True, True]  # 8 4 2 1 = 0 0 1 1, and "valid"
    # The camera view with the box is left of the panel.
    assert screen[:, : max(1, origin_x)].std() > 10


def test_panel_shows_the_same_digit_on_both_displays_and_the_view_says_paused():
    """Rendered without a window (any OpenCV): for "2026" the 7-segment and the BCD LEDs both show 6."""
    from gpiozero.pins.mock import MockFactory

    from device.events import FrameEvent
    from device.outputs.emulator import PAUSED_COLOR, EmulatorWindow
    from device.outputs.gpio import BcdLeds, SevenSegment
    from device.reading import Box, Digit, Reading

    factory = MockFactory()
    seg_pins, bcd_pins = [17, 27, 22, 10, 9, 11, 0], [5, 6, 13, 19]
    outputs = [BcdLeds(bcd_pins, 26, pin_factory=factory), SevenSegment(seg_pins, pin_factory=factory)]
    reading = Reading(
        tuple(Digit(int(c), 0.99, Box(40 + 90 * i, 100, 60, 90)) for i, c in enumerate("2026")), True
    )
    for output in outputs:
        output.show(FrameEvent(reading))
    window = EmulatorWindow(factory, seg_pins, bcd_pins, 26, render_only=True)
    frame = np.full((480, 640, 3), 200, np.uint8)
    running = window.compose(frame, reading, reading.digits, 10.0)
    panel = running[:, 640:]
    lit = {n for n in "abcdefg" if tuple(panel[segment_center(n)[1], segment_center(n)[0]]) == LIT}
    assert lit == set("acdefg")  # a seven-segment "6"
    assert [tuple(panel[y, x]) == LED_ON for x, y in LED_CENTERS] == [False, True, True, False, True]  # 0110
    amber = np.all(running[:, :640] == PAUSED_COLOR, axis=2)
    assert not amber.any()
    window.paused = True
    paused = window.compose(frame, reading, reading.digits, 10.0)
    amber = np.all(paused[:, :640] == PAUSED_COLOR, axis=2)
    assert amber[-44:].sum() > 200 and not amber[:-44].any()  # the banner at the bottom of the view
    for output in outputs:
        output.close()


def _wait_for(condition, what: str, limit: float = 60.0):
    """Poll until condition() is true; the limit is a hang guard, not a timing requirement."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.skipif(not has_gui(), reason="needs an OpenCV with GUI support (the Pi-like venv has one)")
def test_p_pauses_and_the_window_says_so(tmp_path):
    from device.outputs.emulator import PAUSED_COLOR

    needs(not shutil.which("Xvfb") and "Xvfb (apt-get install xvfb; scripts/test.sh does)")
    needs(not shutil.which("xdotool") and "xdotool (apt-get install xdotool; scripts/test.sh does)")
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    display = f":{80 + (int(time.time()) % 9)}"
    env = {"DISPLAY": display, "PATH": "/usr/bin:/bin"}
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1600x900x24", "-fbdir", str(fbdir), "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reader = None
    screen_file = fbdir / "Xvfb_screen0"

    def amber() -> int:
        return int(np.all(read_xwd(screen_file) == PAUSED_COLOR, axis=2).sum()) if screen_file.exists() else 0

    def window_id() -> str:
        found = subprocess.run(
            ["xdotool", "search", "--name", "emulation"], env=env, capture_output=True, text=True
        )
        return found.stdout.split()[-1] if found.stdout.split() else ""

    try:
        _wait_for(screen_file.exists, "Xvfb started")
        video = ROOT / "device" / "demo" / "demo.mp4"
        reader = subprocess.Popen(
            [*RUN, "--emulate", "--source", str(video), "--realtime", "--loop", "--output", "log"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(tmp_path),
        )
        assert '"event": "reading"' in reader.stdout.readline()
        _wait_for(window_id, "the emulation window is mapped")
        assert amber() == 0  # running: no banner
        subprocess.run(["xdotool", "windowfocus", "--sync", window_id(), "key", "p"], env=env, check=True)
        _wait_for(lambda: amber() > 200, "the PAUSED banner on screen")
    finally:
        if reader is not None:
            reader.terminate()
            reader.wait(timeout=30)
        xvfb.terminate()
        xvfb.wait(timeout=30)
    assert "INFO device.outputs.emulator: paused" in reader.stderr.read()
