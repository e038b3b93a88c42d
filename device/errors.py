"""Every exception the device raises on purpose (the host adds its own ``host.data.DataError``).

The command-line entry points turn these into one line on stderr and an exit code; anything else is a bug
and keeps its traceback.
"""


class DigitReaderError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class ConfigError(DigitReaderError, ValueError):
    """A bad command-line argument or config value (names the key, the value and the rule)."""

    exit_code = 2


class ModelError(DigitReaderError, RuntimeError):
    """A model file that is missing, corrupt, does not match its card, or cannot be run."""

    exit_code = 3


class SourceError(DigitReaderError, RuntimeError):
    """A frame source (camera, video, image, folder) that cannot be opened or read."""

    exit_code = 4


class OutputError(DigitReaderError, OSError):
    """Results cannot be written (stdout on a full disk, a closed file); a closed pipe is not one."""

    exit_code = 2


class FrameError(DigitReaderError, ValueError):
    """A frame that cannot be processed (None, empty, wrong dtype/shape); the loop skips it and goes on.
    Where it ends a run (``--once``) it is a source problem: exit 4."""

    exit_code = 4
