"""The temporal vote and change events."""

from device.decide import Decider
from device.reading import Box, Digit, Reading


def digits(text):
    return [Digit(None if c == "?" else int(c), 0.9, Box(i * 30, 0, 20, 40)) for i, c in enumerate(text)]


def test_still_image_reports_each_frame():
    decider = Decider(live=False)
    first = decider.update(digits("12"))
    assert first.text == "12" and first.changed
    assert not decider.update(digits("12")).changed
    assert decider.update(digits("1?")).text == "1?"


def test_live_vote_needs_k_of_n_and_ignores_flicker():
    decider = Decider(vote_frames=5, vote_needed=3, empty_frames=3)
    texts = ["42", "42", "47", "42", "47", "42", "42"]
    reports = [decider.update(digits(t)) for t in texts]
    assert [r.text for r in reports] == ["", "", "", "42", "42", "42", "42"]
    assert [r.changed for r in reports] == [False, False, False, True, False, False, False]


def test_no_digits_after_m_empty_frames_and_change_back():
    decider = Decider(vote_frames=3, vote_needed=2, empty_frames=3)
    for _ in range(2):
        decider.update(digits("5"))
    assert decider.current.text == "5"
    r1, r2, r3 = (decider.update([]) for _ in range(3))
    assert (r1.text, r2.text) == ("5", "5") and not r1.changed
    assert r3.text == "" and r3.changed
    decider.update(digits("6"))
    assert decider.update(digits("6")).changed


def test_reading_text_joins_lines_with_one_space():
    ds = [
        Digit(1, 0.9, Box(0, 0, 5, 5, 0)),
        Digit(None, 0.3, Box(9, 0, 5, 5, 0)),
        Digit(7, 0.9, Box(0, 9, 5, 5, 1)),
    ]
    reading = Reading(tuple(ds))
    assert reading.text == "1? 7"
    assert reading.as_dict()["digits"][1] == {"digit": None, "confidence": 0.3, "box": [9, 0, 5, 5]}
