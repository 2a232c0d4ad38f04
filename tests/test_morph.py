"""The optical-flow morph on pictures whose motion we know."""

import cv2
import numpy as np
import pytest

from engine.morph import Morph, MorphSettings, to_i420


def textured(dx: float, size: int = 256) -> np.ndarray:
    """A smooth random texture shifted ``dx`` pixels to the right (faces are textured too)."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (size // 2, size // 2, 3)).astype(np.uint8), (0, 0), 3)
    texture = cv2.resize(cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX), (size, size))
    shift = np.float32([[1, 0, dx], [0, 1, 0]])
    return cv2.warpAffine(texture, shift, (size, size), borderMode=cv2.BORDER_REFLECT)


def inner_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean difference away from the borders, in I420 (what the encoder keeps of a picture).

    Either argument may be BGR ``(h, w, 3)`` or I420 ``(h * 3 / 2, w)``.
    """
    a, b = (to_i420(x) if x.ndim == 3 else x for x in (a, b))
    height = a.shape[0] * 2 // 3
    luma = np.abs(a[40 : height - 40, 40:-40].astype(int) - b[40 : height - 40, 40:-40]).mean()
    chroma = np.abs(a[height:].astype(int) - b[height:]).mean()
    return float((4 * luma + 2 * chroma) / 6)


@pytest.mark.parametrize("shift", [4, 12])
def test_morph_moves_the_picture_instead_of_cross_fading(shift):
    a, b = textured(0), textured(shift)
    morph = Morph(a, b)
    for t in (0.25, 0.5, 0.75):
        frame = morph.frame_i420(t)
        truth = textured(shift * t)
        dissolve = cv2.addWeighted(a, 1 - t, b, t, 0)
        assert inner_error(frame, truth) < 0.35 * inner_error(dissolve, truth)


def test_morph_of_identical_frames_is_that_frame():
    a = textured(0)
    morph = Morph(a, a.copy())
    assert morph.still
    assert inner_error(morph.frame_i420(0.5), a) < 0.01


def test_morph_frames_are_i420_for_the_encoder():
    a, b = textured(0), textured(6)
    yuv = Morph(a, b).frame_i420(0.5)
    assert yuv.shape == (a.shape[0] * 3 // 2, a.shape[1]) and yuv.dtype == np.uint8
    back = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
    assert inner_error(back, textured(3)) < inner_error(cv2.addWeighted(a, 0.5, b, 0.5, 0), textured(3))


def test_morph_length_grows_with_distance_within_bounds():
    settings = MorphSettings()
    lengths = [settings.length(d) for d in (0, 3, 8, 15, 20, 100)]
    assert lengths[0] == settings.min_frames == 5
    assert lengths[-1] == settings.max_frames == 12
    assert lengths == sorted(lengths)


def test_morph_length_counts_its_two_recorded_end_frames():
    settings = MorphSettings()
    assert [settings.inbetweens(d) for d in (0, 100)] == [3, 10]  # t = 1/4, 2/4, 3/4 for a 5-frame morph
    with pytest.raises(ValueError, match="min_frames"):
        MorphSettings(min_frames=2)


@pytest.mark.parametrize("full", [512, 500, 256, 90])
def test_sampling_maps_equal_grid_minus_enlarged_flow_at_any_size(full):
    """Maps made from the small flow in one resize equal the textbook grid - step * enlarged flow."""
    from engine.morph import _MapMaker

    flow = np.random.default_rng(1).normal(0, 3, (64, 64, 2)).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(full, dtype=np.float32), np.arange(full, dtype=np.float32))
    enlarged = cv2.resize(flow, (full, full), interpolation=cv2.INTER_LINEAR)
    expected = np.dstack([grid_x, grid_y]) - 0.7 * enlarged
    assert np.abs(_MapMaker(64, full)(flow, 0.7) - expected).max() < 1e-3
