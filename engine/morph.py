"""Optical-flow transitions between two recorded frames.

A join between segment A and segment B becomes a short morph: Farneback flow A->B and B->A
between A's last frame and B's first, then for each in-between time t, A warped forward by t,
B warped backward by 1 - t, blended by t. The face slides into its new pose instead of jumping.
Where the face's landmarks are known, the flow on the face is the similarity they give instead
(:func:`face_transform`): flow between two expressions smears the lips, a face moved whole does not.
A morph's length counts its two recorded end frames (t = 0 and t = 1, shown as they are), so a
5-frame morph synthesises 3 (see :class:`MorphSettings`).

Cost decides how this is done, because at joins morph frames are a large share of the output:

* flow is computed on small grey copies (``flow_size``) and scaled up;
* warping happens in YUV 4:2:0, the encoder's own format: a full-size luma plane and two
  quarter-size chroma planes are half the pixels of BGR, and the result goes to the encoder
  without another conversion;
* each frame's sampling maps are enlarged straight from the small flow in one resize (see
  :class:`_MapMaker`), into buffers the render keeps (:class:`MorphWorkspace`), because
  allocating them anew costs more than computing them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MorphSettings:
    """Morph length and optical-flow parameters.

    A morph of ``n`` frames runs ``t = 0, 1/(n-1), ..., 1`` (the seed's "for t in 0..1"): its
    first frame is A's last frame as recorded, its last frame B's first, and the ``n - 2`` frames
    between are synthesised. The morph takes ``min_frames`` when the two frames' thumbnails differ
    by ``near`` grey levels (mean absolute difference) or less, ``max_frames`` from ``far`` on,
    linearly in between: bigger jumps get more time.
    """

    min_frames: int = 5
    max_frames: int = 12
    near: float = 3.0
    far: float = 20.0
    flow_size: int = 64
    still_px: float = 0.25  # if no flow vector reaches this (full-size pixels), a cross-fade is exact
    # Where the library knows its face's landmarks (v2, measured with the landmark model), the face
    # moves as a whole by the similarity they give and its two expressions cross-fade aligned:
    # optical flow between a closed mouth and an open one drags the lips into a smear.
    # Measured with benchmarks/morphs.py on the shared clips.
    face_guided: bool = True
    face_grow: float = 1.6  # the face region: the landmarks' hull grown this much about its centre

    def __post_init__(self) -> None:
        if not 3 <= self.min_frames <= self.max_frames:
            raise ValueError("a morph needs 3 <= min_frames <= max_frames (two end frames and one between)")

    def length(self, distance: float) -> int:
        """Morph length, end frames included, for a thumbnail distance (mean absolute grey-level
        difference)."""
        span = max(self.far - self.near, 1e-6)
        fraction = min(max((distance - self.near) / span, 0.0), 1.0)
        return int(round(self.min_frames + fraction * (self.max_frames - self.min_frames)))

    def inbetweens(self, distance: float) -> int:
        """How many frames a morph synthesises between its two recorded end frames."""
        return self.length(distance) - 2


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]  # stub: flow may be None (allocated)
        a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0
    )


def face_mask(points: np.ndarray, small: int, full: int, *, grow: float) -> np.ndarray:
    """Where the face is, on the small grid: 1 inside the hull of ``points`` (full-size pixels)
    grown by ``grow`` about its centre, feathered to 0 outside."""
    cell = full / small
    centre = points.mean(axis=0)
    grown = ((points - centre) * grow + centre + 0.5) / cell - 0.5  # on the small grid
    hull = cv2.convexHull(np.round(grown).astype(np.int32))
    mask = np.zeros((small, small), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, small / 32))


def guide_flow(transform: np.ndarray, small: int, full: int) -> np.ndarray:
    """The flow, on the small grid in small-grid pixels, of a 2 x 3 affine ``transform`` of
    full-size pixel positions: where each point of one frame goes in the other."""
    cell = full / small
    centres = (np.arange(small, dtype=np.float32) + 0.5) * cell - 0.5
    x, y = np.meshgrid(centres, centres)
    moved_x = transform[0, 0] * x + transform[0, 1] * y + transform[0, 2]
    moved_y = transform[1, 0] * x + transform[1, 1] * y + transform[1, 2]
    return (np.dstack([moved_x - x, moved_y - y]) / cell).astype(np.float32)


def face_transform(points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray | None:
    """The similarity (rotation, scale, shift) taking face points ``a`` onto ``b``, or None."""
    ok = np.isfinite(points_a).all(axis=1) & np.isfinite(points_b).all(axis=1)
    if ok.sum() < 3:
        return None
    transform, _ = cv2.estimateAffinePartial2D(
        points_a[ok].astype(np.float32), points_b[ok].astype(np.float32), method=cv2.LMEDS
    )
    return None if transform is None else transform.astype(np.float32)


def to_i420(frame: np.ndarray) -> np.ndarray:
    """BGR (h, w, 3) -> planar I420 (h * 3 / 2, w), the layout the encoder takes."""
    return cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)


def _planes(yuv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of an I420 buffer's planes: luma (h, w), u and v (h/2, w/2); writes go through."""
    width = yuv.shape[1]
    height = yuv.shape[0] * 2 // 3
    quarter = height // 4
    u = yuv[height : height + quarter].reshape(height // 2, width // 2)
    v = yuv[height + quarter :].reshape(height // 2, width // 2)
    return yuv[:height], u, v


class _MapMaker:
    """Full-size sampling maps ``grid - step * flow`` made from the small flow in one resize.

    The flow is known on a small grid and enlarged bilinearly anyway, and the identity grid is
    linear, so enlarging the small map ``grid_small - step * flow_small`` gives the same map in one
    pass, without full-size flows or a full-size grid in memory. Only where the resize holds its
    edge values (a border of about half a cell) does the grid part come out wrong, by a known
    amount per column and row, which is added back.
    """

    def __init__(self, small: int, full: int) -> None:
        self.full = full
        cell = full / small
        centres = (np.arange(small) + 0.5) * cell - 0.5  # full-size position of each small pixel
        position = np.arange(full, dtype=np.float64)
        source = (position + 0.5) / cell - 0.5  # where cv2.resize samples the small map
        held = np.interp(np.clip(source, 0, small - 1), np.arange(small), centres)
        error = (position - held).astype(np.float32)
        self.low = int(np.count_nonzero(source < 0))
        self.high = int(np.count_nonzero(source > small - 1))
        self.fix_low = error[: self.low]
        self.fix_high = error[full - self.high :]
        grid_x, grid_y = np.meshgrid(centres.astype(np.float32), centres.astype(np.float32))
        self.grid = np.dstack([grid_x, grid_y])
        self.map = np.empty((full, full, 2), np.float32)

    def __call__(self, flow: np.ndarray, step: float) -> np.ndarray:
        """The map sampling ``step`` of the way back along ``flow`` (small, in full-size pixels)."""
        full, out = self.full, self.map
        cv2.resize(self.grid - np.float32(step) * flow, (full, full), dst=out, interpolation=cv2.INTER_LINEAR)
        if self.low:
            out[:, : self.low, 0] += self.fix_low
            out[: self.low, :, 1] += self.fix_low[:, None]
        if self.high:
            out[:, full - self.high :, 0] += self.fix_high
            out[full - self.high :, :, 1] += self.fix_high[:, None]
        return out


class MorphWorkspace:
    """Buffers a morph reuses frame after frame.

    Allocating a fresh 2 MB map per frame costs more than computing it (page faults: 1.3 ms
    against 0.08 ms for the arithmetic into a kept buffer), so one render keeps one workspace
    and every morph of that render writes into it. Not for use by two morphs at once.
    """

    def __init__(self, width: int, height: int, flow_size: int = MorphSettings.flow_size) -> None:
        if width != height:
            raise ValueError("morphs are square, like the library's frames")
        self.size = (width, height)
        self.flow_size = flow_size
        self.luma_map = _MapMaker(flow_size, width)
        self.chroma_map = _MapMaker(flow_size, width // 2)
        self.warped = [
            (
                np.empty((height, width), np.uint8),
                np.empty((height // 2, width // 2), np.uint8),
                np.empty((height // 2, width // 2), np.uint8),
            )
            for _ in range(2)
        ]


class Morph:
    """The transition from frame ``a`` to frame ``b``, frame by frame.

    ``a`` and ``b`` are BGR ``(h, w, 3)`` or, cheaper (the render keeps its frames so), I420
    ``(h * 3 / 2, w)``; square, with an even side. ``faces``, when known, are the same face
    landmarks on each, ``(k, 2)`` in pixels (see ``MorphSettings.face_guided``).
    """

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        settings: MorphSettings = MorphSettings(),
        workspace: MorphWorkspace | None = None,
        *,
        faces: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.yuv_a = a if a.ndim == 2 else to_i420(a)
        self.yuv_b = b if b.ndim == 2 else to_i420(b)
        width, height = self.yuv_a.shape[1], self.yuv_a.shape[0] * 2 // 3
        small = settings.flow_size
        if workspace is None or workspace.size != (width, height) or workspace.flow_size != small:
            workspace = MorphWorkspace(width, height, small)
        self.workspace = workspace
        grey_a = cv2.resize(self.yuv_a[:height], (small, small), interpolation=cv2.INTER_AREA)
        grey_b = cv2.resize(self.yuv_b[:height], (small, small), interpolation=cv2.INTER_AREA)
        scale = np.float32(width / small)
        self.flows = (
            _flow(grey_a, grey_b) * scale,
            _flow(grey_b, grey_a) * scale,
        )  # small grid, full-size pixels
        transform = face_transform(*faces) if faces is not None and settings.face_guided else None
        if faces is not None and transform is not None:
            # On the face, flow between two expressions is ill-posed (a mouth opens, teeth appear):
            # it smears the lips. There the face moves as a whole, by the similarity its landmarks
            # say, and the two expressions cross-fade aligned.
            inverse = cv2.invertAffineTransform(transform)
            guides = (guide_flow(transform, small, width), guide_flow(inverse, small, width))
            masks = tuple(face_mask(points, small, width, grow=settings.face_grow) for points in faces)
            self.flows = tuple(
                mask[..., None] * guide * scale + (1 - mask[..., None]) * flow
                for mask, guide, flow in zip(masks, guides, self.flows)
            )
        # Farneback returns faint noise even between equal frames: still if hardly any vector is not.
        self.still = (
            max(np.count_nonzero(np.abs(flow) > settings.still_px) for flow in self.flows)
            <= 0.01 * self.flows[0].size
        )
        self._planes_a, self._planes_b = _planes(self.yuv_a), _planes(self.yuv_b)

    def _warp(
        self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], which: int, step: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``planes`` at ``grid - step * flow[which]`` (backward warping), into the workspace."""
        space = self.workspace
        flow = self.flows[which]
        luma, u, v = planes
        out_luma, out_u, out_v = space.warped[which]
        cv2.remap(  # type: ignore[call-overload]  # stub: map2 may be None (map1 holds x and y)
            luma,
            space.luma_map(flow, step),
            None,
            cv2.INTER_LINEAR,
            dst=out_luma,
            borderMode=cv2.BORDER_REPLICATE,
        )
        chroma_map = space.chroma_map(flow, 0.5 * step)  # chroma planes move half as many of their pixels
        cv2.remap(  # type: ignore[call-overload]  # stub: map2 may be None (chroma_map holds x and y)
            u, chroma_map, None, cv2.INTER_LINEAR, dst=out_u, borderMode=cv2.BORDER_REPLICATE
        )
        cv2.remap(  # type: ignore[call-overload]  # stub: map2 may be None (chroma_map holds x and y)
            v, chroma_map, None, cv2.INTER_LINEAR, dst=out_v, borderMode=cv2.BORDER_REPLICATE
        )
        return out_luma, out_u, out_v

    def frame_i420(self, t: float) -> np.ndarray:
        """The in-between frame at time ``t`` in (0, 1) as I420: 0 is ``a``, 1 is ``b``."""
        if self.still:
            return cv2.addWeighted(self.yuv_a, 1.0 - t, self.yuv_b, t, 0.0)
        # A sampled where each pixel was t of the way back along A->B; B where it will be
        # (1 - t) of the way back along B->A.
        warped_a = self._warp(self._planes_a, 0, t)
        warped_b = self._warp(self._planes_b, 1, 1.0 - t)
        out = np.empty_like(self.yuv_a)
        for plane_a, plane_b, target in zip(warped_a, warped_b, _planes(out)):
            cv2.addWeighted(plane_a, 1.0 - t, plane_b, t, 0.0, dst=target)
        return out

    def frame(self, t: float) -> np.ndarray:
        """The in-between frame at time ``t`` as BGR."""
        return cv2.cvtColor(self.frame_i420(t), cv2.COLOR_YUV2BGR_I420)

    def frames(self, count: int) -> list[np.ndarray]:
        """``count`` evenly spaced in-between BGR frames, excluding ``a`` and ``b`` themselves."""
        return [self.frame((k + 1) / (count + 1)) for k in range(count)]
