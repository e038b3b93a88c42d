"""What every benchmark report says about itself: the machine it ran on, and its own section of a Markdown
file (docs/benchmarks.md), replaced in place so that each tool (host-tune, python -m tools.bench...)
rewrites only its own table. In host, not tools: the installed host-tune writes a section too."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from device.safeio import write_atomically


def machine() -> str:
    """CPU model, cores, Python and OS: one line under each table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {system}"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers in a Markdown file."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_atomically(path, text.encode())
