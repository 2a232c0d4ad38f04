"""The optical-flow morph on pictures whose motion we know."""

import cv2
import numpy as np
import pytest

from engine.morph import Morph, MorphSettings


def textured(dx: float, size: int = 256) -> np.ndarray:
    """A smooth random texture shifted ``dx`` pixels to the right (faces are textured too)."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (size // 2, size // 2, 3)).astype(np.uint8), (0, 0), 3)
    texture = cv2.resize(cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX), (size, size))
    shift = np.float32([[1, 0, dx], [0, 1, 0]])
    return cv2.warpAffine(texture, shift, (size, size), borderMode=cv2.BORDER_REFLECT)


def inner_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[40:-40, 40:-40].astype(int) - b[40:-40, 40:-40]).mean())


@pytest.mark.parametrize("shift", [4, 12])
def test_morph_moves_the_picture_instead_of_cross_fading(shift):
    a, b = textured(0), textured(shift)
    frames = Morph(a, b).frames(3)  # t = 1/4, 1/2, 3/4
    for frame, t in zip(frames, (0.25, 0.5, 0.75)):
        truth = textured(shift * t)
        dissolve = cv2.addWeighted(a, 1 - t, b, t, 0)
        assert inner_error(frame, truth) < 0.2 * inner_error(dissolve, truth)


def test_morph_of_identical_frames_is_that_frame():
    a = textured(0)
    morph = Morph(a, a.copy())
    assert morph.box is None
    assert np.array_equal(morph.frame(0.5), a)


def test_morph_only_warps_where_things_move():
    a, b = np.full((256, 256, 3), 120, np.uint8), np.full((256, 256, 3), 120, np.uint8)
    cv2.circle(a, (100, 128), 30, (20, 60, 200), -1, cv2.LINE_AA)
    cv2.circle(b, (108, 128), 30, (20, 60, 200), -1, cv2.LINE_AA)
    morph = Morph(a, b)
    y0, y1, x0, x1 = morph.box
    assert (y1 - y0) * (x1 - x0) < 0.5 * a.shape[0] * a.shape[1]


def test_morph_length_grows_with_distance_within_bounds():
    settings = MorphSettings()
    lengths = [settings.length(d) for d in (0, 3, 8, 15, 20, 100)]
    assert lengths[0] == settings.min_frames == 5
    assert lengths[-1] == settings.max_frames == 12
    assert lengths == sorted(lengths)
