"""Reading benchmark on hard scenes: accuracy per kind of scene, blank cluttered frames, and the cost of
segmentation against an OpenCV Otsu threshold + findContours pass on the same frames, in the same run.

Usage: python -m tools.bench_scenes [--pages 30] [--data-dir MNIST_DIR] [--model FILE]
                                      [--photos DIR] [--write docs/benchmarks.md]
                                      [--readings NEW.json] [--compare OLD.json]
Digits are MNIST test digits (never trained on): from --data-dir, else the 1,000 of tests/data. --photos
scores a folder of labelled real photos (labels.csv: file,truth) through the same pipeline. --readings
keeps what every page and blank frame read; --compare lists, page by page, what reads otherwise than in
such a file from an earlier run of the same pages (a change to the reader is judged on every page it moves,
not on its total alone).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from device.assemble import make_pipeline, open_classifier
from device.classify import DEFAULT_MODEL
from device.pipeline import FramePipeline
from device.reading import Reading
from device.segment import SegmentSettings, plain_page, prepare, segment_frame
from host.report import machine, write_section
from host.synthetic import render
from tools.bench import shipped_config
from tools.scenes import KINDS, OUTCOMES, close_up, digits_right, follow_digits, render_scene

ROOT = Path(__file__).resolve().parent.parent
# The kinds of page a form is written on, beside the benchmark (``render_scene(..., boxes=True)``): one
# digit to a box leaves out touching digits and operators, and the printed boxes stand for a ruling.
BOXED_KINDS = ("texture", "shadow", "glare", "edge", "scattered", "slant")
# The pages read beside the benchmark (see ``main``), each from a stream of its own.
BESIDE = ("desk", "small", "close", "boxes", "turned")


def otsu_floor(frame: np.ndarray) -> None:
    """The cheapest segmentation anyone would write: grey, Otsu threshold, external contours."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    _t, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)


