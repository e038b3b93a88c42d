"""The service loop with injected parts: bad frames, a failing camera, stop, outputs left to their opener."""

import threading

import numpy as np
import pytest

from device.decide import Decider
from device.errors import SourceError
from device.notify import Notifier
from device.outputs import ClosedOnExit
from device.pipeline import FramePipeline
from device.segment import SegmentSettings
from device.service import ReaderLoop
from tests.conftest import MODEL, scene


class ListSource:
    """A finite source of prepared frames; an item that is an exception is raised by read()."""

    live = True
    name = "list"

    def __init__(self, items):
        self.items = list(items)
        self.closed = 0

    def read(self):
        if not self.items:
            return None
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed += 1


class RecordingOutput(ClosedOnExit):
    def __init__(self):
        self.texts, self.closed = [], 0

    def show(self, event):
        if event.reading.changed:
            self.texts.append(event.reading.text)

    def close(self):
        self.closed += 1


@pytest.fixture(scope="module")
def pipeline():
    from device.classify import Classifier

    return FramePipeline(Classifier(MODEL))


def test_bad_frames_are_skipped_and_counted(pipeline, mnist_sample):
    good = scene(mnist_sample, ["5"], seed=2).frame
    bad = [
        np.zeros((0, 0), np.uint8),
        np.zeros((480, 640, 2), np.uint8),
        np.zeros((480, 640), np.int64),
        np.zeros((480, 640), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    ]
    source = ListSource([*bad, good, good, good])
    output = RecordingOutput()
    loop = ReaderLoop(pipeline, Decider(3, 2, 10), [output])
    stats = loop.run(lambda: source)
    assert (
        stats.bad_frames == 3 and stats.frames == 6
    )  # black, white and noise are valid frames with no digits
    assert output.texts == ["5"]
    assert output.closed == 0 and source.closed == 1  # the source is the loop's, the output its opener's


def test_frames_cut_short_by_clutter_are_counted(mnist_sample):
    """A frame with more pieces of ink than the segmenter's cap (here 8: a page of six digits, with the
    specks and loose strokes of a camera page, has 11) is read from its largest pieces only, and counted,
    so /metrics and the log show how often clutter cut frames short; a page within the cap is not."""
    from device.classify import Classifier

    capped = FramePipeline(Classifier(MODEL), SegmentSettings(max_pieces=8))
    six = scene(mnist_sample, ["123456"], seed=5).frame
    two = scene(mnist_sample, ["12"], seed=6).frame
    loop = ReaderLoop(capped, Decider(3, 2, 10), [RecordingOutput()])
    stats = loop.run(lambda: ListSource([six, six, two]))
    assert stats.frames == 3 and stats.cluttered_frames == 2
    assert loop.stats.snapshot().cluttered_frames == 2


def test_failing_camera_is_reopened_with_back_off(pipeline, mnist_sample):
    frame = scene(mnist_sample, ["8"], seed=4).frame
    opened = []

    def open_source():
        opened.append(1)
        if len(opened) == 2:
            raise SourceError("source cam: camera not found or busy")
        if len(opened) == 1:
            return ListSource([frame, SourceError("source cam: camera read failed")])
        return ListSource([frame, frame])

    output = RecordingOutput()
    loop = ReaderLoop(pipeline, Decider(2, 2, 10), [output], reopen_max_seconds=0.6)
    stats = loop.run(open_source)
    assert len(opened) == 3 and stats.reopens == 1 and stats.frames == 3
    assert output.texts == ["8"]


def test_stop_event_ends_a_live_source_and_outputs_are_closed_by_their_opener(pipeline, mnist_sample):
    frame = scene(mnist_sample, ["1"], seed=5).frame

    class Endless(ListSource):
        def read(self):
            return frame

    stop = threading.Event()
    output = RecordingOutput()

    class StopAfter(RecordingOutput):
        def show(self, event):
            if event.stats.frames >= 4:
                stop.set()

    with output:
        loop = ReaderLoop(pipeline, Decider(3, 2, 10), [output, StopAfter()], stop=stop)
        stats = loop.run(lambda: Endless([]))
        assert output.closed == 0
    assert stats.frames == 4 and output.closed == 1


def test_sd_notify_messages(pipeline, mnist_sample, tmp_path):
    import socket

    address = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(2)
    frame = scene(mnist_sample, ["3"], seed=6).frame
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    assert notifier.watchdog_seconds == 2.0
    loop = ReaderLoop(pipeline, Decider(3, 2, 10), [], notifier=notifier)
    loop.run(lambda: ListSource([frame] * 3))
    messages = []
    try:
        while True:
            messages.append(server.recv(4096).decode())
    except TimeoutError:
        pass
    server.close()
    assert messages[0].startswith("READY=1")
    assert "WATCHDOG=1" in messages
    assert any(m.startswith("STATUS=reading '3'") for m in messages)
    assert messages[-1] == "STOPPING=1"


def test_notifier_is_a_no_op_outside_systemd():
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.send("READY=1")
    notifier.watchdog()
    notifier.close()


def test_abstract_notify_socket():
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"digit-reader-test-{threading.get_ident()}"
    server.bind("\0" + name)
    server.settimeout(2)
    Notifier({"NOTIFY_SOCKET": "@" + name}).ready("ok")
    assert server.recv(100) == b"READY=1\nSTATUS=ok"
    server.close()
