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


def similarity(angle_deg: float, scale: float, shift: tuple[float, float], centre: float) -> np.ndarray:
    """A 2 x 3 similarity about ``(centre, centre)``: rotation, scale, then a shift."""
    transform = cv2.getRotationMatrix2D((centre, centre), angle_deg, scale)
    transform[:, 2] += shift
    return transform.astype(np.float32)


FACE_POINTS = np.float32(
    [[128, 110], [98, 92], [158, 92], [112, 150], [144, 150], [128, 142], [128, 158], [128, 190]]
)
"""Nose, eye corners, mouth corners, lips and chin of a face in the middle of a 256 px frame."""


def moved(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return (points @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def test_face_transform_recovers_the_similarity_of_the_landmarks():
    from engine.morph import face_transform

    truth = similarity(5.0, 1.04, (7.0, -3.0), 128)
    found = face_transform(FACE_POINTS, moved(FACE_POINTS, truth))
    assert found is not None and np.abs(found - truth).max() < 1e-2
    missing = np.full_like(FACE_POINTS, np.nan)
    missing[:2] = FACE_POINTS[:2]
    assert face_transform(FACE_POINTS, missing) is None  # two points do not fix a similarity


def test_a_face_guided_morph_moves_the_face_whole_and_fades_the_new_mouth_in_place():
    """B is A moved by a similarity, with a dark open mouth drawn where A's closed one went. Halfway,
    the face is half-way moved and the mouth is a half-dark fade at the half-way place: not dragged."""
    a = textured(0)
    transform = similarity(4.0, 1.03, (8.0, 4.0), 128)
    b = cv2.warpAffine(a, transform, (256, 256), borderMode=cv2.BORDER_REFLECT)
    mouth_b = moved(FACE_POINTS, transform)[5:7].mean(axis=0)
    cv2.ellipse(b, (int(mouth_b[0]), int(mouth_b[1])), (14, 8), 0, 0, 360, (20, 20, 20), -1)
    faces = (FACE_POINTS, moved(FACE_POINTS, transform))
    middle = Morph(a, b, faces=faces).frame(0.5)

    # Half of every point's displacement: (identity + transform) / 2.
    half = ((np.eye(3) + np.vstack([transform, [0, 0, 1]])) / 2)[:2].astype(np.float32)
    truth = cv2.warpAffine(a, half, (256, 256), borderMode=cv2.BORDER_REFLECT)
    face = (slice(80, 176), slice(80, 176))
    away_from_mouth = np.ones((256, 256), bool)
    away_from_mouth[120:175, 100:160] = False
    error = np.abs(middle.astype(int) - truth)[face].mean(axis=2)[away_from_mouth[face]].mean()
    dissolve = np.abs(cv2.addWeighted(a, 0.5, b, 0.5, 0).astype(int) - truth)[face].mean(axis=2)
    assert error < 0.5 * dissolve[away_from_mouth[face]].mean()  # resampling twice blurs a little

    # The dark mouth fades in where it will be, half-way there: its darkness centred near the
    # half-way mouth, not smeared along the flow.
    darker = np.clip(truth.astype(int) - middle, 0, None).sum(axis=2).astype(float)
    darker[away_from_mouth] = 0
    ys, xs = np.nonzero(darker > 60)
    centre = np.array([np.average(xs, weights=darker[ys, xs]), np.average(ys, weights=darker[ys, xs])])
    halfway = 0.5 * (FACE_POINTS[5:7].mean(axis=0) + mouth_b)
    assert np.linalg.norm(centre - halfway) < 1.6  # optical flow alone: 2.6 px, dragged along


def test_face_guidance_can_be_turned_off():
    a, b = textured(0), textured(6)
    faces = (FACE_POINTS, FACE_POINTS + np.float32([6, 0]))
    plain = Morph(a, b).frame_i420(0.5)
    off = Morph(a, b, MorphSettings(face_guided=False), faces=faces).frame_i420(0.5)
    on = Morph(a, b, faces=faces).frame_i420(0.5)
    assert np.array_equal(plain, off) and not np.array_equal(plain, on)
