"""Hard camera scenes for measuring segmentation: what real frames have and clean pages lack.

Each scene is a sheet of paper (ruled, squared or plain) lying on a textured surface (wood, fabric, a
dark desk, a wall), photographed at an angle, with digits written on it the ways people write them:
touching pairs, lines on a slant or a curve, scattered layouts, operators between the digits, a hard
shadow across the page, a glare spot, digits close to the frame's edge. Blank scenes are the same without
the writing, and must read as nothing.

Digits are 28x28 white-on-black images (MNIST test digits in the tests and the benchmark). Used by the
tests and ``tools/bench_scenes.py``; nothing here runs on the device.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from host.synthetic import Scene, camera_tilt, ink_alpha, paper, photograph

KINDS = ("texture", "ruled", "grid", "touching", "slant", "scattered", "operators", "shadow", "glare", "edge")


def surface(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured surface around the paper: wood grain, weave, a dark desk or a stucco wall (float 0-255)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def smooth(cell: float) -> np.ndarray:
        low = rng.normal(0, 1, (int(height / cell) + 2, int(width / cell) + 2)).astype(np.float32)
        return cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)

    style = rng.choice(["wood", "fabric", "desk", "stucco"])
    if style == "wood":
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        texture = np.sin(u * rng.uniform(0.15, 0.5) + 5 * smooth(40)) + 0.3 * smooth(3)
        base, contrast = rng.uniform(70, 150), rng.uniform(15, 35)
    elif style == "fabric":
        period = rng.uniform(3, 7)
        texture = np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period) + 0.6 * smooth(20)
        base, contrast = rng.uniform(40, 140), rng.uniform(10, 30)
    elif style == "desk":
        texture = smooth(30) + 0.5 * smooth(4)
        base, contrast = rng.uniform(20, 70), rng.uniform(5, 15)
    else:
        texture = smooth(3) + 0.6 * smooth(10)
        base, contrast = rng.uniform(120, 190), rng.uniform(10, 25)
    return base + contrast * texture


def rule_page(page: np.ndarray, rng: np.random.Generator, squared: bool) -> float:
    """Print ruled (or squared) lines on a page; returns the line spacing in px.

    A printed line takes away a share of the light the paper under it reflects, so it is darker than the
    paper everywhere, shaded or not (drawn at one grey level, it came out lighter than the paper in a
    shadow: light lines on a dark page, which no real sheet has)."""
    height, width = page.shape
    spacing = rng.uniform(22, 40)
    darkness = rng.uniform(0.6, 0.85)  # the share of the light a line reflects
    thickness = int(rng.integers(1, 3))
    lines = np.ones_like(page)
    for y in np.arange(rng.uniform(5, spacing), height, spacing):
        cv2.line(lines, (0, int(y)), (width - 1, int(y)), darkness, thickness)
    if squared:
        for x in np.arange(rng.uniform(5, spacing), width, spacing):
            cv2.line(lines, (int(x), 0), (int(x), height - 1), darkness, thickness)
    elif rng.random() < 0.5:  # the margin line
        x = int(rng.uniform(0.08, 0.15) * width)
        cv2.line(lines, (x, 0), (x, height - 1), darkness * 0.9, thickness)
    page *= lines
    return spacing


def print_boxes(
    page: np.ndarray, digit_map: np.ndarray, lines: list[list[int]], rng: np.random.Generator
) -> None:
    """Print the boxes of a form round digits written one to a box (``lines``: each line's digits, by their
    numbers in ``digit_map``): for each line a row of boxes sharing their sides (a comb), or a box of its
    own round each digit, and up to two empty boxes after the last. A form's boxes are printed in a
    straight row (along the line's slope, where the page is seen slanted) and a digit is written in its
    box, a little high or low in it, pressing on it where it is written larger or further off than the
    box's margin allows. The box is a little larger than the line's tallest digit, its sides in the gaps
    between the digits; printed, it takes away a share of the light, as a page's rules do."""
    darkness = rng.uniform(0.35, 0.75)
    thickness = int(rng.integers(1, 3))
    comb = rng.random() < 0.5
    shade = np.ones_like(page)
    for numbers in lines:
        boxes = []
        for number in numbers:
            ys, xs = np.nonzero(digit_map == number)
            if len(ys):
                boxes.append((xs.min(), ys.min(), xs.max(), ys.max()))
        if not boxes:
            continue
        height = max(y1 - y0 for _, y0, _, y1 in boxes)
        # A margin that keeps the rows of boxes clear of each other (the lines are 1.5 digits apart).
        margin = height * rng.uniform(0.06, 0.12)
        # The sides between two digits: in the middle of the gap between them. A field often has a box or
        # two more than were filled in: empty, they must read as nothing.
        between = [(a[2] + b[0]) / 2 for a, b in itertools.pairwise(boxes)]
        lefts = [boxes[0][0] - margin, *between]
        rights = [*between, boxes[-1][2] + margin]
        cell = rights[-1] - lefts[-1]
        written = len(boxes)
        for _ in range(int(rng.integers(0, 3))):
            boxes.append(boxes[-1])
            lefts.append(rights[-1])
            rights.append(rights[-1] + cell)
        # The row's middle along the line: a straight fit through its digits' middles.
        centres = [(x0 + x1) / 2 for x0, _, x1, _ in boxes[:written]]
        middles = [(y0 + y1) / 2 for _, y0, _, y1 in boxes[:written]]
        slope, level = np.polyfit(centres, middles, 1) if len(set(centres)) > 1 else (0.0, middles[0])
        for left, right in zip(lefts, rights, strict=True):
            middle = level + slope * (left + right) / 2
            top, bottom = int(middle - height / 2 - margin), int(middle + height / 2 + margin)
            if not comb:  # a box of its own: clear of its neighbours' by a few px
                left, right = left + 2, right - 2
            cv2.rectangle(shade, (int(left), top), (int(right), bottom), darkness, thickness)
    page *= shade


def operator_alpha(rng: np.random.Generator, size: int) -> np.ndarray:
    """A handwritten + - x = as ink coverage, ``size`` px square."""
    canvas = np.zeros((size, size), np.uint8)
    c, r = size / 2, size * rng.uniform(0.2, 0.32)
    t = max(1, round(size * rng.uniform(0.04, 0.09)))
    op = rng.choice(list("+-x="))
    jitter = lambda: rng.normal(0, size * 0.02)  # noqa: E731 - a tiny helper, clearer inline
    strokes = {
        "+": [((c - r, c), (c + r, c)), ((c, c - r), (c, c + r))],
        "-": [((c - r, c), (c + r, c))],
        "x": [((c - r, c - r), (c + r, c + r)), ((c + r, c - r), (c - r, c + r))],
        "=": [((c - r, c - r / 2), (c + r, c - r / 2)), ((c - r, c + r / 2), (c + r, c + r / 2))],
    }[str(op)]
    for (x0, y0), (x1, y1) in strokes:
        p0 = (int(x0 + jitter()), int(y0 + jitter()))
        p1 = (int(x1 + jitter()), int(y1 + jitter()))
        cv2.line(canvas, p0, p1, 255, t, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


def _stamp(
    page: np.ndarray,
    alpha: np.ndarray,
    x: float,
    y: float,
    ink_level: float,
    mark: tuple[np.ndarray, int] | None = None,
) -> tuple | None:
    """Print ink coverage at (x, y) (top-left); returns the inked box, or None if it fell off the page.
    ``mark`` (a map of the page, a number): the number goes where the ink is strong, for a digit map."""
    height, width = page.shape
    size_y, size_x = alpha.shape
    px, py = int(x), int(y)
    x0, y0 = max(px, 0), max(py, 0)
    x1, y1 = min(px + size_x, width), min(py + size_y, height)
    if x1 <= x0 or y1 <= y0:
        return None
    a = alpha[y0 - py : y1 - py, x0 - px : x1 - px]
    page[y0:y1, x0:x1] = page[y0:y1, x0:x1] * (1 - a) + ink_level * a
    if mark is not None:
        digit_map, number = mark
        digit_map[y0:y1, x0:x1][a > 0.3] = number
    ys, xs = np.nonzero(a > 0.3)
    if not len(xs):
        return None
    return (
        x0 + int(xs.min()),
        y0 + int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    )


def write_line(
    page: np.ndarray,
    digits: list[np.ndarray],
    rng: np.random.Generator,
    x: float,
    y: float,
    height: float,
    ink_level: float,
    gap: tuple[float, float] = (0.25, 0.6),
    slope: float = 0.0,
    curve: float = 0.0,
    operators: bool = False,
    jitter_y: float = 0.08,
    digit_map: np.ndarray | None = None,
    first_number: int = 1,
) -> float:
    """Write digits along a baseline from (x, y); returns where the line ends. ``gap`` is the space
    between digits in digit heights (negative: they touch or overlap). ``digit_map`` (the page's size):
    each digit's ink is marked there with its number, from ``first_number`` on."""
    start = x
    for index, digit in enumerate(digits):
        alpha = ink_alpha(digit, round(height * rng.uniform(0.9, 1.1)), rng)
        cols = np.flatnonzero(alpha.max(axis=0) > 0.05)
        if not len(cols):
            continue
        run = x - start
        dy = (
            slope * run
            + curve * run * run / max(page.shape[1], 1)
            + rng.uniform(-jitter_y, jitter_y) * height
        )
        mark = None if digit_map is None else (digit_map, first_number + index)
        _stamp(page, alpha, x - cols[0], y + dy - alpha.shape[0] * 4 / 28, ink_level, mark)
        x += cols[-1] - cols[0] + 1 + rng.uniform(*gap) * height
        if operators and index < len(digits) - 1 and rng.random() < 0.6:
            size = round(height * rng.uniform(0.6, 0.9))
            op = operator_alpha(rng, size)
            _stamp(page, op, x, y + dy + (height - size) / 2, ink_level)
            x += size + rng.uniform(0.2, 0.5) * height
    return x


def lay_turned(
    surface_image: np.ndarray, sheet: np.ndarray, sheet_digits: np.ndarray, turn: float
) -> tuple[np.ndarray, np.ndarray]:
    """The sheet (and its digit map) laid on the surface at the frame's centre, turned by ``turn`` degrees
    about its own centre and scaled down so that its corners stay in view."""
    height, width = surface_image.shape[:2]
    sheet_h, sheet_w = sheet.shape[:2]
    c, s = abs(np.cos(np.radians(turn))), abs(np.sin(np.radians(turn)))
    scale = min(1.0, 0.96 * width / (sheet_w * c + sheet_h * s), 0.96 * height / (sheet_w * s + sheet_h * c))
    place = cv2.getRotationMatrix2D((sheet_w / 2, sheet_h / 2), turn, scale)
    place[:, 2] += ((width - sheet_w) / 2, (height - sheet_h) / 2)
    size = (width, height)
    laid = cv2.warpAffine(sheet.astype(np.float32), place, size, flags=cv2.INTER_LINEAR)
    cover = cv2.warpAffine(np.ones(sheet.shape, np.float32), place, size, flags=cv2.INTER_LINEAR)
    frame = surface_image * (1 - cover) + laid
    digit_map = cv2.warpAffine(sheet_digits, place, size, flags=cv2.INTER_NEAREST)
    return frame, digit_map


def render_scene(
    kind: str,
    lines: list[list[np.ndarray]],
    labels: list[list[int]],
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    blank: bool = False,
    on_surface: bool | None = None,
    boxes: bool = False,
    turn: float = 0.0,
) -> Scene:
    """A hard scene of one ``kind`` (see KINDS) with ``lines`` of digit images written on it; the sheet lies
    on a textured surface always for "texture", else at random (``on_surface``: always, or never).
    ``boxes``: written one digit to a printed box (a form, a score sheet; see ``print_boxes``).
    ``turn``: the sheet lies turned by this many degrees (counter-clockwise as seen) on the surface, made
    smaller so that all of it stays in view (a sheet put down askew under a camera)."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}, expected one of {KINDS}")
    # The sheet covers most of the frame, on a textured surface for "texture" (and sometimes otherwise).
    frame = surface(rng, width, height)
    # Drawn as before even when ``on_surface`` is given, so that the pages after this one stay the same.
    drawn = kind == "texture" or rng.random() < 0.3
    on_surface = drawn if on_surface is None else on_surface
    margin = rng.uniform(0.06, 0.16) if on_surface else 0.0
    sheet_w, sheet_h = int(width * (1 - 2 * margin)), int(height * (1 - 2 * margin))
    sheet = paper(rng, sheet_w, sheet_h)
    if kind in ("ruled", "grid"):
        rule_page(sheet, rng, squared=kind == "grid")
    ink_level = rng.uniform(10, 70)
    n_lines = max(1, len(lines))
    longest = max((len(line) for line in lines), default=1)
    # A digit and its gap take about 1.3 digit heights of the line; with operators, the operator after most
    # digits (0.6-0.9 of a height, and its own gap) makes it about 2: sized for 1.3, lines ran off the page.
    per_digit = 2.0 if kind == "operators" else 1.3
    digit_h = min(0.6 * sheet_h / n_lines / 1.5, 0.75 * sheet_w / max(longest, 1) / per_digit) * rng.uniform(
        0.6, 1.0
    )
    digit_h = max(digit_h, 18.0)
    texts = []
    sheet_digits = np.zeros((sheet_h, sheet_w), np.uint16)
    page_slant: dict[str, tuple[float, float]] = {}
    top = (sheet_h - n_lines * digit_h * 1.5) / 2
    for index, (line, line_labels) in enumerate(zip(lines, labels, strict=True)):
        y = top + index * digit_h * 1.5 + digit_h * 0.25
        x = rng.uniform(0.05, 0.2) * sheet_w
        options: dict = {}
        if kind == "touching":
            options["gap"] = (-0.12, 0.02)
        elif kind == "slant":
            # A page photographed at a tilt, or curled, slants and bends all of its lines alike, and a
            # writer keeps each line clear of the one above: each line takes the first line's slope and
            # curve, and a tenth of its own difference from them. (Drawn apart for each line, lines 1.5
            # heights apart ran through each other.)
            slope, curve = rng.uniform(-0.25, 0.25), rng.uniform(-0.3, 0.3)
            page_slope, page_curve = page_slant.setdefault("slant", (slope, curve))
            options["slope"] = page_slope + 0.1 * (slope - page_slope)
            options["curve"] = page_curve + 0.1 * (curve - page_curve)
        elif kind == "scattered":
            options["gap"] = (0.4, 1.2)
            options["jitter_y"] = 0.3
        elif kind == "operators":
            options["operators"] = True
        elif kind == "edge":
            x = rng.uniform(0.0, 0.02) * sheet_w + 3
        if not blank:
            first = 1 + sum(len(t) for t in texts)
            write_line(
                sheet,
                line,
                rng,
                x,
                y,
                digit_h,
                ink_level,
                **options,
                digit_map=sheet_digits,
                first_number=first,
            )
            texts.append("".join(str(d) for d in line_labels))
    if boxes and not blank:
        ends = np.cumsum([0, *(len(text) for text in texts)])
        numbers = [list(range(first + 1, last + 1)) for first, last in itertools.pairwise(ends)]
        print_boxes(sheet, sheet_digits, numbers, rng)
    if kind == "shadow":  # a hard shadow edge across the page (a hand, a phone, a lamp arm)
        yy, xx = np.mgrid[0:sheet_h, 0:sheet_w].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        side = (
            np.cos(angle) * (xx - sheet_w / 2)
            + np.sin(angle) * (yy - sheet_h / 2)
            + rng.uniform(-0.2, 0.2) * sheet_w
        )
        sheet *= 1 - rng.uniform(0.3, 0.5) * np.clip(side / rng.uniform(1, 4), 0, 1)
    elif kind == "glare":
        yy, xx = np.mgrid[0:sheet_h, 0:sheet_w].astype(np.float32)
        cx, cy = rng.uniform(0.2, 0.8) * sheet_w, rng.uniform(0.2, 0.8) * sheet_h
        radius = rng.uniform(0.1, 0.25) * max(sheet_w, sheet_h)
        glow = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
        sheet = sheet + (255 - sheet) * 0.6 * glow
    if turn:
        frame, digit_map = lay_turned(frame, sheet, sheet_digits, turn)
    else:
        y0, x0 = int(margin * height), int(margin * width)
        frame[y0 : y0 + sheet_h, x0 : x0 + sheet_w] = sheet
        digit_map = np.zeros((height, width), np.uint16)
        digit_map[y0 : y0 + sheet_h, x0 : x0 + sheet_w] = sheet_digits
    # On a surface the sheet lies at an angle; else the camera looks at it a little off square. The digit
    # map goes through the same warp (its border stays empty: reflected, it would repeat digits).
    tilt = camera_tilt(rng, width, height, 0.04 if on_surface else 0.03)
    assert tilt is not None  # a perspective was asked for
    frame = cv2.warpPerspective(frame, tilt, (width, height), borderMode=cv2.BORDER_REFLECT)
    digit_map = cv2.warpPerspective(digit_map, tilt, (width, height), flags=cv2.INTER_NEAREST)
    image = photograph(frame, rng, perspective=0.0)
    return Scene(image, " ".join(texts), [], digit_map)


def close_up(scene: Scene, margin: float = 0.25) -> Scene:
    """The scene as a camera held close to the writing sees it: the frame cropped to the written digits
    and ``margin`` of their extent round them (at the frame's aspect, inside the frame), enlarged back to
    the frame's size. A webcam's fixed focus leaves such a view soft: a printed line several px wide and
    blurred over several more."""
    h, w = scene.frame.shape[:2]
    ys, xs = np.nonzero(scene.digit_map)
    if not len(ys):
        raise ValueError("close_up needs a scene with digits written on it")
    half_h = min(h, max(ys.max() - ys.min(), (xs.max() - xs.min()) * h / w) * (1 + margin)) / 2
    half_w = half_h * w / h
    y0 = int(np.clip((ys.min() + ys.max()) / 2 - half_h, 0, h - 2 * half_h))
    x0 = int(np.clip((xs.min() + xs.max()) / 2 - half_w, 0, w - 2 * half_w))
    y1, x1 = y0 + max(2, round(2 * half_h)), x0 + max(2, round(2 * half_w))
    frame = cv2.resize(scene.frame[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_CUBIC)
    digit_map = cv2.resize(scene.digit_map[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_NEAREST)
    return Scene(frame, scene.text, [], digit_map)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[len(b)]


def digits_right(read: str, truth: str) -> int:
    """Digits read right, as the photo scorer counts them: length minus edit distance, spaces ignored."""
    read, truth = read.replace(" ", ""), truth.replace(" ", "")
    return max(0, len(truth) - edit_distance(read, truth))


# A reading holds a written digit when its box holds at least this share of the digit's ink.
HELD = 0.5
# What became of each written digit (see ``follow_digits``), and of each reading that holds none.
OUTCOMES = ("right", "misread", "unsure", "merged", "dropped", "lost")


def follow_digits(digit_map: np.ndarray, truth: str, digits, dropped=()) -> dict[str, int]:
    """Each digit written on a page (``digit_map`` and ``truth`` of its Scene) followed to the reading that
    holds it (``digits``: the pipeline's, with ``value`` and a ``box`` in frame px): right, misread (held
    by one reading alone, read as another digit), unsure (read as "?"), merged (its reading holds another
    written digit too: touching digits read as one), dropped (no reading holds it, but one of the
    candidates the model called no digit does: ``dropped``, their boxes) or lost (nothing holds it: lost
    in segmentation). "extra" counts the readings that hold no written digit: texture, a rule or an
    operator read as a digit, or a part of a digit read as one of its own. Tells a loss in segmentation
    from one by the model."""
    labels = [int(c) for c in truth.replace(" ", "")]
    count = len(labels)
    ink = np.bincount(digit_map.ravel(), minlength=count + 1)

    def held_by(box) -> set[int]:
        inside = np.bincount(
            digit_map[box.y : box.y + box.h, box.x : box.x + box.w].ravel(), minlength=count + 1
        )
        return {k for k in range(1, count + 1) if ink[k] and inside[k] >= HELD * ink[k]}

    holds = [held_by(digit.box) for digit in digits]
    held_by_dropped = set().union(*(held_by(box) for box in dropped))
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for number, label in enumerate(labels, 1):
        holders = [i for i, held in enumerate(holds) if number in held]
        if not holders:
            outcomes["dropped" if number in held_by_dropped else "lost"] += 1
        elif any(len(holds[i]) > 1 for i in holders):
            outcomes["merged"] += 1
        else:
            values = {digits[i].value for i in holders}
            outcomes["right" if values == {label} else "unsure" if values == {None} else "misread"] += 1
    outcomes["extra"] = sum(1 for held in holds if not held)
    return outcomes
