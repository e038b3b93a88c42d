"""The runtime runs from its wheel: built from the sources, installed (not editable) into a fresh venv,
``device-run --demo`` and ``--once --json`` work from there, with the shipped model and the demo inside."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import ROOT, needs


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    needs(importlib.util.find_spec("setuptools") is None and "setuptools (to build the wheel here)")
    out, src = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("src")
    # From a copy of what the wheel is made of, as deploy.sh builds it: no build folder left in the project.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("device", "host"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, src],
        capture_output=True, text=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (path,) = out.glob("digit_reader-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed by pip; its dependencies (numpy, OpenCV, LiteRT) are this
    environment's, seen through a .pth file, so nothing is downloaded."""
    folder = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--system-site-packages", "--without-pip", folder], check=True
    )
    purelib = subprocess.run(
        [folder / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", folder / "bin" / "python", "install", "-q", "--no-deps",
         "--no-index", wheel],
        capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    # Only now: before the install, pip would have taken this environment's (editable) digit-reader for it.
    ours = sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"]})
    (folder / "lib" / purelib.rsplit("/lib/", 1)[1] / "dependencies.pth").write_text("\n".join(ours) + "\n")
    return folder


def clean_env() -> dict:
    """This environment without a display and without PYTHONPATH (which may name the project folder: then
    the source tree, not the wheel, would be imported)."""
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "PYTHONPATH")}


def run_in(venv, *args):
    # Not from the project folder: only the installed package may be found.
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=venv, env=clean_env()
    )


def test_wheel_carries_the_runtime_and_its_data_but_no_dev_tools(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("device/models/digits_int8.tflite", "device/models/digits_int8.json", "device/demo/demo.mp4",
                 "device/demo/page.jpg", "device/outputs/web_page.html"):  # fmt: skip
        assert data in names, data
    assert not any(name.startswith(("tools/", "tests/", "scripts/", "models/")) for name in names)


def test_installed_wheel_reads_the_demo_and_a_page(venv):
    where = run_in(venv, venv / "bin" / "python", "-c", "import device.classify as c; print(c.DEFAULT_MODEL)")
    assert where.returncode == 0, where.stderr
    model = where.stdout.strip()
    assert model.startswith(str(venv)) and model.endswith("site-packages/device/models/digits_int8.tflite")

    demo = run_in(venv, venv / "bin" / "device-run", "--demo")
    assert demo.returncode == 0, demo.stderr
    texts = [json.loads(line)["text"] for line in demo.stdout.splitlines()]
    assert texts == ["2026", "31 415", "", "7", "8093"]

    page = os.path.join(os.path.dirname(os.path.dirname(model)), "demo", "page.jpg")
    once = run_in(venv, venv / "bin" / "device-run", "--source", page, "--once", "--json")
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout)["text"] == (ROOT / "device" / "demo" / "page.txt").read_text().strip()
