"""Drawing the rig: what moves in a frame (:class:`FaceParams`), eyes, the mouth, the plain test face."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import (
    _MOUTH_EXPONENT,
    _MOUTH_POINTS,
    _MOUTH_UP,
    _ONE,
    _REFERENCE_SIZE,
    _SHIFT,
    MOUTH_HALF_WIDTH_MAX,
    MOUTH_HALF_WIDTH_MIN,
    MOUTH_INTERIOR_BGR,
    MOUTH_LIP,
    MOUTH_LIP_BGR,
    MOUTH_LIP_SIDE,
    MOUTH_OPEN_MAX,
)


@dataclass(frozen=True)
class FaceParams:
    """Everything that moves in one frame of the rig.

    Attributes
    ----------
    opening, width
        Mouth, in :class:`MouthTrack` units.
    blink
        0 eyes open .. 1 closed.
    gaze_x, gaze_y
        -1 .. 1: pupils to the viewer's left/up .. right/down.
    head_dx, head_dy
        Head shift in pixels at 512 (scaled with the frame).
    head_angle
        Head roll in degrees (counter-clockwise positive, as in OpenCV).
    """

    opening: float = 0.0
    width: float = 0.5
    blink: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    head_dx: float = 0.0
    head_dy: float = 0.0
    head_angle: float = 0.0


def _mouth_unit_shape() -> tuple[np.ndarray, np.ndarray]:
    """Superellipse profile ``(1 - |u|^n)^(1/n)`` sampled on ``u`` in [-1, 1]."""
    u = np.linspace(-1.0, 1.0, _MOUTH_POINTS)
    return u, np.power(np.clip(1.0 - np.abs(u) ** _MOUTH_EXPONENT, 0.0, 1.0), 1.0 / _MOUTH_EXPONENT)


_MOUTH_U, _MOUTH_PROFILE = _mouth_unit_shape()


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _mouth_polygons(opening: float, width: float, smile: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Outer (lips) and inner (interior) polygons at 512 scale, relative to the mouth centre.

    The interior is a superellipse of half-width ``a - MOUTH_LIP_SIDE`` and height
    ``opening * MOUTH_OPEN_MAX``, split ``_MOUTH_UP`` above and the rest below the centre line; the
    lips are the same shape grown by the lip thickness. ``smile`` lifts the corners by shifting
    whole columns, which changes neither the area nor the horizontal extent that
    :func:`measure_mouth` reads.
    """
    half_width = MOUTH_HALF_WIDTH_MIN + float(np.clip(width, 0, 1)) * (
        MOUTH_HALF_WIDTH_MAX - MOUTH_HALF_WIDTH_MIN
    )
    height = float(np.clip(opening, 0, 1)) * MOUTH_OPEN_MAX
    up, down = _MOUTH_UP * height, (1.0 - _MOUTH_UP) * height
    lift = -smile * _MOUTH_U**2
    x_out = half_width * _MOUTH_U
    outer = np.concatenate(
        [
            np.stack([x_out, lift - (up + MOUTH_LIP) * _MOUTH_PROFILE], axis=1),
            np.stack([x_out[::-1], (lift + (down + MOUTH_LIP) * _MOUTH_PROFILE)[::-1]], axis=1),
        ]
    )
    if height < 0.3:
        return outer, None
    inner_half = half_width - MOUTH_LIP_SIDE
    x_in = inner_half * _MOUTH_U
    lift_in = -smile * (x_in / half_width) ** 2
    inner = np.concatenate(
        [
            np.stack([x_in, lift_in - up * _MOUTH_PROFILE], axis=1),
            np.stack([x_in[::-1], (lift_in + down * _MOUTH_PROFILE)[::-1]], axis=1),
        ]
    )
    return outer, inner


def _interior_fill() -> float:
    interior = _mouth_polygons(1.0, 1.0, 0.0)[1]
    assert interior is not None  # a wide open mouth has an interior
    return _polygon_area(interior) / (2 * (MOUTH_HALF_WIDTH_MAX - MOUTH_LIP_SIDE) * MOUTH_OPEN_MAX)


_INTERIOR_FILL = _interior_fill()
"""Interior area / (interior width x height): the same for every opening and width (same shape)."""


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates to cv2's fixed-point ``shift`` format."""
    return np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(image: np.ndarray, points: np.ndarray, colour: tuple[int, ...]) -> None:
    cv2.fillPoly(image, [_fixed(points)], colour, cv2.LINE_AA, _SHIFT)


