"""scripts/install-pi.sh, the README's Raspberry Pi install, run here into a temp venv: Debian's python3 with
the apt numpy and OpenCV (picamera2 and lgpio are skipped where the archive lacks them), ai-edge-litert added
without touching numpy, and the bundled demo page read by the installed device-run."""

import os
import shutil
import subprocess

from tests.conftest import ROOT, requires

SCRIPT = ROOT / "scripts" / "install-pi.sh"
DEBIAN_PYTHON = "/usr/bin/python3"


def apt_python_ready() -> bool:
    if not os.path.exists(DEBIAN_PYTHON):
        return False
    check = "import numpy, cv2; assert numpy.__file__.startswith('/usr/lib/python3/')"
    return subprocess.run([DEBIAN_PYTHON, "-c", check], capture_output=True).returncode == 0


@requires(
    not shutil.which("dpkg-query") and "Debian's dpkg-query (install-pi.sh is for Debian / Raspberry Pi OS)"
)
@requires(not apt_python_ready() and "the apt python3-numpy and python3-opencv")
def test_install_pi_into_a_temp_venv_keeps_the_apt_numpy_and_reads_the_demo(tmp_path):
    venv = tmp_path / "venv"
    # Root (or passwordless sudo) runs the apt step for real; anyone else skips it.
    can_apt = os.geteuid() == 0 or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    command = ["bash", str(SCRIPT), "--venv", str(venv), *([] if can_apt else ["--no-apt"])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "read '4096 17' on the demo page" in result.stdout
    probe = "import numpy, cv2, ai_edge_litert, gpiozero, device; print(numpy.__file__, cv2.__file__)"
    paths = subprocess.run([venv / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True)
    assert all(p.startswith("/usr/lib/python3/") for p in paths.stdout.split())
    assert (venv / "constraints.txt").read_text().startswith("numpy==")


def test_install_pi_rejects_unknown_options():
    result = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "install-pi.sh: unknown option --bogus (see --help)"
