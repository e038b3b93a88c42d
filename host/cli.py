"""What the host commands share: logging set up in the entry point, user errors as one line + exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from device.errors import DigitReaderError


def run_command(prog: str, run: Callable[[], object]) -> int:
    """Run a host command's work; a DigitReaderError becomes ``prog: message`` on stderr and its exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run()
    except DigitReaderError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code or 1
    return 0


def summary(doc: str) -> str:
    """A module docstring's first paragraph on one line: the ``--help`` description of a host command."""
    return " ".join(doc.split("\n\n")[0].split())