def _ellipse(
    image: np.ndarray,
    centre: tuple[float, float],
    axes: tuple[float, float],
    colour: tuple[int, ...],
    thickness: int = -1,
    angle: float = 0.0,
    start: float = 0.0,
    end: float = 360.0,
) -> None:
    c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
    a = (max(0, int(round(axes[0] * _ONE))), max(0, int(round(axes[1] * _ONE))))
    cv2.ellipse(image, c, a, angle, start, end, colour, thickness, cv2.LINE_AA, _SHIFT)


def _circle(image: np.ndarray, centre: tuple[float, float], radius: float, colour: tuple[int, ...]) -> None:
    c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
    cv2.circle(image, c, max(1, int(round(radius * _ONE))), colour, -1, cv2.LINE_AA, _SHIFT)


def _spline(points: Sequence[tuple[float, float]], closed: bool = True, samples: int = 12) -> np.ndarray:
    """Catmull-Rom curve through control points: soft cartoon outlines from a few numbers."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.concatenate([p[-1:], p, p[:2]])
    else:
        p = np.concatenate([p[:1], p, p[-1:]])
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    if not closed:
        out.append(p[-2][None, :])
    return np.concatenate(out)


def _mask(shape: tuple[int, int], draw: Callable[[np.ndarray], None]) -> np.ndarray:
    """A float alpha mask in [0, 1] from a drawing callback that paints 255 on uint8."""
    canvas = np.zeros(shape, dtype=np.uint8)
    draw(canvas)
    return canvas.astype(np.float32) / 255.0


def _paint(image: np.ndarray, alpha: np.ndarray, colour: tuple[float, ...] | np.ndarray) -> None:
    """Blend a colour (or an image) into the uint8 ``image`` through an alpha mask, in place."""
    a = alpha[..., None]
    blended = image * (1.0 - a) + np.asarray(colour, dtype=np.float32) * a
    image[:] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


@dataclass
class _Eye:
    """Pre-computed pieces of one eye at one frame size (all in that size's pixels)."""

    x0: int
    y0: int
    cx: float  # centre, relative to (x0, y0)
    cy: float
    ea: float  # semi-axes of the eye opening
    eb: float
    eb_lid: float  # vertical semi-axis the lid travels over (opening plus rim)
    white: np.ndarray  # float32 alpha of the eye opening (where the pupil shows)
    cover: np.ndarray  # float32 alpha of opening plus rim (what a closed lid covers)
    sclera: np.ndarray  # uint8 patch of the sclera colour
    lid: np.ndarray  # uint8 patch: the surrounding skin or fur continued over the eye
    ys: np.ndarray  # float32 row coordinates, column vector
    arc: np.ndarray  # float32 per column: sqrt(1 - ((x - cx)/(ea + rim))^2), 0 outside
    iris_radius: float
    pupil_radius: float
    gaze_x: float  # pupil travel at gaze 1
    gaze_y: float
    iris_bgr: tuple[int, int, int]
    pupil_bgr: tuple[int, int, int]
    lash_bgr: tuple[int, int, int]
    lash: int  # lash line thickness in pixels
    highlights: tuple[tuple[float, float, float], ...]  # (dx, dy, r) relative to the iris centre


@dataclass
class _Rig:
    """One style at one size: the static picture and what moves on it."""

    base: np.ndarray
    eyes: tuple[_Eye, ...]
    mouth: tuple[float, float]  # centre in pixels
    smile: float  # corner lift at 512
    pivot: tuple[float, float]  # head roll centre in pixels
    scale: float


@dataclass(frozen=True)
class _EyeSpec:
    """An eye's design in 512-pixel units: where, how big, what colours, how far the pupil moves."""

    centre: tuple[float, float]
    axes: tuple[float, float]
    iris: float
    pupil: float
    travel: tuple[float, float]
    sclera_bgr: tuple[int, int, int]
    iris_bgr: tuple[int, int, int]
    pupil_bgr: tuple[int, int, int]
    lash_bgr: tuple[int, int, int]
    lash: float
    highlights: tuple[tuple[float, float, float], ...]
    rim: float = 2.0  # dark outline around the opening; closed lids cover it
    rim_bgr: tuple[int, int, int] = (45, 40, 50)


def _make_eye(spec: _EyeSpec, scale: float, base: np.ndarray) -> _Eye:
    """Cut an eye's region of interest and pre-compute its masks, so a frame costs microseconds."""
    cx, cy = spec.centre[0] * scale, spec.centre[1] * scale
    ea, eb = spec.axes[0] * scale, spec.axes[1] * scale
    rim = spec.rim * scale
    pad = 4 + rim + spec.lash * scale
    x0, y0 = int(math.floor(cx - ea - pad)), int(math.floor(cy - eb - pad))
    x1, y1 = int(math.ceil(cx + ea + pad)), int(math.ceil(cy + eb + pad))
    h, w = y1 - y0, x1 - x0
    rcx, rcy = cx - x0, cy - y0
    big = 4  # draw the opening 4x larger and area-average: an exact anti-aliased alpha
    centre = ((rcx + 0.5) * big - 0.5, (rcy + 0.5) * big - 0.5)

    def alpha(grow: float) -> np.ndarray:
        canvas = np.zeros((h * big, w * big), dtype=np.uint8)
        _ellipse(canvas, centre, ((ea + grow) * big, (eb + grow) * big), (255,))
        return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    white = alpha(0.0)
    cover = alpha(rim + 1.2)
    xs = np.arange(w, dtype=np.float32)
    rel = (xs - rcx) / (ea + rim + 0.5)
    arc = np.sqrt(np.clip(1.0 - rel**2, 0.0, 1.0)).astype(np.float32)
    # The lid is the surrounding skin or fur continued over the eye (inpainted from the static
    # picture), so a closed eye blends into the face instead of showing a flat patch.
    hole = cv2.dilate((cover > 0.01).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    lid = cv2.inpaint(base[y0:y1, x0:x1], hole, max(3.0, 4 * scale), cv2.INPAINT_TELEA)
    return _Eye(
        x0=x0,
        y0=y0,
        cx=rcx,
        cy=rcy,
        ea=ea,
        eb=eb,
        eb_lid=eb + rim + 0.5,
        white=white,
        cover=cover,
        sclera=np.full((h, w, 3), spec.sclera_bgr, dtype=np.uint8),
        lid=lid,
        ys=np.arange(h, dtype=np.float32)[:, None],
        arc=arc,
        iris_radius=spec.iris * scale,
        pupil_radius=spec.pupil * scale,
        gaze_x=spec.travel[0] * scale,
        gaze_y=spec.travel[1] * scale,
        iris_bgr=spec.iris_bgr,
        pupil_bgr=spec.pupil_bgr,
        lash_bgr=spec.lash_bgr,
        lash=max(1, int(round(spec.lash * scale))),
        highlights=tuple((dx * scale, dy * scale, r * scale) for dx, dy, r in spec.highlights),
    )


def _draw_eye(frame: np.ndarray, eye: _Eye, params: FaceParams) -> None:
    """Pupil (clipped to the eye opening), then the lid closing down to ``blink``, in place."""
    h, w = eye.white.shape
    roi = frame[eye.y0 : eye.y0 + h, eye.x0 : eye.x0 + w]
    ball = eye.sclera.copy()
    px = eye.cx + float(np.clip(params.gaze_x, -1, 1)) * eye.gaze_x
    py = eye.cy + float(np.clip(params.gaze_y, -1, 1)) * eye.gaze_y
    _circle(ball, (px, py), eye.iris_radius, eye.iris_bgr)
    _circle(ball, (px, py), eye.pupil_radius, eye.pupil_bgr)
    for dx, dy, r in eye.highlights:
        _circle(ball, (px + dx, py + dy), r, (255, 255, 255))
    roi[:] = cv2.blendLinear(ball, roi, eye.white, 1.0 - eye.white)
    blink = float(np.clip(params.blink, 0.0, 1.0))
    # lid edge: the top arc of the opening at 0, a straight line at 0.5, the bottom arc at 1
    edge = eye.cy + eye.eb_lid * (2.0 * blink - 1.0) * eye.arc
    if blink > 0.0:
        lid_alpha = np.clip(edge[None, :] - eye.ys + 0.5, 0.0, 1.0) * eye.cover
        roi[:] = cv2.blendLinear(eye.lid, roi, lid_alpha, 1.0 - lid_alpha)
    inside = eye.arc > 0.15
    xs = np.nonzero(inside)[0].astype(np.float32)
    if len(xs) > 1:
        points = np.stack([xs, edge[inside]], axis=1)
        cv2.polylines(roi, [_fixed(points)], False, eye.lash_bgr, eye.lash, cv2.LINE_AA, _SHIFT)


def _draw_mouth(frame: np.ndarray, rig: _Rig, params: FaceParams) -> None:
    outer, inner = _mouth_polygons(params.opening, params.width, rig.smile)
    centre = np.array(rig.mouth)
    _fill(frame, outer * rig.scale + centre, MOUTH_LIP_BGR)
    if inner is not None:
        _fill(frame, inner * rig.scale + centre, MOUTH_INTERIOR_BGR)


# ---- static layers ----------------------------------------------------------------------------


def _supersampled(size: int, paint: Callable[[np.ndarray, float], None], factor: int = 2) -> np.ndarray:
    """Paint a static layer at ``factor`` x the size and area-average it down: smooth edges for free,
    because static layers are painted once per (style, size) and cached."""
    big = np.zeros((size * factor, size * factor, 3), dtype=np.uint8)
    paint(big, size * factor / _REFERENCE_SIZE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _mask_poly(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    return _mask(shape, lambda c: _fill(c, points, (255,)))


def _mask_ellipse(shape: tuple[int, int], centre, axes, angle: float = 0.0) -> np.ndarray:
    return _mask(shape, lambda c: _ellipse(c, centre, axes, (255,), angle=angle))


def _scaled(points: list[tuple[float, float]], s: float) -> list[tuple[float, float]]:
    return [(x * s, y * s) for x, y in points]


def _paint_eye_static(img: np.ndarray, eye: _EyeSpec, s: float) -> None:
    """The static part of an eye: its dark rim and the sclera under the moving pupil."""
    cx, cy = eye.centre
    _ellipse(img, (cx * s, cy * s), ((eye.axes[0] + eye.rim) * s, (eye.axes[1] + eye.rim) * s), eye.rim_bgr)
    _ellipse(img, (cx * s, cy * s), (eye.axes[0] * s, eye.axes[1] * s), eye.sclera_bgr)


# test style: a plain face ------------------------------------------------------------------------
_TEST_SKIN = (170, 200, 238)
_TEST_BG = (205, 200, 190)
_TEST_EYES = tuple(
    _EyeSpec(
        centre=(x, 228.0),
        axes=(30.0, 17.0),
        iris=12.0,
        pupil=5.5,
        travel=(14.0, 4.0),
        sclera_bgr=(245, 245, 245),
        iris_bgr=(60, 80, 120),
        pupil_bgr=(20, 20, 20),
        lash_bgr=(40, 45, 60),
        lash=2.5,
        highlights=((3.5, -3.5, 2.2),),
        rim=1.5,
        rim_bgr=(120, 140, 170),
    )
    for x in (196.0, 316.0)
)


def _paint_test(img: np.ndarray, s: float) -> None:
    shape = img.shape[:2]
    img[:] = _TEST_BG
    _paint(img, _mask_ellipse(shape, (256 * s, 560 * s), (150 * s, 140 * s)), (140, 120, 90))  # shirt
    _paint(
        img,
        _mask_poly(shape, np.array(_scaled([(210, 380), (302, 380), (308, 470), (204, 470)], s))),
        _TEST_SKIN,
    )
    for x in (96, 416):  # ears
        _paint(img, _mask_ellipse(shape, (x * s, 265 * s), (22 * s, 40 * s)), (155, 188, 228))
    _paint(img, _mask_ellipse(shape, (256 * s, 262 * s), (160 * s, 200 * s)), _TEST_SKIN)
    _paint(img, _mask_ellipse(shape, (256 * s, 120 * s), (165 * s, 85 * s)), (50, 60, 80))  # hair
    _paint(img, _mask_ellipse(shape, (256 * s, 160 * s), (150 * s, 45 * s)), _TEST_SKIN)
    for eye in _TEST_EYES:
        cx, cy = eye.centre
        _paint_eye_static(img, eye, s)
        _ellipse(
            img,
            (cx * s, (cy - 20) * s),
            (34 * s, 12 * s),
            (50, 65, 90),
            max(1, round(6 * s)),
            start=200,
            end=340,
        )
    nose = _spline([(250, 250), (242, 300), (238, 318), (256, 326), (274, 318)], closed=False)
    cv2.polylines(img, [_fixed(nose * s)], False, (120, 150, 195), max(1, round(4 * s)), cv2.LINE_AA, _SHIFT)
