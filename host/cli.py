"""What the host commands share: logging set up in the entry point, user errors as one line + exit code."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable

from device.errors import DigitReaderError


def quiet_libraries() -> None:
    """TensorFlow's C++ log lines, absl's and Keras' warnings are noise to a user of these commands; the
    ``DIGIT_READER_VERBOSE=1`` environment variable keeps them (set before TensorFlow is imported)."""
    if os.environ.get("DIGIT_READER_VERBOSE") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def stdout_chatter_hidden():
    """Hide what a library prints on stdout (the TFLite converter prints its whole signature), unless
    ``DIGIT_READER_VERBOSE=1``."""
    if os.environ.get("DIGIT_READER_VERBOSE") == "1":
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def run_command(prog: str, run: Callable[[], object]) -> int:
    """Run a host command's work; a DigitReaderError becomes ``prog: message`` on stderr and its exit code."""
    quiet_libraries()
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
