"""Issue 10, the web soak benchmark on a short run: viewers and slow sockets against device-run inside the
unit's MemoryMax/TasksMax (where a cgroup can be made): alive, /healthz 200 on every poll, no traceback."""

import subprocess
import sys

from tests.conftest import ROOT


def test_short_web_soak(tmp_path):
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("# Benchmarks\n\nkept\n")
    result = subprocess.run(
        [sys.executable, "-m", "tools.soak_web", "--seconds", "8", "--baseline-seconds", "3",
         "--viewers", "10", "--slow", "30", "--write", str(markdown)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Alive at the end: yes" in out and "tracebacks in its log: 0" in out
    polls = out.split("/healthz under load: ")[1].split(" polls")[0]
    ok, total = polls.split(" of ")
    assert ok == total and int(total) >= 5
    served = int(out.split("- Viewers: ")[1].split(" streams served")[0])
    refused = int(out.split("streams served, ")[1].split(" refused")[0])
    assert served >= 1 and refused >= 1  # max_viewers held: 4 served at a time, the rest told 503
    text = markdown.read_text()
    assert "kept" in text and "<!-- web-soak -->" in text and "| minute | resident memory (MB) |" in text
