"""The CPU fallback: one picture made to talk by warping it, no neural network.

Where no GPU (FasterLivePortrait) is at hand, a character still has to come out of the admin's
picture. :class:`Puppet` cuts a square around the face and moves three things in it, frame by
frame:

* **mouth**: the lips part where they meet. A piecewise-affine warp on a triangulation of the
  face rig (:mod:`engine.makers.face_rig`: the lip lines, a row under the lower lip, the jaw
  outline, and fixed points on the nose, eyes, cheeks and around the face) lifts the upper lip a
  little and drops the lower lip and the jaw, so the chin and the skin between follow and
  nothing outside the face moves. The triangles between the inner lip lines are left out: that
  gap, and only it, is painted as a mouth interior, shaded dark from the picture's own lip
  colour, with a hint of upper teeth and of the tongue when it is open wide. Width stretches or
  narrows the lips about the mouth's centre (i/e against o/u), and narrow mouths open rounder.
  At opening 0 the inner lines meet, so pauses close the mouth even when the picture's was open:
  it closes as a jaw does, the lower lip and chin rising most of the way, each lip keeping its
  thickness.
* **eyes**: each eye (from the landmarks' lid lines, or measured in the picture where it differs
  from the skin beside it) gets a lid made of the skin just above it. A blink brings the lid's
  edge down from the eye's top to its bottom with a lash line at the edge.
* **head**: a small rotation and shift of the whole frame (one ``warpAffine``).

The per-frame poses (mouth from the audio, blinks every 2-6 s, head drift and nods) are the
rig's own (:func:`engine.synthetic.performance_params`, :func:`engine.synthetic.idle_params`), so
a puppet moves exactly like the drawn characters whose lip sync the tests measure.

Cost: the warp and the interior live on a region of interest around the lower face; at 512 px a
frame is a few milliseconds on one core (see ``benchmarks/make_character.py``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.spatial import Delaunay

from .. import synthetic
from ..errors import InputError
from ..features import FPS
from ..media import write_takes
from .face_rig import FaceRig, rig_from_points
from .picture import Landmarks, read_picture

log = logging.getLogger(__name__)

CROP_PER_FACE = 4.0
"""Side of the square crop, in eye-to-mouth distances: head and shoulders."""
MARGIN = 0.06
"""Extra picture around the crop, as a share of the output size, so head motion shows no border."""
OPEN_GAP = 0.45
"""Gap between the inner lips at opening 1, in mouth widths (inner gap over width about 0.6: wide open)."""
GAP_WIDTH_PER_EYES = 0.9
"""... of a mouth at most this wide, in eye distances (a person's is 0.6-0.9). A wider mouth (a
monkey's, a broad grin) opens no taller than a person's face would: the jaw drops, the lips do
not stretch with their width."""
UPPER_SHARE = 0.25
"""Share of the opening taken by the upper lip rising; the lower lip and jaw drop the rest."""
WIDTH_GAIN = 0.4
"""Horizontal stretch of the lips per unit of width away from neutral 0.5 (0.8x .. 1.2x)."""
SMOOTHING = 0.07
"""Gaussian smoothing of the warp, in mouth widths: no creases along the triangles' edges."""
JAW_SHARE = 0.8
"""How far the chin drops, as a share of the lower lip's drop (the jaw rotates; the lip rolls)."""
CORNER_DROP = 0.12
"""How far the mouth corners follow the jaw down, as a share of the opening."""
_GAP_EXPONENT = 2.0  # superellipse profile of the gap across the mouth: an ellipse, round at the corners
_ROUND_EXPONENT = 1.6  # ... and of a narrow, rounded mouth (o, u): rounder still
_COARSE = 2  # the warp field is computed on every other pixel
_COARSE_AREA = 60_000  # ... every third above this many pixels of region (the lips are exact anyway)
_MIN_TRIANGLE_AREA = 3.0  # px^2: smaller destination triangles are slivers
_NONE = -1  # no triangle: the gap between the lips
_TEETH_BGR = (226, 232, 238)
_TONGUE_BGR = (95, 95, 185)
_EYE_HALF_WIDTH = 0.22  # eye half-width per eye distance, for eyes measured in the picture
_EYE_HALF_HEIGHT = 0.55  # eye half-height per eye half-width


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _crop_with_border(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """``image[y0:y0+side, x0:x0+side]``, its outside filled by mirroring the picture at its edge
    (a replicated edge would show as streaks where the head moves or the jaw rises)."""
    height, width = image.shape[:2]
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + side), min(height, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError("the face lies outside the picture")
    region = image[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_REFLECT_101)
    return region


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    """An anti-aliased coverage mask (float32 0..1) of ``polygon`` (pixels, minus ``offset``)."""
    mask = np.zeros(shape, np.uint8)
    fixed = np.round((polygon - np.asarray(offset)) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [fixed], 255, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0


class _MouthWarp:
    """The lips, the lower lip's skin and the jaw as control points of a piecewise-affine warp.

    Points are split into lines (the lip lines), the jaw and fixed points; :meth:`targets` says
    where each goes for an opening and width, and :meth:`maps` turns that into ``cv2.remap``
    maps over the region of interest, with the gap between the lips marked."""

    def __init__(self, rig: FaceRig, side: int) -> None:
        across, down = rig.axes()
        self.across, self.down = across, down
        self.centre = rig.mouth_centre
        self.width = rig.mouth_width
        self.full_gap = OPEN_GAP * min(self.width, GAP_WIDTH_PER_EYES * rig.eye_distance)
        upper_in, lower_in = rig.upper_inner, rig.lower_inner
        # Where the lips meet at rest. A mouth open in the picture closes as a jaw does: the lower
        # lip rises most of the way, the upper lip comes down its share (the same split as opening).
        self.meeting = upper_in + UPPER_SHARE * (lower_in - upper_in)
        outer_half = max(2.0, self.width / 2)
        along = lambda points: (points - self.centre) @ across  # noqa: E731
        deep = lambda points: (points - self.centre) @ down  # noqa: E731

        # Across the mouth, -1 at one corner and 1 at the other, each side on its own scale: on a
        # face turned three-quarters the middle of the lips is much nearer the far corner.
        def across_mouth(points: np.ndarray, left: float, right: float) -> np.ndarray:
            position = along(points)
            return np.clip(
                np.where(position >= 0, position / max(right, 2.0), position / max(-left, 2.0)), -1, 1
            )

        inner_left, inner_right = float(along(upper_in[:1])[0]), float(along(upper_in[-1:])[0])
        outer_left, outer_right = float(along(rig.upper_outer[:1])[0]), float(along(rig.upper_outer[-1:])[0])
        self.t_inner = across_mouth(self.meeting, inner_left, inner_right)
        # ... and the whole lip goes with its edge, and the chin with the lower lip, so lips keep
        # their thickness: how far each inner point moves down (upper) or up (lower) to meet
        self.close_upper = deep(self.meeting) - deep(upper_in)
        self.close_lower = deep(self.meeting) - deep(lower_in)
        chin = rig.chin
        chin_depth = max(float(deep(chin[None])[0]), 0.6 * self.width)
        lower_depth = float(np.max(deep(rig.lower_outer)))
        # a row of skin between the lower lip and the chin, so the lip and chin move as one
        row_t = np.linspace(-0.9, 0.9, 7)
        row = (
            self.centre
            + np.outer(row_t * outer_half, across)
            + np.outer(np.full_like(row_t, lower_depth + 0.45 * (chin_depth - lower_depth)), down)
        )
        # cheeks at the mouth's level stay put; so does a ring outside the face
        cheeks = np.array(
            [
                self.centre + sign * across * 1.5 * outer_half + down * offset * self.width
                for sign in (-1, 1)
                for offset in (-0.35, 0.0, 0.4)
            ]
        )
        jaw = np.asarray(rig.jaw, np.float64)
        jaw_depth = deep(jaw)
        below = jaw_depth > deep(rig.corners).max()
        ring = self.centre + 1.35 * (jaw[below] - self.centre)
        points = [
            rig.upper_outer,
            upper_in,
            lower_in[1:-1],
            rig.lower_outer[1:-1],
            row,
            jaw,
            rig.still,
            cheeks,
            ring,
        ]
        kinds = [
            "upper_outer",
            "upper_inner",
            "lower_inner",
            "lower_outer",
            "row",
            "jaw",
            "still",
            "still",
            "still",
        ]
        self.slices: dict[str, slice] = {}
        start = 0
        for kind, block in zip(kinds[:6], points[:6]):
            self.slices[kind] = slice(start, start + len(block))
            start += len(block)
        source = np.concatenate(points).astype(np.float64)
        # the region of interest: everything that can move, and the fixed ring around it
        lo = np.floor(source.min(axis=0) - 2).clip(0, side)
        hi = np.ceil(source.max(axis=0) + 2).clip(0, side)
        self.roi = (int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))
        x0, x1, y0, y1 = self.roi
        frame = np.array(
            [
                [x0, y0],
                [x1, y0],
                [x0, y1],
                [x1, y1],
                [(x0 + x1) / 2, y0],
                [(x0 + x1) / 2, y1],
                [x0, (y0 + y1) / 2],
                [x1, (y0 + y1) / 2],
            ],
            np.float64,
        )
        inside = np.all((source >= lo) & (source <= hi), axis=1)
        inside[:start] = True  # moving points are always kept (clipped into the region)
        keep = np.flatnonzero(inside)
        self.source = np.concatenate([np.clip(source[keep], lo, hi), frame])
        remap = {old: new for new, old in enumerate(keep)}
        self.slices = {kind: slice(remap[s.start], remap[s.stop - 1] + 1) for kind, s in self.slices.items()}
        self.t_upper_outer = across_mouth(rig.upper_outer, outer_left, outer_right)
        self.t_lower_outer = across_mouth(rig.lower_outer[1:-1], outer_left, outer_right)
        self.row_t = row_t
        self.jaw_weight = _smoothstep(1.15 * np.clip(jaw_depth / chin_depth, 0, 1) ** 1.3)
        self.lower_depth, self.chin_depth = lower_depth, chin_depth
        self.source_gap = float(np.max(np.abs(deep(upper_in) - deep(lower_in))))
        # the topology: a Delaunay triangulation of the mouth wide open, less the gap
        opened = self.targets(1.0, 0.5)
        triangles = Delaunay(opened).simplices
        gap = self.gap_polygon(opened)
        centroids = opened[triangles].mean(axis=1)
        in_gap = np.array(
            [
                cv2.pointPolygonTest(gap.astype(np.float32), (float(x), float(y)), False) > 0
                for x, y in centroids
            ]
        )
        self.triangles = triangles[~in_gap]
        self.roi_grid = np.mgrid[y0:y1, x0:x1].astype(np.float32)  # (2, h, w): rows, columns
        # a large region (a face filling the picture) is worked out more coarsely still
        self.coarse = _COARSE if (x1 - x0) * (y1 - y0) <= _COARSE_AREA else _COARSE + 1
        step = self.coarse
        coarse_h, coarse_w = -(-(y1 - y0) // step), -(-(x1 - x0) // step)
        # pixel centres of the coarse grid, in canvas coordinates (cv2.resize's alignment)
        self.coarse_grid = (
            np.mgrid[0:coarse_h, 0:coarse_w].astype(np.float32) * step
            + (step - 1) / 2
            + np.array([y0, x0], np.float32)[:, None, None]
        )
        self.smoothing = max(1.0, SMOOTHING * self.width)
        # Smoothing spreads motion outwards: fade it out towards the region's edge, so that the
        # region meets the untouched picture without a seam.
        rows_c, columns_c = self.coarse_grid
        x0, x1, y0, y1 = self.roi
        to_edge = np.minimum.reduce([columns_c - x0, x1 - 1 - columns_c, rows_c - y0, y1 - 1 - rows_c])
        self.border = _smoothstep(to_edge / (3.0 * self.smoothing))
        # ... and on the lips themselves barely at all: they are a few pixels thick, and a wide blur
        # there would pull what lies between them (the picture's own open mouth) into view
        lips = np.zeros(rows_c.shape, np.uint8)
        outline = np.concatenate([rig.upper_outer, rig.lower_outer[::-1]])
        cv2.fillPoly(lips, [np.round((outline - (x0, y0)) / self.coarse).astype(np.int32)], 1)
        distance = cv2.distanceTransform(1 - lips, cv2.DIST_L2, 3) * self.coarse
        self.near_lips = 1.0 - _smoothstep(distance / (0.3 * self.width))
        self.near_lips_full = cv2.resize(self.near_lips, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        full_rows, full_columns = self.roi_grid
        self.full_along = (full_columns - self.centre[0]) * across[0] + (full_rows - self.centre[1]) * across[
            1
        ]
        self.full_down = (full_columns - self.centre[0]) * down[0] + (full_rows - self.centre[1]) * down[1]
        self.coarse_along = (columns_c - self.centre[0]) * across[0] + (rows_c - self.centre[1]) * across[1]
        self.coarse_down = (columns_c - self.centre[0]) * down[0] + (rows_c - self.centre[1]) * down[1]

    # ---- where the points go ---------------------------------------------------------------

    def targets(self, opening: float, width: float) -> np.ndarray:
        """Destination of every control point for an opening (0..1) and width (0..1, 0.5 neutral)."""
        q = self.source.copy()
        gap = float(np.clip(opening, 0, 1)) * self.full_gap
        roundness = float(np.clip((0.5 - width) * 2, 0, 1))
        exponent = _GAP_EXPONENT + (_ROUND_EXPONENT - _GAP_EXPONENT) * roundness
        stretch = 1.0 + WIDTH_GAIN * (float(np.clip(width, 0, 1)) - 0.5)

        def profile(t: np.ndarray) -> np.ndarray:
            return np.power(np.clip(1.0 - np.power(np.abs(t), exponent), 0.0, 1.0), 1.0 / exponent)

        def widen(points: np.ndarray) -> np.ndarray:
            return points + np.outer(((points - self.centre) @ self.across) * (stretch - 1.0), self.across)

        rise = UPPER_SHARE * gap * profile(self.t_inner)
        drop = (1 - UPPER_SHARE) * gap * profile(self.t_inner)
        corner = CORNER_DROP * gap
        jaw_drop = JAW_SHARE * (1 - UPPER_SHARE) * gap
        s = self.slices
        ui = widen(self.meeting - np.outer(rise, self.down))
        ui[[0, -1]] = widen(self.meeting[[0, -1]] + corner * self.down)
        q[s["upper_inner"]] = ui
        q[s["lower_inner"]] = widen(self.meeting[1:-1] + np.outer(drop[1:-1], self.down))
        up_outer = UPPER_SHARE * gap * profile(self.t_upper_outer) * 0.9
        up_outer -= np.interp(self.t_upper_outer, self.t_inner, self.close_upper)
        uo = widen(self.source[s["upper_outer"]] - np.outer(up_outer, self.down))
        uo[[0, -1]] = widen(self.source[s["upper_outer"]][[0, -1]] + corner * self.down)
        q[s["upper_outer"]] = uo
        lo_drop = jaw_drop * (0.4 + 0.6 * profile(self.t_lower_outer))
        lo_drop += np.interp(self.t_lower_outer, self.t_inner, self.close_lower)
        q[s["lower_outer"]] = widen(self.source[s["lower_outer"]] + np.outer(lo_drop, self.down))
        chin_drop = jaw_drop + JAW_SHARE * float(self.close_lower[len(self.close_lower) // 2])
        q[s["row"]] = self.source[s["row"]] + np.outer(
            chin_drop * (0.75 + 0.25 * profile(self.row_t)), self.down
        )
        q[s["jaw"]] = self.source[s["jaw"]] + np.outer(chin_drop * self.jaw_weight, self.down)
        return q

    def inner_lines(self, targets: np.ndarray, points: int = 41) -> tuple[np.ndarray, np.ndarray]:
        """The upper and lower inner lip lines, corner to corner, resampled smoothly (a monotone
        cubic through the control points) so an open mouth has round ends, not a polygon's."""
        upper = targets[self.slices["upper_inner"]]
        lower = np.concatenate([upper[:1], targets[self.slices["lower_inner"]], upper[-1:]])
        along_upper = (upper - self.centre) @ self.across
        along_lower = (lower - self.centre) @ self.across
        if np.any(np.diff(along_upper) <= 0) or np.any(np.diff(along_lower) <= 0):
            return upper, lower  # a line that folds back (a strongly tilted mouth): keep the points
        grid = np.linspace(along_upper[0], along_upper[-1], points)
        lines = []
        for line, along in ((upper, along_upper), (lower, along_lower)):
            depth = PchipInterpolator(along, (line - self.centre) @ self.down)(grid)
            lines.append(self.centre + np.outer(grid, self.across) + np.outer(depth, self.down))
        return lines[0], lines[1]

    def gap_polygon(self, targets: np.ndarray) -> np.ndarray:
        """The open mouth: the upper inner line left to right, the lower one back."""
        upper, lower = self.inner_lines(targets)
        return np.concatenate([upper, lower[-2:0:-1]])

    # ---- maps --------------------------------------------------------------------------------

    def _lip_box(self, upper: np.ndarray, lower: np.ndarray) -> tuple[int, int, int, int]:
        """The region-of-interest pixels around the inner lips (with a margin), as slice bounds."""
        x0, x1, y0, y1 = self.roi
        points = np.concatenate([upper, lower])
        margin = 0.15 * self.width + 2 * self.coarse
        low = np.floor(points.min(axis=0) - margin).astype(int) - (x0, y0)
        high = np.ceil(points.max(axis=0) + margin).astype(int) - (x0, y0)
        return (max(0, low[0]), min(x1 - x0, high[0]), max(0, low[1]), min(y1 - y0, high[1]))

    def maps(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` maps over the region of interest (canvas coordinates): each triangle's
        pixels sample the picture through that triangle's affine map; the gap samples in place.

        The field is worked out on every other pixel and smoothed there (a quarter of the work;
        it is smooth anyway), then scaled up to the region's full size."""
        x0, x1, y0, y1 = self.roi
        rows, columns = self.coarse_grid
        ids = np.full(rows.shape, _NONE, np.int32)
        destination = targets[self.triangles]  # (k, 3, 2)
        source = self.source[self.triangles]
        corners = np.round((destination - (x0, y0)) * (16 / self.coarse)).astype(np.int32)
        for index in range(len(corners)):
            cv2.fillConvexPoly(ids, corners[index].reshape(-1, 1, 2), index, cv2.LINE_8, 4)
        homogeneous = np.concatenate([destination, np.ones((len(destination), 3, 1))], axis=2)  # (k, 3, 3)
        safe = np.abs(np.linalg.det(homogeneous)) > 1e-6
        identity = np.array([[1, 0], [0, 1], [0, 0]], np.float64)
        affine = np.broadcast_to(identity, (len(destination) + 1, 3, 2)).copy()  # the last: the gap, in place
        affine[:-1][safe] = np.linalg.solve(homogeneous[safe], source[safe])
        # as shifts: source - destination = x * (a - 1) + y * b + c, per triangle
        shifts = (affine - identity).astype(np.float32).reshape(-1, 6)[ids]  # _NONE = -1 picks the last
        shift_x = columns * shifts[..., 0] + rows * shifts[..., 2] + shifts[..., 4]
        shift_y = columns * shifts[..., 1] + rows * shifts[..., 3] + shifts[..., 5]
        # Piecewise-affine fields crease along triangle edges (a jaw line would come out as a saw):
        # smooth them. The two lips move apart (or together, closing a mouth open in the picture),
        # so each side of the line between them is smoothed on its own, and the gap is left out.
        solid = (ids != _NONE).astype(np.float32)
        upper = targets[self.slices["upper_inner"]]
        lower = np.concatenate([upper[:1], targets[self.slices["lower_inner"]], upper[-1:]])
        along = (upper - self.centre) @ self.across
        middle = ((upper + lower) / 2 - self.centre) @ self.down
        # Which side of the line between the lips each pixel is on. Between the mouth corners the
        # split is sharp (the lips part there); beyond them it fades over a band, or the jaw's
        # motion below the line against the cheek's above would tear the face's outline.
        left, right = float(along[0]), float(along[-1])
        offset = self.coarse_down - np.interp(self.coarse_along, along, middle)
        coarse_below = (offset > 0).astype(np.float32)
        soft = _smoothstep(offset / (0.4 * self.width) + 0.5)
        beyond = _smoothstep(
            np.maximum(self.coarse_along - right, left - self.coarse_along) / (0.2 * self.width)
        )
        coarse_blend = coarse_below * (1 - beyond) + soft * beyond
        size = (x1 - x0, y1 - y0)
        full_blend = cv2.resize(coarse_blend, size, interpolation=cv2.INTER_LINEAR)
        bx0, bx1, by0, by1 = self._lip_box(upper, lower)
        box_along = self.full_along[by0:by1, bx0:bx1]
        box_offset = self.full_down[by0:by1, bx0:bx1] - np.interp(box_along, along, middle)
        box_beyond = _smoothstep(np.maximum(box_along - right, left - box_along) / (0.2 * self.width))
        full_blend[by0:by1, bx0:bx1] = (box_offset > 0) * (1 - box_beyond) + _smoothstep(
            box_offset / (0.4 * self.width) + 0.5
        ) * box_beyond
        sigma = self.smoothing / self.coarse
        sides = []
        for side in (coarse_below, 1.0 - coarse_below):
            weight = solid * side
            spread_weight = cv2.GaussianBlur(weight, (0, 0), sigma) + 1e-6
            own_pixels = weight > 0
            fields = []
            for shift in (shift_x, shift_y):
                spread = cv2.GaussianBlur(shift * weight, (0, 0), sigma) / spread_weight
                # the raw field on this side's own lip pixels, extended by the spread beyond them
                smooth = spread + self.near_lips * (np.where(own_pixels, shift, spread) - spread)
                fields.append(cv2.resize(smooth * self.border, size, interpolation=cv2.INTER_LINEAR))
            sides.append(fields)
        shift_x = sides[1][0] + full_blend * (sides[0][0] - sides[1][0])  # the lips' motions never mix
        shift_y = sides[1][1] + full_blend * (sides[0][1] - sides[1][1])
        # On the lips themselves, the exact piecewise-affine field, pixel by pixel: the coarse grid
        # would blur the line where they meet by a pixel or two.
        if bx1 > bx0 and by1 > by0:
            box_ids = np.full((by1 - by0, bx1 - bx0), _NONE, np.int32)
            box_corners = np.round((destination - (x0 + bx0, y0 + by0)) * 16).astype(np.int32)
            for index in range(len(box_corners)):
                cv2.fillConvexPoly(box_ids, box_corners[index].reshape(-1, 1, 2), index, cv2.LINE_8, 4)
            full_rows_box, full_columns_box = self.roi_grid[:, by0:by1, bx0:bx1]
            box_shifts = (affine - identity).astype(np.float32).reshape(-1, 6)[box_ids]
            exact_x = (
                full_columns_box * box_shifts[..., 0]
                + full_rows_box * box_shifts[..., 2]
                + box_shifts[..., 4]
            )
            exact_y = (
                full_columns_box * box_shifts[..., 1]
                + full_rows_box * box_shifts[..., 3]
                + box_shifts[..., 5]
            )
            # a sliver of a triangle (the corner of an almost closed mouth) has a wild affine map:
            # keep the smooth field there
            formed = np.append(np.abs(np.linalg.det(homogeneous)) > 2 * _MIN_TRIANGLE_AREA, False)
            near = self.near_lips_full[by0:by1, bx0:bx1] * formed[box_ids]
            shift_x[by0:by1, bx0:bx1] += near * (exact_x - shift_x[by0:by1, bx0:bx1])
            shift_y[by0:by1, bx0:bx1] += near * (exact_y - shift_y[by0:by1, bx0:bx1])
        full_rows, full_columns = self.roi_grid
        return full_columns + shift_x, full_rows + shift_y


class Puppet:
    """A picture, cropped around its face, that can be posed frame by frame.

    Parameters
    ----------
    picture
        BGR uint8 picture (any size).
    face
        Where its moving parts are (picture pixels): a :class:`~engine.makers.face_rig.FaceRig`
        (from landmarks or drawn by proportions), or :class:`~engine.makers.picture.Landmarks`
        (mouth, width and eyes: a rig of average proportions is drawn from them).
    size
        Side of the square output frames (even).
    gap_bgr
        Colour of the open mouth. None (default) paints a natural interior from the picture's lip
        colour; the tests and benchmarks pass :data:`engine.synthetic.MOUTH_INTERIOR_BGR` on a
        picture of the rig, so that :func:`engine.synthetic.measure_mouth` can read the opening.

    Raises
    ------
    InputError
        Landmarks that make no face (eyes on top of each other, mouth above the eyes).
    """

    def __init__(
        self,
        picture: np.ndarray,
        face: FaceRig | Landmarks,
        size: int = 512,
        gap_bgr: tuple[int, int, int] | None = None,
    ) -> None:
        if size < 64 or size % 2:
            raise InputError(f"puppet size {size} must be an even number of pixels, at least 64")
        rig = face if isinstance(face, FaceRig) else rig_from_points(face.mouth, face.mouth_width, face.eyes)
        rig.check()
        (e1x, e1y), (e2x, e2y) = rig.eye_centres
        mx, my = rig.mouth_centre
        ex, ey = (e1x + e2x) / 2, (e1y + e2y) / 2
        face_size = math.hypot(mx - ex, my - ey)
        height, width = picture.shape[:2]
        crop = min(CROP_PER_FACE * face_size, float(min(width, height)))
        cx = min(max((ex + mx) / 2, crop / 2), width - crop / 2)
        cy = min(max(ey + 0.25 * face_size, crop / 2), height - crop / 2)
        self.size = size
        self.pad = int(round(MARGIN * size))
        side = size + 2 * self.pad
        region = int(math.ceil(crop * side / size))
        x0, y0 = int(round(cx - region / 2)), int(round(cy - region / 2))
        source = _crop_with_border(picture, x0, y0, region)
        shrink = region > side
        self.canvas = cv2.resize(
            source, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        )
        scale = side / region
        self.rig = rig.mapped(scale, x0, y0)
        self.mouth = tuple(float(v) for v in self.rig.mouth_centre)
        self.eyes = tuple(tuple(float(v) for v in eye) for eye in self.rig.eye_centres)
        self.face = face_size * scale
        self.eye_half_width = _EYE_HALF_WIDTH * self.rig.eye_distance
        self.pivot = (self.mouth[0], self.mouth[1] + 0.7 * self.face)
        self.motion_scale = size / 512.0
        self._gap_exact = gap_bgr is not None
        self._warp = _MouthWarp(self.rig, side)
        self._rest = self._warp.source_gap > 0.03 * self._warp.width  # an open mouth in the picture: close it
        self._interior_setup(gap_bgr)
        self._eye_setup()

    @property
    def lips_meet(self) -> tuple[float, float]:
        """Where the lips meet at rest, in output pixels: the middle of the line they close on,
        which for a mouth open in the picture lies between its lips (nearer the upper)."""
        x, y = self._warp.meeting[len(self._warp.meeting) // 2] - self.pad
        return float(x), float(y)

    # ---- set-up ----------------------------------------------------------------------------

    def _roi(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int]:
        side = self.canvas.shape[0]
        return (
            max(0, int(math.floor(x0))),
            min(side, int(math.ceil(x1))),
            max(0, int(math.floor(y0))),
            min(side, int(math.ceil(y1))),
        )

    def _interior_setup(self, gap_bgr: tuple[int, int, int] | None) -> None:
        """The interior's colours, from the picture: lips (their median), and the brightest
        light in the face (teeth are never brighter than the picture's own highlights)."""
        x0, x1, y0, y1 = self._warp.roi
        patch = self.canvas[y0:y1, x0:x1]
        lips = (
            _polygon_mask(
                patch.shape[:2], np.concatenate([self.rig.upper_outer, self.rig.lower_outer[::-1]]), (x0, y0)
            )
            > 0.5
        )
        lip = (
            np.median(patch[lips], axis=0).astype(np.float32)
            if lips.sum() >= 4
            else np.array([90, 90, 150], np.float32)
        )
        brightest = float(np.percentile(patch.astype(np.float32).mean(axis=2), 99))
        light = min(1.0, brightest / 235.0)
        self.lip_bgr = lip
        self.gap_bgr = (
            np.array(gap_bgr, np.float32)
            if gap_bgr is not None
            else 0.22 * lip + np.array([6, 4, 12], np.float32)
        )
        self.teeth_bgr = np.clip((0.82 * np.array(_TEETH_BGR, np.float32) + 0.18 * lip) * light, 0, 255)
        self.tongue_bgr = np.clip(0.55 * lip + 0.45 * np.array(_TONGUE_BGR, np.float32) * light, 0, 255) * 0.8

    def _eye_mask(self, ex: float, ey: float) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """The eye's region of interest and a soft mask of the eye in it.

        From the landmarks' lid lines when the rig has them. Otherwise (points given by hand or
        from a face box) the eye is measured, because how big an eye is varies too much (a
        photo's almond eye, a cartoon's round one) to guess from proportions, yet a blink must
        cover all of it: the skin colour is the median just beside it, and the eye is the convex
        hull of the connected region around its centre that clearly differs from that skin.
        Where that region is implausible, an ellipse from face proportions stands in.
        """
        ew = self.eye_half_width
        roi = self._roi(ex - 1.7 * ew, ex + 1.7 * ew, ey - 1.6 * ew, ey + 1.6 * ew)
        x0, x1, y0, y1 = roi
        if self.rig.method == "landmarks":
            eye = min(self.rig.eyes, key=lambda e: float(np.hypot(*(e.centre - (ex, ey)))))
            outline = np.concatenate([eye.upper, eye.lower[::-1]])
            mask: np.ndarray = (_polygon_mask((y1 - y0, x1 - x0), outline, (x0, y0)) * 255).astype(np.uint8)
            grow = max(1, int(round(0.1 * ew)))
            mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=grow)
            mask = cv2.GaussianBlur(mask, (0, 0), max(0.7, 0.05 * ew))  # the lid's edge fades into the skin
            return roi, mask.astype(np.float32) / 255.0
        patch = self.canvas[y0:y1, x0:x1].astype(np.float32)
        xs, ys = np.arange(x0, x1) - ex, np.arange(y0, y1) - ey
        centre = np.array([ey - y0, ex - x0])
        hull = None
        beside = (np.abs(ys)[:, None] < 0.3 * ew) & (np.abs(xs)[None, :] > 1.3 * ew)
        if beside.sum() >= 4:
            skin = np.median(patch[beside], axis=0)
            difference = np.linalg.norm(patch - skin, axis=2)
            mask = (difference > max(30.0, 0.35 * float(np.percentile(difference, 95)))).astype(np.uint8)
            count, labels = cv2.connectedComponents(mask, connectivity=8)
            members = np.argwhere(labels > 0)
            if len(members):
                nearest = members[np.argmin(np.sum((members - centre) ** 2, axis=1))]
                points = np.argwhere(labels == labels[tuple(nearest)])[:, ::-1].astype(np.int32)
                height = np.ptp(points[:, 1]) + 1
                width = np.ptp(points[:, 0]) + 1
                if (
                    np.hypot(*(nearest - centre)) <= 0.5 * ew
                    and 1.0 * ew <= width <= 2.8 * ew
                    and 0.4 * ew <= height <= 3.0 * ew
                ):
                    hull = cv2.convexHull(points)
        mask = np.zeros(patch.shape[:2], np.uint8)
        if hull is not None:
            cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA)
        else:
            log.debug("eye at %.0f,%.0f not measurable: an ellipse from proportions", ex, ey)
            centre_px = (int(round(ex - x0)), int(round(ey - y0)))
            cv2.ellipse(
                mask, centre_px, (int(ew), int(_EYE_HALF_HEIGHT * ew)), 0, 0, 360, 255, -1, cv2.LINE_AA
            )
        grow = max(1, int(round(0.06 * ew)))  # a little more than the eye: its rim and lashes
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=grow)
        return roi, mask.astype(np.float32) / 255.0

    def _eye_setup(self) -> None:
        self.eye_rois = []
        self._eyes = []
        for ex, ey in self.eyes:
            roi, cover = self._eye_mask(ex, ey)
            x0, x1, y0, y1 = roi
            columns = np.flatnonzero(cover.max(axis=0) > 0.5)
            if len(columns) < 2:
                continue
            inside = cover[:, columns] > 0.5
            rows = np.arange(cover.shape[0], dtype=np.float32)[:, None]
            top = np.where(inside, rows, np.inf).min(axis=0) - 0.5
            bottom = np.where(inside, rows, -np.inf).max(axis=0) + 0.5
            lid = self._lid(roi, cover, float((bottom - top).max()))
            ring = (
                cv2.dilate((cover > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=4) > 0
            ) & (cover < 0.5)
            eye_pixels = self.canvas[y0:y1, x0:x1][cover > 0.5].astype(np.float32)
            luminance = eye_pixels.mean(axis=1)
            dark = (
                eye_pixels[luminance <= np.percentile(luminance, 10)].mean(axis=0)
                if len(eye_pixels)
                else np.zeros(3)
            )
            skin = self.canvas[y0:y1, x0:x1][ring].astype(np.float32).mean(axis=0) if ring.any() else dark
            lash = tuple(float(v) for v in 0.55 * dark + 0.45 * 0.8 * skin)
            thickness = max(1, int(round(0.035 * (bottom - top).max())))
            lashed = (bottom - top) > 0.35 * (bottom - top).max()  # not the steep ends of the eye
            self.eye_rois.append(roi)
            self._eyes.append((columns, top, bottom, rows, cover[:, :, None], lid, lash, thickness, lashed))

    def _lid(self, roi: tuple[int, int, int, int], cover: np.ndarray, eye_height: float) -> np.ndarray:
        """The lid: the skin around the eye continued over it (inpainted, so it meets the face
        without a seam) and coloured like the skin just above the eye, between the eye and the
        brow (that skin is what a lid is). Pixels clearly darker than that skin (brow, lashes, a
        dark background beside the face) are never inpainted from. It shades a touch darker
        towards the lashes."""
        x0, x1, y0, y1 = roi
        hole = cv2.dilate((cover > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
        patch = self.canvas[y0:y1, x0:x1]
        band = max(3, int(round(0.5 * eye_height)))
        above = np.zeros_like(hole, bool)
        for column in np.flatnonzero(hole.max(axis=0)):
            first = int(np.argmax(hole[:, column]))
            above[max(0, first - band) : first, column] = True
        luminance = patch.astype(np.float32).mean(axis=2)
        source = hole
        skin = None
        if above.sum() >= 4:
            candidates = patch[above].astype(np.float32)
            bright = candidates.mean(axis=1) >= np.percentile(candidates.mean(axis=1), 40)
            skin = np.median(candidates[bright], axis=0)
            dark = (luminance < float(skin.mean()) - 35).astype(np.uint8)
            if (hole | dark).mean() < 0.9:  # leave something to inpaint from
                source = hole | dark
        lid = cv2.inpaint(patch, source, max(3.0, 0.15 * self.eye_half_width), cv2.INPAINT_TELEA).astype(
            np.float32
        )
        inside = cover > 0.5
        if skin is not None and inside.any():
            lid = lid + 0.6 * (skin - np.median(lid[inside], axis=0))
        rows = np.arange(patch.shape[0], dtype=np.float32)[:, None, None]
        tops = np.where(hole.any(axis=0), hole.argmax(axis=0), 0)[None, :, None]
        lid = lid * (1.0 - 0.06 * np.clip((rows - tops) / max(eye_height, 1.0), 0, 1))
        return np.clip(lid, 0, 255).astype(np.uint8)

    # ---- per frame -------------------------------------------------------------------------

    def _pose_mouth(self, frame: np.ndarray, opening: float, width: float) -> None:
        warp = self._warp
        targets = warp.targets(opening, width)
        map_x, map_y = warp.maps(targets)
        x0, x1, y0, y1 = warp.roi
        roi = cv2.remap(self.canvas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        gap = warp.gap_polygon(targets)
        if float(np.clip(opening, 0, 1)) * warp.full_gap > 0.3:
            self._paint_interior(roi, gap, targets, opening)
        frame[y0:y1, x0:x1] = roi

    def _paint_interior(self, roi: np.ndarray, gap: np.ndarray, targets: np.ndarray, opening: float) -> None:
        """The mouth's inside, between the inner lip lines only: dark, darker at the back, a band
        of upper teeth under the upper lip, the tongue low in a wide-open mouth."""
        warp = self._warp
        x0, _, y0, _ = warp.roi
        box_lo = np.floor(gap.min(axis=0)).astype(int) - 2
        box_hi = np.ceil(gap.max(axis=0)).astype(int) + 3
        bx0, by0 = max(box_lo[0], x0), max(box_lo[1], y0)
        bx1, by1 = min(box_hi[0], x0 + roi.shape[1]), min(box_hi[1], y0 + roi.shape[0])
        if bx1 <= bx0 or by1 <= by0:
            return
        alpha = _polygon_mask((by1 - by0, bx1 - bx0), gap, (bx0, by0))[..., None]
        view = roi[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
        if self._gap_exact:
            view[:] = np.clip(view + alpha * (self.gap_bgr - view) + 0.5, 0, 255).astype(np.uint8)
            return
        rows, columns = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
        offset_x, offset_y = columns - warp.centre[0], rows - warp.centre[1]
        a = offset_x * warp.across[0] + offset_y * warp.across[1]
        b = offset_x * warp.down[0] + offset_y * warp.down[1]
        upper, lower = warp.inner_lines(targets)
        along = lambda points: (points - warp.centre) @ warp.across  # noqa: E731
        deep = lambda points: (points - warp.centre) @ warp.down  # noqa: E731
        top = np.interp(a, along(upper), deep(upper))
        bottom = np.interp(a, along(lower), deep(lower))
        height = np.maximum(bottom - top, 1e-3)
        v = np.clip((b - top) / height, 0, 1)
        left_end, right_end = float(along(upper[:1])[0]), float(along(upper[-1:])[0])
        u = np.clip(
            np.where(a >= 0, a / max(right_end, 1.0), a / min(left_end, -1.0)), 0, 1
        )  # 1 at either corner
        open_share = float(np.clip(opening, 0, 1))
        depth = 1.0 - np.abs(2 * v - 1)  # 1 in the middle of the gap: the back of the mouth
        colour = self.gap_bgr * (1.0 - 0.45 * depth[..., None]) * (1.0 - 0.25 * u[..., None])
        pixel = max(1.0, self.size / 512.0)
        teeth_height = np.minimum(0.08 * warp.width, 0.4 * height)
        teeth = (
            _smoothstep((teeth_height - (b - top)) / (1.2 * pixel))
            * _smoothstep((0.62 - u) / 0.2)
            * min(1.0, open_share / 0.25)
        )
        teeth_colour = (
            self.teeth_bgr
            * (1.0 - 0.35 * u[..., None])
            * (0.85 + 0.15 * ((b - top) < 0.6 * teeth_height))[..., None]
        )
        colour = colour + teeth[..., None] * 0.9 * (teeth_colour - colour)
        tongue_top = bottom - 0.4 * height * np.clip(1 - (u / 0.8) ** 2, 0, 1)
        tongue = _smoothstep((b - tongue_top) / (1.5 * pixel)) * min(1.0, max(0.0, (open_share - 0.3) / 0.4))
        colour = colour + tongue[..., None] * 0.8 * (self.tongue_bgr - colour)
        mixed = view + alpha * 0.97 * (colour - view)
        view[:] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)

    def _pose_eyes(self, frame: np.ndarray, blink: float) -> None:
        """Lower the lids: above an edge that sweeps from the eye's top to its bottom, the lid shows."""
        for roi, (columns, top, bottom, rows, cover, lid, lash, thickness, lashed) in zip(
            self.eye_rois, self._eyes
        ):
            x0, x1, y0, y1 = roi
            edge = top + blink * (bottom - top)
            full = np.full(cover.shape[1], -1.0, np.float32)
            full[columns] = edge
            alpha = np.clip(full[None, :] - rows + 0.5, 0.0, 1.0)[..., None] * cover
            view = frame[y0:y1, x0:x1]
            view[:] = np.clip(view + alpha * (lid.astype(np.float32) - view) + 0.5, 0, 255).astype(np.uint8)
            xs = columns[lashed].astype(np.float32)
            if len(xs) >= 4:  # the lash line is a smooth arc, whatever the hull's corners
                edge_line = np.polyval(np.polyfit(xs, edge[lashed], 2), xs)
            else:
                edge_line = edge[lashed]
            points = np.stack([xs, edge_line], axis=1)
            fixed = np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)  # 4 bits of sub-pixel precision
            cv2.polylines(view, [fixed], False, lash, thickness, cv2.LINE_AA, 4)

    def frame(self, params: synthetic.FaceParams) -> np.ndarray:
        """One BGR frame for a pose (mouth, blink and head as in the rig; gaze is ignored)."""
        frame = self.canvas.copy()
        if self._rest or params.opening > 1e-3 or abs(params.width - 0.5) > 1e-3:
            self._pose_mouth(frame, params.opening, params.width)
        if params.blink > 0.01:
            self._pose_eyes(frame, float(np.clip(params.blink, 0.0, 1.0)))
        matrix = cv2.getRotationMatrix2D(self.pivot, float(params.head_angle), 1.0)
        matrix[0, 2] += params.head_dx * self.motion_scale - self.pad
        matrix[1, 2] += params.head_dy * self.motion_scale - self.pad
        return cv2.warpAffine(
            frame, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def puppet_performance(
    picture: Path,
    face: FaceRig | Landmarks,
    audio: np.ndarray,
    sample_rate: int,
    out_dir: Path,
    size: int = 512,
    seed: int = 0,
    idle_s: float = 12.0,
    progress: Callable[[int], None] | None = None,
    *,
    gap_bgr: tuple[int, int, int] | None = None,
) -> tuple[Path, Path]:
    """Write the puppet's speech take (with ``audio``) and idle take into ``out_dir``.

    Parameters
    ----------
    picture, face
        The character and where its lips, jaw and eyes are (picture pixels; see :class:`Puppet`).
    audio, sample_rate
        What the speech take says (mono); the mouth follows its :func:`engine.synthetic.mouth_track`.
    out_dir
        Gets ``speech.mp4`` and ``idle.mp4`` (written atomically).
    size
        Side of the square videos.
    seed
        Seeds blinks and head motion (the idle take uses ``seed + 1``).
    idle_s
        Length of the idle take.
    progress
        Called with 1 after each frame. It may raise (a cancellation, say): the take being
        written is then removed.
    gap_bgr
        Colour of the open mouth (see :class:`Puppet`).

    Returns
    -------
    tuple[Path, Path]
        ``(speech.mp4, idle.mp4)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or len(audio) < sample_rate // 2:
        raise InputError("the puppet needs at least half a second of mono speech")
    puppet = Puppet(read_picture(picture), face, size, gap_bgr)
    speech_video, idle_video = write_takes(
        out_dir,
        audio,
        sample_rate,
        (puppet.frame(params) for params in synthetic.performance_params(audio, sample_rate, seed)),
        (
            puppet.frame(params)
            for params in synthetic.idle_params(max(1, int(round(idle_s * FPS))), seed + 1)
        ),
        size=size,
        progress=progress,
    )
    log.info(
        "puppet of %s: %s (%.1f s) and %s (%.1f s) at %d px",
        os.path.basename(picture),
        speech_video.name,
        len(audio) / sample_rate,
        idle_video.name,
        idle_s,
        size,
    )
    return speech_video, idle_video
