"""Reading the mouth back from pixels (:func:`measure_mouth`), in the units of :class:`MouthTrack`."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import InputError
from .drawing import _INTERIOR_FILL, _TEST_SKIN
from .fox import _CREAM
from .geometry import (
    _REFERENCE_SIZE,
    MOUTH_HALF_WIDTH_MAX,
    MOUTH_HALF_WIDTH_MIN,
    MOUTH_INTERIOR_BGR,
    MOUTH_LIP_BGR,
    MOUTH_LIP_SIDE,
    MOUTH_OPEN_MAX,
)


def _colour_features() -> np.ndarray:
    """Two affine colour features (a 2 x 4 matrix for ``cv2.transform``).

    * ``interior``: 1 on :data:`MOUTH_INTERIOR_BGR`, 0 on the lips, on the fox's cream muzzle and
      on the test face's skin;
    * ``mouth``: 1 on both interior and lips, 0 on muzzle and skin.

    Being affine in BGR, a feature of a blend is the blend of the features: a 50/50 mix of interior
    and lips (or skin) -- an anti-aliased edge, chroma subsampling, a cross-faded frame -- reads as
    exactly half. So summing ``interior`` over pixels gives the interior *area* unbiased by edges,
    and thresholding ``mouth`` at 0.5 cuts the lips exactly at their edge. The colours were chosen
    so every other colour either style paints scores at most about 0.2 on both features.
    """
    anchors = np.array([MOUTH_INTERIOR_BGR, MOUTH_LIP_BGR, _CREAM, _TEST_SKIN], dtype=np.float64)
    design = np.concatenate([anchors, np.ones((4, 1))], axis=1)
    interior = np.linalg.solve(design, [1.0, 0.0, 0.0, 0.0])
    mouth = np.linalg.solve(design, [1.0, 1.0, 0.0, 0.0])
    return np.stack([interior, mouth]).astype(np.float32)


_FEATURES = _colour_features()
_AA_GROWTH = 1.0  # pixels an anti-aliased cv2 polygon fill adds to a shape's width and height
_BLOB_THRESHOLD = 0.35  # mouth feature: below a 50/50 blend with skin (0.5), above any scene colour (~0.1)
_INTERIOR_DEADZONE = 0.25  # interior feature below this is not interior (scene colours reach ~0.2)


def measure_mouth(frame: np.ndarray) -> tuple[float, float]:
    """Read the mouth's (opening, width) back from a frame, in :class:`MouthTrack` units.

    How: two affine colour features (see ``_colour_features``) are computed for the whole frame,
    so the mouth is found wherever the head moved. The largest connected blob where the ``mouth``
    feature exceeds 0.35 (below the 0.5 of a 50/50 blend with skin, above the ~0.1 any other
    colour of either style reaches) is the lips plus interior; its roll is estimated from its
    second moments (the mouth is left-right symmetric) and undone on a small crop. Then

    * width = (horizontal extent of the blob, sub-pixel from the anti-aliased end columns, in
      512-pixels - 60) / 64, i.e. the inverse of the drawn lip extent;
    * opening = interior area / (interior width x the shape's fill factor) / 60, where interior
      area is the sum of the ``interior`` feature (with a 0.25..0.75 dead zone mapped to 0..1)
      and interior width is the measured lip extent minus the two corner lip thicknesses.

    Both undo the ~1 px that OpenCV's anti-aliased polygon fill adds to a shape's width and height.
    On drawn frames the error is below 0.015 at 512 px and 0.03 at 256 px (including head motion);
    after an H.264 (crf 23) round trip below about 0.07 at 512 and 0.1 at 256.

    Area over width, not vertical extent, makes the opening insensitive to head roll, and summing
    an affine feature makes it tolerant of anti-aliasing, H.264 and 4:2:0 chroma: they move colour
    between neighbouring pixels but hardly change its sum. A pixel blended 50/50 with lip or skin
    colour counts as half an interior pixel, so a cross-fade of two mouths measures between them.

    Parameters
    ----------
    frame
        A square-ish BGR uint8 frame of the rig, any size (units scale with ``frame.shape[0]``).

    Returns
    -------
    tuple[float, float]
        ``(opening, width)`` clipped to [0, 1]; ``(0.0, 0.5)`` when no mouth is visible.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"measure_mouth needs a BGR frame, got shape {frame.shape}")
    scale = frame.shape[0] / _REFERENCE_SIZE
    features = cv2.transform(frame.astype(np.float32), _FEATURES)
    mouth = features[..., 1]
    blob = (mouth > _BLOB_THRESHOLD).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(blob, connectivity=8)
    if count <= 1:
        return 0.0, 0.5
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < 40 * scale * scale:
        return 0.0, 0.5
    x, y, w, h = (int(v) for v in stats[best, :4])
    pad = int(6 + 0.3 * max(w, h))
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(frame.shape[1], x + w + pad), min(frame.shape[0], y + h + pad)
    crop = features[y0:y1, x0:x1]
    member = (labels[y0:y1, x0:x1] == best).astype(np.float32)
    # Roll: from the blob's second moments. Undo only a clearly defined, small angle.
    moments = cv2.moments(member, binaryImage=True)
    mu20, mu02, mu11 = moments["mu20"], moments["mu02"], moments["mu11"]
    angle = 0.0
    if abs(mu20 - mu02) > 0.2 * (mu20 + mu02):
        angle = 0.5 * math.degrees(math.atan2(2 * mu11, mu20 - mu02))  # axis of the larger spread
        if angle > 45:
            angle -= 90
        elif angle < -45:
            angle += 90
        if abs(angle) > 8:
            angle = 0.0
    cx, cy = centroids[best][0] - x0, centroids[best][1] - y0
    # keep only what is near this blob, so nothing else in the crop is counted
    near = cv2.dilate(member, np.ones((5, 5), np.uint8), iterations=max(1, int(round(2 * scale))))
    interior = np.clip((crop[..., 0] - _INTERIOR_DEADZONE) / (1 - 2 * _INTERIOR_DEADZONE), 0, 1) * near
    lips: np.ndarray = np.clip(crop[..., 1], 0, 1) * near
    if angle:
        rotation = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, 1.0)
        size = (crop.shape[1], crop.shape[0])
        lips = cv2.warpAffine(lips, rotation, size, flags=cv2.INTER_LINEAR)
    columns = np.clip((lips.max(axis=0) - 0.15) / 0.7, 0.0, 1.0)
    # cv2's anti-aliased polygon fill grows a shape by about half a pixel on every side: undo it
    extent_px = float(columns.sum()) - _AA_GROWTH
    inner_px = max(extent_px - 2 * MOUTH_LIP_SIDE * scale, 1.0)
    height_px = float(interior.sum()) / (_INTERIOR_FILL * (inner_px + _AA_GROWTH)) - _AA_GROWTH
    opening = height_px / (MOUTH_OPEN_MAX * scale)
    width = (extent_px / scale / 2 - MOUTH_HALF_WIDTH_MIN) / (MOUTH_HALF_WIDTH_MAX - MOUTH_HALF_WIDTH_MIN)
    return float(np.clip(opening, 0.0, 1.0)), float(np.clip(width, 0.0, 1.0))


# ================================================================================================
# Character videos
# ================================================================================================
