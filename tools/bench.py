"""Device pipeline benchmark: per-stage latency (p50/p95), frames per second and peak memory.

``python -m tools.bench`` times the pipeline ``device-run`` runs: built by ``device.assemble`` from the
shipped config (``systemd/config.toml``, or ``--config``), with its decider and its log output (writing to
/dev/null). Frames are camera-like 640x480 pages (host.synthetic) with 1, 4 and 8 digits, held in memory, so
the capture column measures only handing a frame over; a real camera adds its own frame time. A benchmark,
not a test: it prints a table and can write it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np

from device.assemble import make_decider, make_pipeline, open_classifier
from device.config import Config, load_config, override
from device.events import FrameEvent
from device.outputs.log import JsonLinesOutput
from device.pipeline import FramePipeline
from host.report import machine, write_section
from host.synthetic import render

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "systemd" / "config.toml"
DIGITS = ROOT / "device" / "demo" / "digits.npz"


def make_frames(n_digits: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` camera-like 640x480 frames with ``n_digits`` digits on one or two lines."""
    with np.load(DIGITS) as data:
        images, labels = data["images"], data["labels"]
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        pick = rng.choice(len(images), n_digits, replace=False)
        split = [pick] if n_digits <= 4 else [pick[: n_digits // 2], pick[n_digits // 2 :]]
        frames.append(
            render([list(images[p]) for p in split], [list(labels[p]) for p in split], rng, blur=0.8).frame
        )
    return frames


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def shipped_config(path: str | Path = SHIPPED_CONFIG, model: str | None = None, threads: int = 1) -> Config:
    """The config the service runs (``systemd/config.toml``), with a model and thread count of choice."""
    config = override(load_config(path), "--threads", "model.threads", threads)
    return override(config, "--model", "model.path", model) if model else config


def bench(config: Config, pipeline: FramePipeline, frames: list[np.ndarray], iterations: int) -> dict:
    """Run the service's own pipeline, decider and log output over the frames; return per-stage times (s)."""
    decider = make_decider(config, live=True)
    stages = {name: [] for name in ("capture", "segment", "normalize", "inference", "outputs")}
    with open("/dev/null", "w") as sink, JsonLinesOutput(sink) as log_output:
        start = time.perf_counter()
        for i in range(iterations):
            t0 = time.perf_counter()
            frame = frames[i % len(frames)]
            t1 = time.perf_counter()
            result = pipeline.process(frame)
            t2 = time.perf_counter()
            log_output.show(FrameEvent(decider.update(result.digits), frame, result))
            t3 = time.perf_counter()
            timings = result.timings
            for name, seconds in zip(
                stages,
                (t1 - t0, timings["segment"], timings["normalize"], timings["classify"], t3 - t2),
                strict=True,
            ):
                stages[name].append(seconds)
        total = time.perf_counter() - start
    return {"stages": stages, "fps": iterations / total, "total": total}


def table(results: dict[int, dict], threads: int, backend: str) -> str:
    lines = [
        f"Device pipeline, 640x480 camera-like frames, {threads} thread(s) (OpenCV and LiteRT), {backend}; "
        "times in ms as p50 / p95 per frame.",
        "",
        "| digits | capture | segment | normalize | inference | outputs | frames/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, result in results.items():
        cells = [
            f"{np.percentile(v, 50) * 1e3:.3f} / {np.percentile(v, 95) * 1e3:.3f}"
            for v in result["stages"].values()
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {result['fps']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(SHIPPED_CONFIG), help="the service config (default: shipped)")
    parser.add_argument("--model", help="a model other than the config's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=1000, help="frames per digit count")
    parser.add_argument(
        "--soak", type=int, default=0, help="then run N more 4-digit frames and report RSS growth"
    )
    parser.add_argument(
        "--write", metavar="MARKDOWN", help="put the table into this file (docs/benchmarks.md)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import cv2

    cv2.setNumThreads(args.threads)  # OpenCV's own thread pool too: the target is one core
    config = shipped_config(args.config, args.model, args.threads)
    classifier = open_classifier(config)
    pipeline = make_pipeline(config, classifier)
    results = {}
    for n in (1, 4, 8):
        print(f"tools.bench: {n} digit(s) a frame, {args.iterations} frames...", file=sys.stderr, flush=True)
        frames = make_frames(n, 20, seed=n)
        bench(config, pipeline, frames, 20)  # warm-up: tensor sizes, caches
        results[n] = bench(config, pipeline, frames, args.iterations)
    body = [
        table(results, args.threads, classifier.backend),
        "",
        f"Peak resident memory (whole process, all runs): {rss_mb():.0f} MB.",
        "",
        f"Machine: {machine()}.",
    ]
    if args.soak:
        print(f"tools.bench: soak, {args.soak} more 4-digit frames...", file=sys.stderr, flush=True)
        frames = make_frames(4, 20, seed=99)
        before = rss_mb()
        started = time.perf_counter()
        bench(config, pipeline, frames, args.soak)
        body += [
            "",
            f"Soak: {args.soak} more 4-digit frames in {time.perf_counter() - started:.0f} s; peak RSS "
            f"{before:.0f} MB before, {rss_mb():.0f} MB after.",
        ]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section(
            Path(args.write), "device-bench", "## Device pipeline (`python -m tools.bench`)\n\n" + text
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
