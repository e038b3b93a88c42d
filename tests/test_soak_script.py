"""The service soak benchmark runs the real device-run under a real sd_notify socket and reports it."""

import subprocess
import sys

from tests.conftest import ROOT


def test_short_soak_reports_watchdog_memory_and_clean_stop(tmp_path):
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("# Benchmarks\n\nkept\n")
    result = subprocess.run(
        [sys.executable, "-m", "tools.soak_service", "--seconds", "4", "--watchdog-sec", "2",
         "--write", str(markdown)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "0 missed (gap over 2 s)" in out and "STOPPING=1 sent" in out and "exit code 0" in out
    pings = int(out.split(" pings,")[0].rsplit(" ", 1)[1])
    frames = int(out.split("- Frames: ")[1].split(" ")[0])
    assert pings > 0 and frames > 0  # counts, not rates: a loaded machine processes fewer frames
    text = markdown.read_text()
    assert "kept" in text and "<!-- service-soak -->" in text and "| minute | resident memory (MB) |" in text
