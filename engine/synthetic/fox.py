"""The fox: the product's demo character, painted on the same rig as the test face."""

from __future__ import annotations

import cv2
import numpy as np

from .drawing import (
    _ellipse,
    _EyeSpec,
    _fill,
    _fixed,
    _mask_ellipse,
    _mask_poly,
    _paint,
    _paint_eye_static,
    _spline,
)
from .geometry import _REFERENCE_SIZE, _SHIFT

# fox style: the demo character ------------------------------------------------------------------
_FUR = (40, 130, 238)
_FUR_DARK = (28, 92, 190)
_FUR_TIP = (50, 48, 62)
_CREAM = (235, 245, 250)
_INNER_EAR = (180, 208, 250)
_FOX_NOSE = (45, 35, 40)
_FOX_EYES = tuple(
    _EyeSpec(
        centre=(x, 266.0),
        axes=(28.0, 34.0),
        iris=22.0,
        pupil=13.0,
        travel=(9.0, 8.0),
        sclera_bgr=(250, 250, 250),
        iris_bgr=(40, 80, 135),
        pupil_bgr=(30, 22, 25),
        lash_bgr=(45, 40, 50),
        lash=5.0,
        highlights=((7.0, -8.5, 6.5), (-7.5, 8.5, 3.0)),
        rim=2.5,
    )
    for x in (194.0, 318.0)
)
_FOX_JAW = [
    (446, 346),
    (446, 346),
    (410, 360),
    (436, 394),
    (436, 394),
    (374, 402),
    (330, 440),
    (256, 462),
    (182, 440),
    (138, 402),
    (76, 394),
    (76, 394),
    (102, 360),
    (66, 346),
]
"""The outline from one ear tuft round the chin to the other: the head's and the cheeks' alike."""
_FOX_HEAD = [
    *[(256, 132), (336, 146), (390, 196), (410, 258), (410, 300)],
    *_FOX_JAW,
    *[(66, 346), (102, 300), (102, 258), (122, 196), (176, 146)],
]
_FOX_CHEEK = [
    *[(256, 318), (286, 330), (322, 318), (360, 304), (398, 300)],
    *_FOX_JAW,
    *[(66, 346), (114, 300), (152, 304), (190, 318), (226, 330)],
]


def _bezier(p0, control, p1, samples: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(control) + t**2 * np.array(p1)


def _ear(flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outer ear, inner ear and dark-tip polygons of one ear (left, or mirrored to the right)."""
    outer = np.concatenate(
        [_bezier((132, 262), (86, 150), (104, 40)), _bezier((104, 40), (178, 78), (240, 168))[1:]]
    )
    inner = np.concatenate(
        [_bezier((150, 236), (118, 150), (118, 82)), _bezier((118, 82), (170, 112), (214, 176))[1:]]
    )
    tip = np.concatenate(
        [
            _bezier((96, 118), (96, 70), (104, 40)),
            _bezier((104, 40), (140, 58), (168, 86))[1:],
            _bezier((168, 86), (140, 118), (96, 118))[1:],
        ]
    )
    if flip:
        outer, inner, tip = (
            np.stack([_REFERENCE_SIZE - p[:, 0], p[:, 1]], axis=1) for p in (outer, inner, tip)
        )
    return outer, inner, tip


def _paint_fox(img: np.ndarray, s: float) -> None:
    shape = img.shape[:2]
    n = shape[0]
    # background: a gentle sky-to-mint gradient with a soft light behind the head
    rows = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
    top, bottom = np.array((242, 222, 178), np.float32), np.array((222, 240, 226), np.float32)
    img[:] = np.round(top * (1 - rows) + bottom * rows).astype(np.uint8)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / s
    glow = np.exp(-((xx - 256) ** 2 + (yy - 270) ** 2) / (2 * 170.0**2))
    _paint(img, 0.35 * glow, (250, 248, 240))
    # body: shoulders with a cream bib
    _paint(img, _mask_ellipse(shape, (256 * s, 590 * s), (190 * s, 170 * s)), _FUR)
    _paint(img, _mask_ellipse(shape, (256 * s, 560 * s), (80 * s, 120 * s)), _CREAM)
    # ears: orange, pale inside, dark tips
    for flip in (False, True):
        outer, inner, tip = _ear(flip)
        ear_mask = _mask_poly(shape, outer * s)
        _paint(img, ear_mask, _FUR)
        _paint(img, _mask_poly(shape, inner * s), _INNER_EAR)
        _paint(img, _mask_poly(shape, tip * s) * ear_mask, _FUR_TIP)
    # head with soft darker fur towards the rim and a lighter forehead
    head = _spline(_FOX_HEAD, samples=10) * s
    head_mask = _mask_poly(shape, head)
    inside = cv2.distanceTransform((head_mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / s
    rim = np.clip(1.0 - inside / 45.0, 0.0, 1.0) ** 2
    fur = np.array(_FUR, np.float32) * (1 - rim[..., None]) + np.array(_FUR_DARK, np.float32) * rim[..., None]
    _paint(img, head_mask, fur)
    forehead = np.exp(-((xx - 256) ** 2 / (2 * 70.0**2) + (yy - 205) ** 2 / (2 * 50.0**2)))
    _paint(img, head_mask * 0.3 * forehead, (110, 185, 252))
    # cream cheeks and muzzle (the tufts follow the head outline), leaving an orange nose bridge
    cheeks = _mask_poly(shape, _spline(_FOX_CHEEK, samples=10) * s)
    _paint(img, cheeks, _CREAM)
    for x in (168, 344):  # rosy cheeks, kept peachy (no red: red belongs to the mouth)
        blush = np.exp(-((xx - x) ** 2 / (2 * 20.0**2) + (yy - 360) ** 2 / (2 * 12.0**2)))
        _paint(img, cheeks * 0.5 * blush, (165, 190, 250))
    # eyes and brows
    for eye in _FOX_EYES:
        _paint_eye_static(img, eye, s)
        cx = eye.centre[0]
        brow = _spline([(cx - 24, 218), (cx, 208), (cx + 24, 214)], closed=False) * s
        cv2.polylines(img, [_fixed(brow)], False, _FUR_DARK, max(1, round(7 * s)), cv2.LINE_AA, _SHIFT)
    # nose: soft rounded triangle with a highlight, philtrum down to the mouth
    nose = _spline([(256, 352), (233, 337), (231, 325), (256, 318), (281, 325), (279, 337)], samples=8) * s
    cv2.polylines(
        img,
        [_fixed(np.array([[256, 350], [256, 380]]) * s)],
        False,
        _FOX_NOSE,
        max(1, round(3.5 * s)),
        cv2.LINE_AA,
        _SHIFT,
    )
    _fill(img, nose, _FOX_NOSE)
    _ellipse(img, (247 * s, 326 * s), (9 * s, 4.5 * s), (205, 205, 215), angle=-10)
