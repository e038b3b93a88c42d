"""``device-bench``: per-stage latency (p50/p95), frames per second and peak memory of the device pipeline.

Frames are camera-like 640x480 pages (device.synthetic) with 1, 4 and 8 digits, held in memory, so the
capture column measures only handing a frame over; a real camera adds its own frame time. A benchmark,
not a test: it prints a table and can write it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from device.classify import DEFAULT_MODEL, Classifier
from device.decide import Decider
from device.pipeline import FramePipeline
from device.synthetic import render

DIGITS = Path(__file__).resolve().parent / "demo" / "digits.npz"


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


def bench(classifier: Classifier, frames: list[np.ndarray], iterations: int) -> dict:
    """Run the device's own FramePipeline over the frames; return per-stage times (s) and totals."""
    decider = Decider()
    pipeline = FramePipeline(classifier)
    stages = {name: [] for name in ("capture", "segment", "normalize", "inference", "outputs")}
    sink = open("/dev/null", "w")  # noqa: SIM115 - the log output's JSON goes nowhere
    start = time.perf_counter()
    for i in range(iterations):
        t0 = time.perf_counter()
        frame = frames[i % len(frames)]
        t1 = time.perf_counter()
        result = pipeline.process(frame)
        t4 = time.perf_counter()
        t2 = t1 + result.timings["segment"]
        t3 = t2 + result.timings["normalize"]
        reading = decider.update(result.digits)
        if reading.changed:
            sink.write(str(reading.as_dict()) + "\n")
        t5 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            stages[name].append(seconds)
    total = time.perf_counter() - start
    sink.close()
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


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

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
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="device-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
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
    classifier = Classifier(args.model, threads=args.threads)
    results = {}
    for n in (1, 4, 8):
        print(f"device-bench: {n} digit(s) a frame, {args.iterations} frames...", file=sys.stderr, flush=True)
        frames = make_frames(n, 20, seed=n)
        bench(classifier, frames, 20)  # warm-up: tensor sizes, caches
        results[n] = bench(classifier, frames, args.iterations)
    body = [
        table(results, args.threads, classifier.backend),
        "",
        f"Peak resident memory (whole process, all runs): {rss_mb():.0f} MB.",
        "",
        f"Machine: {machine()}.",
    ]
    if args.soak:
        print(f"device-bench: soak, {args.soak} more 4-digit frames...", file=sys.stderr, flush=True)
        frames = make_frames(4, 20, seed=99)
        before = rss_mb()
        started = time.perf_counter()
        bench(classifier, frames, args.soak)
        body += [
            "",
            f"Soak: {args.soak} more 4-digit frames in {time.perf_counter() - started:.0f} s; peak RSS "
            f"{before:.0f} MB before, {rss_mb():.0f} MB after.",
        ]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section(Path(args.write), "device-bench", "## Device pipeline (`device-bench`)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
