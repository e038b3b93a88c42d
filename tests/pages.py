"""Drawing helpers shared by the segmentation tests."""

import cv2


def stroke_digit(img, x, y, size=80, color=30, thickness=7):
    """A "7"-like digit: a bar and a slanted stem (not a straight line: no stage takes it for a rule)."""
    cv2.line(img, (x, y), (x + size // 2, y), color, thickness)
    cv2.line(img, (x + size // 2, y), (x + size // 5, y + size), color, thickness)
