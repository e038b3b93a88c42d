"""device-run as a user runs it: the --once --json contract, exit codes, the loop on a video file."""

import json
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from device.outputs.window import has_gui as _has_gui
from tests.conftest import MODEL, scene, write_video

RUN = [sys.executable, "-m", "device.cli"]


def device_run(*args, timeout=120, **kwargs):
    return subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def scene_image(mnist_sample, tmp_path_factory):
    s = scene(mnist_sample, ["4096", "17"], seed=3, blur=0.6, noise=3.0)
    path = tmp_path_factory.mktemp("img") / "page.jpg"
    cv2.imwrite(str(path), s.frame)
    return path, s.text


def test_once_json_contract(scene_image):
    path, truth = scene_image
    result = device_run("--source", path, "--once", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    reading = json.loads(lines[0])
    assert reading["text"] == truth == "4096 17"
    assert [d["digit"] for d in reading["digits"]] == [4, 0, 9, 6, 1, 7]
    for d in reading["digits"]:
        assert 0.6 <= d["confidence"] <= 1.0 and len(d["box"]) == 4


def test_once_on_blank_page_reads_nothing(tmp_path):
    from host.synthetic import blank

    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), blank(np.random.default_rng(0), ruled=True))
    result = device_run("--source", path, "--once", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"text": "", "digits": []}


def one_line_error(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("device-run: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in last
    assert result.stdout == ""


def test_exit_codes(tmp_path, scene_image):
    path, _ = scene_image
    one_line_error(
        device_run("--source", tmp_path / "nope.png", "--once", "--json"),
        4,
        "nope.png",
        "no such file or folder",
    )
    (tmp_path / "empty").mkdir()
    one_line_error(device_run("--source", tmp_path / "empty", "--once"), 4, "folder has no images")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    one_line_error(device_run("--source", tmp_path / "bad.png", "--once"), 4, "not a readable image")
    one_line_error(
        device_run("--source", "picamera2", "--once"), 4, "picamera2", "apt install python3-picamera2"
    )

    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(MODEL.read_bytes()[:5000])
    one_line_error(device_run("--model", corrupt, "--source", path, "--once"), 3, "not a valid TFLite model")
    tampered = tmp_path / "digits_int8.tflite"
    data = bytearray(MODEL.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    (tmp_path / "digits_int8.json").write_text(MODEL.with_suffix(".json").read_text())
    one_line_error(device_run("--model", tampered, "--source", path, "--once"), 3, "does not match its card")
    one_line_error(
        device_run("--model", tmp_path / "missing.tflite", "--source", path, "--once"), 3, "cannot read"
    )

    (tmp_path / "c.toml").write_text("[decision]\nmin_confidence = 2\n")
    one_line_error(
        device_run("--config", tmp_path / "c.toml", "--source", path, "--once"),
        2,
        "decision.min_confidence = 2: must be between 0.0 and 1.0",
    )
    one_line_error(device_run("--output", "log,lcd", "--source", path), 2, "--output lcd")
    bad_arg = device_run("--max-frames", "many")
    assert bad_arg.returncode == 2


@pytest.fixture(scope="module")
def video(mnist_sample, tmp_path_factory):
    """A video: "42" for 12 frames, blank paper for 14, then "7" for 12."""
    from host.synthetic import blank

    rng = np.random.default_rng(1)
    frames = [scene(mnist_sample, ["42"], seed=10 + i % 2, blur=0.5).frame for i in range(12)]
    frames += [blank(rng) for _ in range(14)]
    frames += [scene(mnist_sample, ["7"], seed=20 + i % 2, blur=0.5).frame for i in range(12)]
    path = tmp_path_factory.mktemp("video") / "digits.avi"
    write_video(path, frames)
    return path


def test_loop_on_video_reports_changes_only(video):
    result = device_run("--source", video, "--output", "log")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["text"] for e in events] == ["42", "", "7"]
    assert all(e["event"] == "reading" for e in events)
    assert "stopped after 38 frames (0 bad, 0 cluttered, 0 reopens); last reading '7'" in result.stderr


def test_no_tensorflow_after_a_full_run(video):
    code = (
        "import sys; from device.cli import main; rc = main(['--source', sys.argv[1], '--output', 'log']); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
        "print('TF-LOADED' if heavy else 'NO-TF'); "
        "print('HOST' if any(m.split('.')[0] == 'host' for m in sys.modules) else '')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(video)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["NO-TF", ""]


def test_sigterm_stops_the_loop_cleanly(video):
    process = subprocess.Popen(
        [*RUN, "--source", str(video), "--realtime", "--loop", "--output", "log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()  # the first reading: the loop is running
        assert json.loads(first)["text"] == "42"
        process.send_signal(signal.SIGTERM)
        # A hang guard, not a time limit: the looped video never ends, so only the signal stops it.
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "signal SIGTERM: stopping" in process.stderr.read()


def test_folder_source_and_max_frames(tmp_path, mnist_sample):
    # (Seeds 1 and 2: seed 0 draws this "3" with a pen so broad that both its loops close; it looks like
    # an 8, and model v2 reads it so.)
    for i, text in enumerate(["3", "58"]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), scene(mnist_sample, [text], seed=i + 1).frame)
    result = device_run("--source", tmp_path, "--output", "log")
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["3", "58"]
    limited = device_run("--source", tmp_path, "--output", "log", "--max-frames", "1")
    assert [json.loads(line)["text"] for line in limited.stdout.splitlines()] == ["3"]


def test_mock_gpio_output_runs_from_the_cli(scene_image):
    path, _ = scene_image
    env = {**os.environ}
    result = device_run(
        "--source",
        path,
        "--once",
        "--json",
        "--output",
        "gpio-7seg,gpio-bcd",
        "--pin-factory",
        "mock",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "4096 17"


def _demo(env_display):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    if env_display:
        env["DISPLAY"] = env_display
    return device_run("--demo", env=env)


def test_demo_without_a_display_prints_json_readings_quietly():
    """The README's first command: the bundled demo as JSON lines when there is no display."""
    result = _demo(None)
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert readings[0]["event"] == "reading" and readings[0]["text"] == "2026"
    assert "no window" not in result.stderr


@pytest.mark.skipif(_has_gui(), reason="this OpenCV has windows: --demo opens one")
def test_demo_with_a_display_but_headless_opencv_says_once_why_there_is_no_window():
    result = _demo(":99")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["text"] == "2026"
    notes = [line for line in result.stderr.splitlines() if "no window" in line]
    assert notes == [
        "WARNING device: --demo: no window although a display is present: this OpenCV has no GUI support "
        "(opencv-python-headless); for a window use the emulate extra in its own venv: "
        "python3 -m venv .venv-gui && .venv-gui/bin/pip install -e '.[emulate]'; printing JSON lines instead"
    ]
