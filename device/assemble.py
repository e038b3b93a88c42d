"""From a validated :class:`~device.config.Config` to the parts of a running reader: the classifier and its
pipeline, the frame source, the decider and the outputs.

``device-run`` and the benchmark (``python -m tools.bench``) both build their pipeline here, so the
benchmark times exactly the pipeline the service runs. Outputs come from the registry in
:mod:`device.outputs`; each is entered into the caller's ExitStack, which closes it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import ModelError
from device.outputs import KINDS, OutputKind

if TYPE_CHECKING:
    from device.classify import Classifier
    from device.config import CameraConfig, Config
    from device.health import Health
    from device.pipeline import FramePipeline
    from device.plausibility import PlausibleDecider
    from device.segment import SegmentSettings
    from device.sources import FrameSource

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 64 << 20


def segment_settings(config: Config) -> SegmentSettings:
    """The segmenter's settings from ``[segmentation]``."""
    from device.segment import SegmentSettings

    s = config.segmentation
    return SegmentSettings(
        polarity=s.polarity,
        work_size=s.work_size,
        min_contrast=s.min_contrast,
        min_height=s.min_height,
        max_aspect=s.max_aspect,
        roi=tuple(s.roi) if s.roi else None,
        plain_pages=s.plain_pages,
    )


def check_model_files(model_path: Path) -> None:
    """A model (and its card) must be regular files of sane size: a FIFO would block, /dev/zero never ends."""
    from device.classify import card_path_for
    from device.safeio import check_regular

    check_regular(model_path, "model", ModelError)
    if model_path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelError(f"{model_path}: model is larger than {MAX_MODEL_BYTES >> 20} MB")
    card = card_path_for(model_path)
    if os.path.lexists(card):
        check_regular(card, "model card", ModelError)


def open_classifier(config: Config) -> Classifier:
    """The ``[model]`` section's classifier (the shipped model when no path is given)."""
    from device.classify import DEFAULT_MODEL, Classifier

    model_path = Path(config.model.path) if config.model.path else DEFAULT_MODEL
    check_model_files(model_path)
    return Classifier(model_path, threads=config.model.threads, verify=config.model.verify_sha256)


def make_pipeline(config: Config, classifier: Classifier) -> FramePipeline:
    """The frame pipeline with the ``[segmentation]`` and ``[decision]`` thresholds."""
    from device.pipeline import FramePipeline

    return FramePipeline(
        classifier,
        segment_settings(config),
        config.decision.min_confidence,
        none_threshold=config.decision.none_threshold,
    )


def make_decider(config: Config, live: bool) -> PlausibleDecider:
    """The temporal vote (on a live source) with the plausibility rules of ``[decision]``."""
    from device.decide import Decider
    from device.plausibility import PlausibleDecider, Rules

    d = config.decision
    return PlausibleDecider(
        Decider(d.vote_frames, d.vote_needed, d.empty_frames, live=live), Rules.from_config(d)
    )


def open_camera(c: CameraConfig) -> FrameSource:
    """The frame source the ``[camera]`` section describes."""
    from device.sources import open_source

    return open_source(c.source, c.width, c.height, c.fps, c.realtime, c.loop, c.max_pixels)


@dataclass
class OutputContext:
    """What a builder may need beyond its own config section: the run, and one shared pin factory."""

    config: Config
    live: bool = True
    stop: threading.Event | None = None
    model_info: dict | None = None
    health: Health | None = None
    _pins: list = field(default_factory=list)

    def pin_factory(self):
        """The gpiozero pin factory of ``output.pin_factory``, made on first use and shared by all outputs."""
        if not self._pins:
            from device.outputs.gpio import make_pin_factory

            self._pins.append(make_pin_factory(self.config.output.pin_factory))
        return self._pins[0]


def kinds_in_use(config: Config) -> list[OutputKind]:
    """The output kinds the config switches on, in the order they are shown each frame: crops are saved
    before any other output runs, the emulator reads the pins after the GPIO outputs have set them."""
    output = config.output
    first = [KINDS["save-crops"]] if output.save_crops.folder else []
    last = [KINDS["emulator"]] if output.emulator.enabled else []
    return [*first, *(KINDS[name] for name in output.enabled), *last]


def build_output(kind: OutputKind, context: OutputContext):
    """One output, by its kind's builder (imported now: only the outputs in use load their libraries)."""
    module, function = kind.builder.split(":")
    build = getattr(importlib.import_module(module), function)
    return build(getattr(context.config.output, kind.section) if kind.section else None, context)


def open_outputs(
    stack: contextlib.ExitStack, context: OutputContext, skip: tuple[str, ...] = ()
) -> list[tuple[OutputKind, object]]:
    """Build every output the config switches on (but the kinds named in ``skip``), each entered into
    ``stack``: closed with it in reverse order, and a close that fails is logged while the others still
    close. A failing builder leaves the ones already built to the stack."""
    opened = []
    for kind in kinds_in_use(context.config):
        if kind.name not in skip:
            output = stack.enter_context(_closing_logged(build_output(kind, context)))
            opened.append((kind, output))
    return opened


@contextlib.contextmanager
def _closing_logged(output):
    try:
        yield output
    finally:
        try:
            output.close()
        except Exception:  # one broken output must not keep the others (or the pins) on
            log.exception("closing output %s failed", type(output).__name__)
