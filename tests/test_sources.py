"""File sources: a video or folder ends, or starts again with ``loop``; a closed source gives no frames."""

import cv2
import numpy as np

from device.sources import FolderSource, VideoSource, open_source
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
