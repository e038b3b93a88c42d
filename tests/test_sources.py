"""File sources: a video or folder ends, or starts again with ``loop``; a closed source gives no frames."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from device.errors import SourceError
from device.sources import FolderSource, VideoSource, csi_cameras, open_auto, open_source, webcam_devices
from tests.conftest import write_video


def shades(count: int) -> list[np.ndarray]:
    """Flat frames of clearly different greys, so each frame can be told apart after JPEG coding."""
    return [np.full((48, 64, 3), 40 + 60 * i, np.uint8) for i in range(count)]


def grey(frame: np.ndarray) -> int:
    return round(float(frame.mean()))


def test_video_ends_or_loops(tmp_path):
    video = tmp_path / "three.avi"
    write_video(video, shades(3), fps=10)
    with VideoSource(video) as once:
        seen = [once.read() for _ in range(4)]
    assert all(f is not None for f in seen[:3]) and seen[3] is None

    with open_source(str(video), loop=True) as looping:
        levels = [grey(looping.read()) for _ in range(7)]
    assert levels[:3] == levels[3:6] and levels[6] == levels[0]
    assert len(set(levels[:3])) == 3


def test_folder_ends_or_loops_and_close_stops_it(tmp_path):
    for i, frame in enumerate(shades(2)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), frame)
    once = FolderSource(tmp_path)
    assert [grey(once.read()), grey(once.read()), once.read()] == [40, 100, None]

    looping = open_source(str(tmp_path), loop=True)
    assert [grey(looping.read()) for _ in range(5)] == [40, 100, 40, 100, 40]
    looping.close()
    assert looping.read() is None


def test_auto_prefers_the_csi_camera_then_the_first_webcam_that_opens():
    opened = []

    def fake_open(kind):
        def opener(*args):
            opened.append((kind, args))
            if args[0] == "/dev/video0":
                raise SourceError("source /dev/video0: camera not found or busy")
            return kind

        return opener

    csi = open_auto(
        320, 240, 15, csi=lambda: [{"Model": "imx708"}], webcams=lambda: ["/dev/video0"],
        open_csi=fake_open("csi"), open_webcam=fake_open("webcam"),
    )  # fmt: skip
    assert csi == "csi" and opened == [("csi", (320, 240, 15))]
    opened.clear()
    webcam = open_auto(
        csi=lambda: [], webcams=lambda: ["/dev/video0", "/dev/video2"], open_webcam=fake_open("webcam")
    )
    assert webcam == "webcam" and [a[0] for _, a in opened] == ["/dev/video0", "/dev/video2"]


def test_auto_without_any_camera_says_exactly_what_to_pass():
    with pytest.raises(SourceError) as error:
        open_auto(csi=lambda: [], webcams=lambda: [])
    assert str(error.value) == (
        "source auto: no camera found (no CSI camera through picamera2; no /dev/video* device); "
        "pass --source webcam:N (a USB webcam), a video, an image or a folder of images; "
        "or try device-run --demo"
    )
    with pytest.raises(SourceError, match=r"/dev/video0 did not open\); pass --source webcam:N"):
        open_auto(csi=lambda: [], webcams=lambda: ["/dev/video0"], open_webcam=_never_opens)


def _never_opens(node, *size):
    raise SourceError(f"source {node}: camera not found or busy")


@pytest.mark.skipif(bool(csi_cameras() or webcam_devices()), reason="this machine has a camera")
def test_device_run_without_a_source_on_a_machine_without_a_camera():
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "--once"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 4
    assert result.stderr.strip().splitlines()[-1:] == [
        "device-run: source auto: no camera found (no CSI camera through picamera2; no /dev/video* device); "
        "pass --source webcam:N (a USB webcam), a video, an image or a folder of images; "
        "or try device-run --demo"
    ]