def timed(function, frame, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(frame)
        best = min(best, time.perf_counter() - start)
    return best


def segmentation_s(pipeline, frame, repeats: int = 3) -> float:
    """The pipeline's segmentation of a frame, best of ``repeats``: ``segment`` and the cuts of the
    candidates the model is unsure of (made after the first invoke, see ``device.pipeline``)."""
    return min(pipeline.process(frame).timings["segment"] for _ in range(repeats))


# The stages of ``device.segment.segment_frame`` on a frame that is no plain page (and on any frame with
# plain_pages off), in the order it runs them (``keep_digits`` with the checks of each piece it makes: a
# stretch of a line, the rim of a dark area, the paper round it).
STAGES = (
    "prepare",
    "find_polarity",
    "find_ink",
    "ink_mask",
    "page_rules",
    "remove_rules",
    "textured_surroundings",
    "find_pieces",
    "merge_pieces",
    "keep_digits",
    "crop_ink",
    "reading_order",
)
# ...and on a plain page, the short way (``device.segment.plain``).
PLAIN_STAGES = (
    "prepare",
    "plain_ink",
    "find_pieces",
    "merge_pieces",
    "keep_digits",
    "faint_lines",
    "crop_ink",
    "reading_order",
)


def stage_costs(
    frames: list[np.ndarray], settings: SegmentSettings, stages: tuple[str, ...] = STAGES
) -> tuple[float, dict[str, float]]:
    """Where the segmenter's time goes: ms a frame of the whole and of each of ``stages`` (with what it
    calls), under Python's profiler, which slows the stages that loop in Python more than the rest."""
    profiler = cProfile.Profile()
    profiler.enable()
    for frame in frames:
        segment_frame(frame, settings)
    profiler.disable()
    spent: dict[str, float] = {}
    for (file, _line, name), (*_counts, cumulative, _callers) in pstats.Stats(profiler).stats.items():
        if Path(file).parent.name == "segment" and Path(file).parent.parent.name == "device":
            spent[name] = spent.get(name, 0.0) + cumulative
    per_frame = 1000 / max(len(frames), 1)
    return spent.get("segment_frame", 0.0) * per_frame, {n: spent.get(n, 0.0) * per_frame for n in stages}


def stage_table(profiled_ms: float, by_stage: dict[str, float]) -> list[str]:
    """The rows of a table of :func:`stage_costs`."""
    return [
        "| stage | ms a frame | share |",
        "|---|---:|---:|",
        *(
            f"| `{name}` | {ms:.2f} | {100 * ms / max(profiled_ms, 1e-9):.0f} % |"
            for name, ms in by_stage.items()
        ),
        f"| the steps between them | {profiled_ms - sum(by_stage.values()):.2f} | "
        f"{100 * (1 - sum(by_stage.values()) / max(profiled_ms, 1e-9)):.0f} % |",
        f"| all of `segment_frame` | {profiled_ms:.2f} | 100 % |",
    ]


class DigitPool:
    """MNIST test digits handed out in order, so every page gets different ones."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels, self.next = images, labels, 0

    def lines(self, rng: np.random.Generator) -> tuple[list, list]:
        lines, labels = [], []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(2, 7))
            index = [(self.next + k) % len(self.images) for k in range(n)]
            self.next += n
            lines.append([self.images[i] for i in index])
            labels.append([int(self.labels[i]) for i in index])
        return lines, labels


def load_digits(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    if data_dir:
        from host.data import load_mnist

        _train, test = load_mnist(data_dir)
        return test.images, test.labels
    with np.load(ROOT / "tests" / "data" / "mnist_sample.npz") as npz:
        return npz["test_images"], npz["test_labels"]


def score_photos(pipeline: FramePipeline, folder: Path) -> tuple[int, int, int, int]:
    """(digits right, digits, photos exact, photos) on a folder of labelled photos."""
    right = total = exact = count = 0
    with open(folder / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            frame = cv2.imread(str(folder / row["file"]))
            truth = " ".join(row["truth"].split())
            read = Reading(tuple(pipeline.process(frame).digits)).text
            right += digits_right(read, truth)
            total += len(truth.replace(" ", ""))
            exact += read.replace(" ", "") == truth.replace(" ", "")
            count += 1
    return right, total, exact, count


def check_same_pages(old: dict, new: dict) -> None:
    """Raise ValueError naming the first of seed, pages per kind and blank frames that two runs (their
    ``--readings``, or the settings of a run to come) do not share: only the same pages compare."""
    for key in ("seed", "pages_per_kind", "blank_frames"):
        if old.get(key) != new.get(key):
            raise ValueError(f"{key} {old.get(key)} against {new.get(key)}: only the same pages compare")


def scene_rows(cluttered_ms: list[float], scene_ms: list[float], median_clean: float) -> list[str]:
    """The cost table's rows for the textured pages and for all the hard-scene pages."""
    return [
        f"| {len(cluttered_ms)} textured-surface 640x480 | {np.median(cluttered_ms):.1f} ms | "
        f"{max(cluttered_ms):.1f} ms (= {max(cluttered_ms) / median_clean:.1f} × the clean median) | |",
        f"| {len(scene_ms)} hard-scene pages, all kinds (best of 3, in the pipeline) | "
        f"{np.median(scene_ms):.1f} ms | {max(scene_ms):.1f} ms (= {max(scene_ms) / median_clean:.1f} × "
        "the clean median) | |",
    ]


def compare_readings(old: dict, new: dict) -> list[str]:
    """The pages, the pages beside the benchmark (desk, small frames, close-ups: those both runs read) and
    blank frames that read otherwise in ``new`` than in ``old`` (both from ``--readings``, of the same
    pages), with the digits each gained or lost, and the totals."""
    check_same_pages(old, new)
    out = []
    groups = [group for group in ("pages", *BESIDE) if group in old and group in new]
    for group in groups:
        for (kind, index, truth, was, was_right), (_, _, _, now, now_right) in zip(
            old[group], new[group], strict=True
        ):
            if was != now:
                change = now_right - was_right
                out.append(f"{group} {kind} {index}: truth {truth!r}, {was!r} -> {now!r} ({change:+d})")
    for index, (was, now) in enumerate(zip(old["blanks"], new["blanks"], strict=True)):
        if was != now:
            out.append(f"blank {index}: {was!r} -> {now!r}")
    for group in groups:
        was, now = sum(page[4] for page in old[group]), sum(page[4] for page in new[group])
        out.append(f"{group}: {was} -> {now} digits right ({now - was:+d})")
    was, now = sum(not r for r in old["blanks"]), sum(not r for r in new["blanks"])
    out.append(f"blank frames read as nothing: {was} -> {now} ({now - was:+d})")
    return out


def read_pages(pipeline: FramePipeline, pages, kept: list) -> tuple[int, int, int, int]:
    """Read each (kind, frame, truth) of ``pages``, keeping what it read in ``kept`` as ``--readings`` keeps
    a page: pages, digits, digits right and pages exact."""
    count = total = right = exact = 0
    for index, (kind, frame, truth) in enumerate(pages):
        read = Reading(tuple(pipeline.process(frame).digits)).text
        page_right = digits_right(read, truth)
        kept.append([kind, index, truth, read, page_right])
        count, total, right = count + 1, total + len(truth.replace(" ", "")), right + page_right
        exact += read == truth
    return count, total, right, exact


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30, help="pages per kind of scene")
    parser.add_argument("--blank", type=int, default=100, help="blank cluttered frames")
    parser.add_argument("--data-dir", help="MNIST IDX folder (its test digits are used)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--photos", help="a folder of labelled real photos (labels.csv)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--write", help="replace the bench-scenes section of this Markdown file")
    parser.add_argument("--readings", help="write what every page and blank frame read to this JSON file")
    parser.add_argument("--compare", help="list what reads otherwise than in this --readings file")
    args = parser.parse_args()
    earlier = None
    if args.compare:
        try:
            earlier = json.loads(Path(args.compare).read_text())
        except (OSError, ValueError) as error:
            parser.error(f"--compare {args.compare}: not a readings file ({error})")
        if not isinstance(earlier, dict):
            parser.error(f"--compare {args.compare}: not a readings file (no JSON object)")
        try:  # told before the run, not after it
            check_same_pages(
                earlier, {"seed": args.seed, "pages_per_kind": args.pages, "blank_frames": args.blank}
            )
        except ValueError as error:
            parser.error(f"--compare {args.compare}: {error}")

    config = shipped_config(model=args.model)
    pipeline = make_pipeline(config, open_classifier(config))
    pool = DigitPool(*load_digits(args.data_dir))
    rng = np.random.default_rng(args.seed)
    rows, costs_ratio, cluttered_ms, scene_ms = [], [], [], []
    readings: dict = {
        "seed": args.seed,
        "pages_per_kind": args.pages,
        "blank_frames": args.blank,
        "pages": [],
        "blanks": [],
        **{group: [] for group in BESIDE},
    }
    all_right = all_total = 0
    followed: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        right = total = exact = 0
        followed[kind] = dict.fromkeys((*OUTCOMES, "extra"), 0)
        for index in range(args.pages):
            lines, labels = pool.lines(rng)
            page = render_scene(kind, lines, labels, rng)
            result = pipeline.process(page.frame)
            # Best of three, as every other frame here: one run alone times the machine's hiccups too.
            scene_ms.append(min(result.timings["segment"], segmentation_s(pipeline, page.frame, 2)) * 1000)
            read = Reading(tuple(result.digits)).text
            page_right = digits_right(read, page.text)
            readings["pages"].append([kind, index, page.text, read, page_right])
            dropped = [rejected.segment.box for rejected in result.rejected]
            for outcome, count in follow_digits(page.digit_map, page.text, result.digits, dropped).items():
                followed[kind][outcome] += count
            right += page_right
            total += len(page.text.replace(" ", ""))
            exact += read == page.text
            if kind == "texture":
                cluttered_ms.append(segmentation_s(pipeline, page.frame) * 1000)
        all_right += right
        all_total += total
        rows.append(f"| {kind} | {args.pages} | {total} | {100 * right / max(total, 1):.1f} % | {exact} |")
        print(rows[-1], flush=True)

    blank_kinds = ("texture", "ruled", "grid", "shadow")
    empty = 0
    for index in range(args.blank):
        frame = render_scene(blank_kinds[index % len(blank_kinds)], [[]], [[]], rng, blank=True).frame
        read = Reading(tuple(pipeline.process(frame).digits)).text
        readings["blanks"].append(read)
        empty += not read
    print(f"blank cluttered frames read as nothing: {empty}/{args.blank}", flush=True)

    # Cost on ordinary camera-like frames, segmentation against the Otsu floor, frame by frame: as shipped
    # (a plain page takes the short way), and with every frame through the full stages.
    full_settings = replace(pipeline.settings, plain_pages=False)
    full_pipeline = FramePipeline(
        pipeline.classifier, full_settings, pipeline.min_confidence, pipeline.none_threshold
    )
    clean_ms, full_ms, full_ratio, clean_frames = [], [], [], []
    for _ in range(60):
        lines, labels = pool.lines(rng)
        frame = render(lines, labels, rng).frame
        ours, floor = segmentation_s(pipeline, frame), timed(otsu_floor, frame)
        full = segmentation_s(full_pipeline, frame)
        costs_ratio.append(ours / floor)
        clean_ms.append(ours * 1000)
        full_ratio.append(full / floor)
        full_ms.append(full * 1000)
        clean_frames.append(frame)
    median_clean = float(np.median(clean_ms))
    plain = sum(
        plain_page(prepare(frame, pipeline.settings), pipeline.settings) is not None for frame in clean_frames
    )
    profiled_ms, by_stage = stage_costs(clean_frames, full_settings)
    plain_profiled_ms, by_plain_stage = stage_costs(clean_frames, pipeline.settings, PLAIN_STAGES)

    # Beside the benchmark, each from a stream of its own (so the pages above stay the same): digits written
    # at a sheet's very edge with the sheet on a desk (the "edge" pages put it there 3 times in 10); the
    # benchmark's kinds of page seen by a low-resolution webcam (reduced to 320x240); squared and ruled
    # pages seen close (``close_up``: a webcam a hand's width from the page, its focus soft); forms; and
    # every kind of page on a sheet lying turned on a desk (put down askew under a camera).
    desk_rng, small_rng, close_rng, boxes_rng, turned_rng = (
        np.random.default_rng(args.seed + k) for k in (1, 2, 3, 4, 5)
    )

    def desk_pages():
        for _ in range(args.pages):
            page = render_scene("edge", *pool.lines(desk_rng), desk_rng, on_surface=True)
            yield "edge", page.frame, page.text

    def small_frames():
        for index in range(len(KINDS) * max(1, args.pages // 3)):
            kind = KINDS[index % len(KINDS)]
            page = render_scene(kind, *pool.lines(small_rng), small_rng)
            yield kind, cv2.resize(page.frame, (320, 240), interpolation=cv2.INTER_AREA), page.text

    def close_ups():
        for index in range(2 * args.pages):
            kind = ("grid", "ruled")[index % 2]
            page = close_up(render_scene(kind, *pool.lines(close_rng), close_rng))
            yield kind, page.frame, page.text

    def boxed_pages():
        for index in range(2 * args.pages):
            kind = BOXED_KINDS[index % len(BOXED_KINDS)]
            page = render_scene(kind, *pool.lines(boxes_rng), boxes_rng, boxes=True)
            yield kind, page.frame, page.text

    def turned_sheets():
        for index in range(len(KINDS) * max(1, args.pages // 3)):
            kind = KINDS[index % len(KINDS)]
            turn = float(turned_rng.uniform(10, 30) * turned_rng.choice([-1, 1]))
            page = render_scene(kind, *pool.lines(turned_rng), turned_rng, turn=turn)
            yield kind, page.frame, page.text

    beside = {
        group: read_pages(pipeline, pages, readings[group])
        for group, pages in (
            ("desk", desk_pages()),
            ("small", small_frames()),
            ("close", close_ups()),
            ("boxes", boxed_pages()),
            ("turned", turned_sheets()),
        )
    }
    beside_rows = []
    for k, group, what in (
        (1, "desk", "edge pages with the sheet always on a desk"),
        (2, "small", "every kind, seen by a low-resolution webcam (reduced to 320x240)"),
        (3, "close", "squared and ruled pages seen close (a webcam a hand's width away, soft)"),
        (4, "boxes", "a form: one digit to a printed box, a box or two left empty"),
        (5, "turned", "every kind, on a sheet lying turned 10-30 degrees either way on a desk"),
    ):
        count, total, right, exact = beside[group]
        share = 100 * right / max(total, 1)
        beside_rows.append(f"| {what} | {args.seed + k} | {count} | {total} | {share:.1f} % | {exact} |")
    lines_out = [
        f"Model: {Path(args.model).name}; {args.pages} pages per kind, MNIST test digits; seed {args.seed}.",
        "",
        "| scene | pages | digits | digits right | pages exact |",
        "|---|---:|---:|---:|---:|",
        *rows,
        f"| **all** | {args.pages * len(KINDS)} | {all_total} | "
        f"**{100 * all_right / max(all_total, 1):.1f} %** | |",
        "",
        "Where the digits not read right went: each written digit followed to the reading whose box holds "
        'half of its ink or more. Misread: held alone, read as another digit; unsure: read as "?"; '
        "merged: its reading holds another written digit too (touching digits read as one); dropped: no "
        "reading holds it, but a candidate the model called no digit does; lost: nothing holds it (lost in "
        "segmentation). Extra: readings that hold no written digit (texture, a rule, an operator, or a piece "
        "of a digit read as one of its own). These count digits, not the edit distance above.",
        "",
        "| scene | misread | unsure | merged | dropped | lost | extra readings |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {kind} | {o['misread']} | {o['unsure']} | {o['merged']} | {o['dropped']} | {o['lost']} | "
            f"{o['extra']} |"
            for kind, o in followed.items()
        ),
        "| **all** | "
        + " | ".join(
            f"**{sum(o[name] for o in followed.values())}**"
            for name in ("misread", "unsure", "merged", "dropped", "lost", "extra")
        )
        + " |",
        "",
        "Beside the benchmark (not in **all**), each from a stream of its own:",
        "",
        "| scenes | seed | pages | digits | digits right | pages exact |",
        "|---|---:|---:|---:|---:|---:|",
        *beside_rows,
        "",
        f"Blank cluttered frames (texture, ruled, squared, hard shadow; nothing written): **{empty} of "
        f"{args.blank}** read as nothing.",
        "",
        "Segmentation cost, one thread, best of 3 per frame: the pipeline's segment step (the candidates, "
        "and the cuts of those the model is unsure of whole):",
        "",
        "| frames | median | max | median × Otsu + findContours (same frames, same run) |",
        "|---|---:|---:|---:|",
        f"| 60 clean 640x480 camera-like ({plain} of them plain pages, which take the short way) | "
        f"{median_clean:.1f} ms | {max(clean_ms):.1f} ms | {np.median(costs_ratio):.1f} × |",
        f"| the same 60, every frame through the full stages (`plain_pages = false`) | "
        f"{np.median(full_ms):.1f} ms | {max(full_ms):.1f} ms | {np.median(full_ratio):.1f} × |",
        *(scene_rows(cluttered_ms, scene_ms, median_clean) if scene_ms else []),  # none with --pages 0
        "",
        "Where a clean frame's segmentation time goes (the same 60 frames, under Python's profiler, which "
        "slows the stages that loop in Python most), the short way and the full stages:",
        "",
        *stage_table(plain_profiled_ms, by_plain_stage),
        "",
        *stage_table(profiled_ms, by_stage),
    ]
    if args.photos:
        right, total, exact, count = score_photos(pipeline, Path(args.photos))
        lines_out += [
            "",
            f"Real photos ({args.photos}): **{right} of {total} digits** "
            f"({100 * right / max(total, 1):.1f} %), {exact} of {count} photos exact.",
        ]
    lines_out += ["", f"Machine: {machine()}."]
    body = "\n".join(["## Hard scenes (`python -m tools.bench_scenes`)", "", *lines_out])
    print(body)
    if args.write:
        write_section(Path(args.write), "bench-scenes", body)
    if args.readings:
        # Written whole or not at all: a run stopped midway leaves the earlier file as it was.
        partial = Path(args.readings).with_suffix(".partial")
        partial.write_text(json.dumps(readings) + "\n")
        partial.replace(args.readings)
    if earlier is not None:
        try:
            print("\n".join(["", f"Against {args.compare}:", *compare_readings(earlier, readings)]))
        except (KeyError, TypeError, ValueError) as error:
            print(
                f"--compare {args.compare}: not a readings file of these pages ({error!r})", file=sys.stderr
            )
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
