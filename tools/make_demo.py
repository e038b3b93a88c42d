"""Make the bundled demo: device/demo/demo.mp4 (a few pages of handwritten digits seen by a camera that
moves a little) and device/demo/page.jpg (one still page). Digits are MNIST test digits
(device/demo/digits.npz) printed by host.synthetic. Usage: python -m tools.make_demo
"""

from pathlib import Path

import cv2
import numpy as np

from host.synthetic import blank, render

DEMO = Path(__file__).resolve().parent.parent / "device" / "demo"
PAGES = [["2026"], ["31", "415"], [], ["7"], ["8093"]]  # [] is an empty page between readings
FRAMES_PER_PAGE = 16
FPS = 8


def pick(images, labels, text, rng):
    return [images[rng.choice(np.flatnonzero(labels == int(c)))] for c in text]


def main() -> None:
    with np.load(DEMO / "digits.npz") as data:
        images, labels = data["images"], data["labels"]
    rng = np.random.default_rng(42)
    writer = cv2.VideoWriter(str(DEMO / "demo.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (480, 360))
    for lines in PAGES:
        digits = [pick(images, labels, line, rng) for line in lines]
        for i in range(FRAMES_PER_PAGE):
            # The same page each frame; the camera's view (noise, blur, slight tilt) changes.
            frame_rng = np.random.default_rng(1000 * len(lines) + i)
            if lines:
                page_rng = np.random.default_rng(hash(tuple(lines)) % 2**32)
                scene = render(
                    digits,
                    [[int(c) for c in line] for line in lines],
                    page_rng,
                    480,
                    360,
                    perspective=0.0,
                    blur=0.8,
                )
                frame = scene.frame
            else:
                frame = blank(np.random.default_rng(7), 480, 360)
            shift = frame_rng.normal(0, 2, 2)
            matrix = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
            frame = cv2.warpAffine(frame, matrix, (480, 360), borderMode=cv2.BORDER_REFLECT)
            frame = np.clip(frame + frame_rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
            writer.write(frame)
    writer.release()
    page = render(
        [pick(images, labels, "4096", rng), pick(images, labels, "17", rng)],
        [[4, 0, 9, 6], [1, 7]],
        np.random.default_rng(3),
        640,
        480,
        blur=0.6,
    )
    cv2.imwrite(str(DEMO / "page.jpg"), page.frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(
        f"wrote {DEMO / 'demo.mp4'} ({(DEMO / 'demo.mp4').stat().st_size} bytes) and page.jpg "
        f"(text {page.text!r})"
    )


if __name__ == "__main__":
    main()
