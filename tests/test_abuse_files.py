"""Issue 10, files read and written: bad folder entries, decompression bombs, FIFOs and /dev/zero as source,
model or config, --save-crops on a full disk and a read-only folder, stdout closed or full, NaN in JSON.
Every failure is one line naming the thing and the rule; nothing hangs (each run has a timeout), no
traceback, no half-written file."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import SourceError
from device.reading import Box, Digit, Reading
from device.sources import FolderSource, open_source
from tests.conftest import scene

RUN = [sys.executable, "-m", "device.cli"]
ROOT = Path(__file__).resolve().parent.parent


def device_run(*args, timeout=60, **kwargs):
    return subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def one_line_error(result, code: int, *fragments: str) -> None:
    """The contract: exit ``code``, the last stderr line names the problem, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("device-run: "), last
    for fragment in fragments:
        assert fragment in last, last


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (a decompression bomb needs no more than its header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def good_png(tmp_path, mnist_sample):
    path = tmp_path / "good.png"
    cv2.imwrite(str(path), scene(mnist_sample, ["7"], seed=1).frame)
    return path


# --- folder source: bad entries are skipped once; nothing readable ends with exit 4 ---


def bad_entries(folder: Path) -> None:
    (folder / "a_empty.png").write_bytes(b"")
    (folder / "b_text.png").write_text("not an image")
    (folder / "c_broken_link.png").symlink_to(folder / "missing.png")
    os.mkfifo(folder / "d_fifo.png")
    (folder / "e_dir.png").mkdir()
    (folder / "f_bomb.png").write_bytes(png_header(100_000, 100_000))
    (folder / "g_truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)


def test_folder_skips_each_bad_entry_once_and_reads_the_rest(tmp_path, good_png, caplog):
    bad_entries(tmp_path)
    shutil.copy(good_png, tmp_path / "z_good.png")
    good_png.unlink()
    source = FolderSource(tmp_path, loop=True)
    frames = [source.read() for _ in range(3)]  # three passes over the folder: the good image each time
    assert all(f is not None and f.shape[:2] == (480, 640) for f in frames)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 7 and all("skipped" in w for w in warnings), warnings  # once each, not per pass
    (tmp_path / "z_good.png").unlink()  # deleted mid-run: not read again, and now nothing is readable
    with pytest.raises(SourceError, match="no readable image"):
        source.read()


def test_folder_with_nothing_readable_exits_4(tmp_path):
    bad_entries(tmp_path)
    result = device_run("--source", tmp_path, "--output", "log", "--loop", timeout=60)
    one_line_error(result, 4, str(tmp_path), "no readable image")


# --- pixel cap from the header, before decoding ---


@pytest.mark.parametrize("size", [(32_000, 32_000), (100_000, 100_000), (2**31 - 1, 2**31 - 1)])
def test_image_over_the_pixel_cap_is_refused_before_decoding(tmp_path, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(*size))
    with pytest.raises(SourceError, match=r"more than camera\.max_pixels"):
        open_source(str(path))
    result = device_run("--source", path, "--once", timeout=60)
    one_line_error(result, 4, "bomb.png", "max_pixels")


def test_a_real_bomb_png_is_refused_with_little_memory(tmp_path, good_png):
    """A real 1 MB PNG of 20000x20000 grey pixels (400 MB decoded) is refused from its header: the process
    peaks no higher than when it opens an ordinary photo."""
    compressor, row = zlib.compressobj(9), b"\0" * 20_001
    rows = b"".join(compressor.compress(row) for _ in range(20_000)) + compressor.flush()
    path = tmp_path / "big.png"
    data = png_header(20_000, 20_000)
    head_end = 8 + 25  # signature and IHDR
    idat = struct.pack(">I", len(rows)) + b"IDAT" + rows + struct.pack(">I", zlib.crc32(b"IDAT" + rows))
    path.write_bytes(data[:head_end] + idat + data[-12:])
    assert path.stat().st_size < 2_000_000
    script = (
        "import resource, sys\n"
        "from device.sources import open_source\n"
        "try:\n    open_source(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "else:\n    print('opened')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )

    def peak(image):
        out = subprocess.run(
            [sys.executable, "-c", script, str(image)], capture_output=True, text=True, timeout=60
        )
        return out.stdout.split()

    bomb, ordinary = peak(path), peak(good_png)
    assert bomb[0] == "SourceError" and ordinary[0] == "opened"
    assert int(bomb[1]) < int(ordinary[1]) * 1.5  # KB; decoding the bomb would add 400 MB


def test_max_pixels_is_configurable(tmp_path, good_png):
    config = tmp_path / "c.toml"
    config.write_text("[camera]\nmax_pixels = 10000\n")
    result = device_run("--config", config, "--source", good_png, "--once", timeout=60)
    one_line_error(result, 4, "640x480 = 307200 pixels", "max_pixels = 10000")


# --- FIFOs, devices and folders where a file belongs ---


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo.png"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("where", ["source", "model", "config", "check-config"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "folder"])
def test_special_files_are_refused_in_one_line(tmp_path, fifo, good_png, where, special):
    if special == "fifo":
        path = (
            fifo
            if where == "source"
            else fifo.rename(tmp_path / ("m.tflite" if where == "model" else "c.toml"))
        )
    elif special == "folder":
        path = tmp_path / ("dir.tflite" if where == "model" else "dir.toml")
        path.mkdir()
    else:
        path = Path(special)
    if where == "source":
        if special == "folder":
            pytest.skip("a folder is a valid source (covered above)")
        result = device_run("--source", path, "--once", timeout=30)
        code, rule = 4, "must be a regular file"
    elif where == "model":
        result = device_run("--model", path, "--source", good_png, "--once", timeout=30)
        code, rule = 3, "must be a regular file"
    elif where == "config":
        result = device_run("--config", path, "--source", good_png, "--once", timeout=30)
        code, rule = 2, "must be a regular file"
    else:
        result = device_run("--check-config", path, timeout=30)
        code, rule = 2, "must be a regular file"
    one_line_error(result, code, str(path), rule)


def test_a_webcam_number_too_large_is_one_line():
    result = device_run("--source", "webcam:99999999999999999999", "--once", timeout=30)
    one_line_error(result, 4, "webcam:99999999999999999999", "between 0 and 1023")


# --- --save-crops: never a half-written file, the loop keeps reading ---


def crops_run(folder, video, frames=40):
    return device_run(
        "--source", video, "--output", "log", "--save-crops", folder, "--max-frames", frames, timeout=120
    )


@pytest.fixture(scope="module")
def changing_video(tmp_path_factory, mnist_sample):
    from tests.conftest import write_video

    folder = tmp_path_factory.mktemp("crops")
    texts = ["12", "345", "67", "890"]
    frames = [scene(mnist_sample, [text], seed=s).frame for s, text in enumerate(texts) for _ in range(10)]
    video = folder / "v.avi"
    write_video(video, frames, fps=10, count=40)
    return video


def final_pngs(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.png") if not p.name.startswith(".")]


def assert_no_half_written(folder: Path) -> None:
    for path in final_pngs(folder):
        assert path.stat().st_size > 0, path
        assert cv2.imread(str(path)) is not None, path
    assert not [p for p in folder.rglob(".*tmp")], "temporary files left behind"


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mountpoint = tmp_path / "full"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mountpoint)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip() or 'mount failed'})")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_save_crops_on_a_full_disk(tiny_tmpfs, changing_video):
    (tiny_tmpfs / "filler").write_bytes(b"\0" * 36 * 1024)  # a few crops fit, then the disk is full
    result = crops_run(tiny_tmpfs / "crops", changing_video)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "--save-crops: cannot write" in line]
    assert len(warnings) == 1, result.stderr[-2000:]  # logged once
    assert "stopped after 40 frames" in result.stderr  # the loop kept reading
    assert_no_half_written(tiny_tmpfs / "crops")


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(
            f"root ignores file modes and cannot mount a read-only tmpfs ({result.stderr.decode().strip()})"
        )
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_save_crops_in_a_read_only_folder(read_only_folder, changing_video):
    result = crops_run(read_only_folder, changing_video)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert sum("--save-crops: cannot write" in line for line in result.stderr.splitlines()) == 1
    assert "stopped after 40 frames" in result.stderr
    assert final_pngs(read_only_folder) == []


