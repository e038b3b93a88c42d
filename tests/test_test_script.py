"""scripts/test.sh runs both passes even when the first fails, and ends with a summary of both.

The script runs on a copy where apt is skipped and the venvs' python/ruff are stand-ins that print what
pytest prints, so this checks the script's control flow without installing anything.
"""

import os
import re
import shutil
import subprocess

from tests.conftest import ROOT, needs, requires

FAKE_PYTHON = """#!/bin/bash
case "$1 $2" in
  "-m pip") exit 0 ;;
  "-m pytest") echo "$PYTEST_OUTPUT"; exit "$PYTEST_STATUS" ;;
  "-c "*) echo 1.26.4 ;;
  "- ") cat >/dev/null; echo "numpy and OpenCV from apt" ;;
esac
"""


def make_copy(tmp_path, venv_pytest, venv_pi_pytest):
    script = (ROOT / "scripts" / "test.sh").read_text()
    script = re.sub(r"APT_PACKAGES=\([^)]*\)", "APT_PACKAGES=()", script)
    script = script.replace("/usr/bin/python3 -m venv", "true").replace("python3 -m venv", "true")
    (tmp_path / "scripts").mkdir(parents=True)
    (tmp_path / "scripts" / "test.sh").write_text(script)
    for venv, (output, status) in ((".venv", venv_pytest), (".venv-pi", venv_pi_pytest)):
        bin_dir = tmp_path / venv / "bin"
        bin_dir.mkdir(parents=True)
        python = FAKE_PYTHON.replace("$PYTEST_OUTPUT", output).replace("$PYTEST_STATUS", str(status))
        (bin_dir / "python").write_text(python)
        (bin_dir / "ruff").write_text("#!/bin/sh\nexit 0\n")
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
    return tmp_path / "scripts" / "test.sh"


def run(script):
    # A stand-in shellcheck too: the lint step's own tools are not what this checks.
    stand_ins = script.parent.parent / "stand-ins"
    stand_ins.mkdir(exist_ok=True)
    (stand_ins / "shellcheck").write_text("#!/bin/sh\nexit 0\n")
    (stand_ins / "shellcheck").chmod(0o755)
    env = {**os.environ, "PATH": f"{stand_ins}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60, env=env)


@requires(not shutil.which("dpkg-query") and "Debian's dpkg-query (test.sh is for Debian)")
def test_a_failing_first_pass_still_runs_the_second_and_both_are_summarized(tmp_path):
    script = make_copy(
        tmp_path, ("1 failed, 200 passed, 3 skipped in 9.0s", 1), ("90 passed, 2 skipped in 4.0s", 0)
    )
    result = run(script)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(".venv-pi: pytest, device tests" in line for line in lines)  # the second pass ran
    summary = lines[lines.index("== summary") + 1 :]
    assert summary == [
        "   .venv     FAILED 1 failed, 200 passed, 3 skipped in 9.0s",
        "   .venv-pi  ok     90 passed, 2 skipped in 4.0s",
    ]


@requires(not shutil.which("dpkg-query") and "Debian's dpkg-query (test.sh is for Debian)")
def test_both_passing_exits_zero_and_a_failing_second_pass_does_not(tmp_path):
    ok = make_copy(tmp_path / "ok", ("5 passed in 1.0s", 0), ("4 passed in 1.0s", 0))
    assert run(ok).returncode == 0
    bad = make_copy(tmp_path / "bad", ("5 passed in 1.0s", 0), ("1 failed, 3 passed in 1.0s", 1))
    result = run(bad)
    assert result.returncode == 1
    assert "   .venv-pi  FAILED 1 failed, 3 passed in 1.0s" in result.stdout.splitlines()


def test_progress_lines_name_each_step(tmp_path):
    needs(not shutil.which("dpkg-query") and "Debian's dpkg-query (test.sh is for Debian)")
    result = run(make_copy(tmp_path, ("5 passed in 1.0s", 0), ("4 passed in 1.0s", 0)))
    steps = [line.split("] ", 1)[1] for line in result.stdout.splitlines() if line.startswith("== [")]
    assert [s.split(":")[0] for s in steps] == [
        "apt",
        ".venv",
        ".venv",
        ".venv",
        ".venv",
        ".venv-pi",
        ".venv-pi",
        ".venv-pi",
    ]
