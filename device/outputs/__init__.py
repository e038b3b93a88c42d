"""Outputs: where readings go, and the registry of every kind of output ``device-run`` can open.

An output has ``show(event)`` (a :class:`~device.reading.FrameEvent` for every processed frame; most act
only when ``event.reading.changed``) and an idempotent ``close()``, and is a context manager: whoever opens
an output closes it (``device-run`` holds them in an ExitStack), never the loop that shows it frames.

Each kind declares its name (as in ``output.enabled``), the ``[output.<section>]`` table it is built from
and its builder, ``build(section, context) -> output``, named as ``module:function`` and imported only when
the output is used (device.assemble opens them): hardware, GUI and network libraries stay out of a reader
that does not use them. Adding an output is its module, its config section and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from device.events import FrameEvent


class Output(Protocol):
    """What the loop needs from an output."""

    def show(self, event: FrameEvent) -> None: ...

    def close(self) -> None: ...


class ClosedOnExit:
    """``with output:`` closes it at the end (every output's ``close()`` is idempotent)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class QuitRequested(Exception):
    """Raised by an interactive output (the window's ``q`` key) to end the loop cleanly."""


@dataclass(frozen=True)
class OutputKind:
    """One kind of output: its name, its ``[output.<section>]`` table and where its builder lives."""

    name: str
    section: str | None  # the OutputConfig field it is built from (None: it has no settings)
    builder: str  # "module:function"; function(section_config, context) -> output


# The kinds a user lists in ``output.enabled`` (and ``--output``), in the order the help shows them.
LISTED = (
    OutputKind("log", None, "device.outputs.log:build"),
    OutputKind("gpio-bcd", "gpio_bcd", "device.outputs.gpio:build_bcd"),
    OutputKind("gpio-7seg", "gpio_7seg", "device.outputs.gpio:build_seven_segment"),
    OutputKind("window", "window", "device.outputs.window:build"),
    OutputKind("web", "web", "device.outputs.web:build"),
    OutputKind("gpio-led", "gpio_led", "device.outputs.gpio:build_match_led"),
    OutputKind("mqtt", "mqtt", "device.outputs.mqtt:build"),
)
# Switched on by their own section (``--save-crops DIR``, ``--emulate``) rather than listed: the crops are
# saved before any other output runs, the emulator reads the pins after the GPIO outputs have set them.
SAVE_CROPS = OutputKind("save-crops", "save_crops", "device.outputs.crops:build")
EMULATOR = OutputKind("emulator", "emulator", "device.outputs.emulator:build")
OUTPUT_KINDS = tuple(kind.name for kind in LISTED)
KINDS = {kind.name: kind for kind in (*LISTED, SAVE_CROPS, EMULATOR)}