def test_save_crops_folder_that_cannot_be_made_is_one_line(tmp_path, good_png):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = device_run("--source", good_png, "--once", "--save-crops", blocker / "sub", timeout=60)
    one_line_error(result, 2, "--save-crops", "cannot use the folder")


# --- stdout ---


def test_broken_pipe_exits_quietly(changing_video):
    script = f"{' '.join(map(str, RUN))} --source {changing_video} --output log --loop | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert json.loads(result.stdout)["event"] == "reading"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr[-2000:]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("mode", ["once", "loop"])
def test_dev_full_is_a_one_line_error(good_png, changing_video, mode):
    args = ["--source", good_png, "--once", "--json"] if mode == "once" else ["--source", changing_video]
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*RUN, *map(str, args)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
        )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[
        -2000:
    ]
    assert (
        result.stderr.strip().splitlines()[-1]
        == "device-run: cannot write to stdout (No space left on device)"
    )


# --- JSON ---


def test_json_never_holds_nan():
    reading = Reading((Digit(None, float("nan"), Box(0, 0, 1, 1)), Digit(3, float("inf"), Box(2, 0, 1, 1))))
    text = json.dumps(reading.as_dict(), allow_nan=False)  # raises on NaN/Infinity
    assert json.loads(text)["digits"][0]["confidence"] is None


def test_frame_too_small_is_exit_4(tmp_path):
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), np.full((1, 1), 255, np.uint8))
    result = device_run("--source", path, "--once", "--json", timeout=60)
    assert result.returncode in (0, 4), result.stderr
    if result.returncode == 4:
        one_line_error(result, 4, "tiny.png")
    else:
        assert json.loads(result.stdout)["text"] == ""
