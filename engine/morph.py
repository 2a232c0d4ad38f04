"""Optical-flow transitions between two recorded frames.

A join between segment A and segment B becomes a short morph: Farneback flow A->B and B->A
between A's last frame and B's first, then for each in-between time t, A warped forward by t,
B warped backward by 1 - t, blended by t. The face slides into its new pose instead of jumping.

Cost decides how this is done, because at joins morph frames are a large share of the output:

* flow is computed on small grey copies (``flow_size``) and scaled up;
* warping happens in YUV 4:2:0, the encoder's own format: a full-size luma plane and two
  quarter-size chroma planes are half the pixels of BGR, and the result goes to the encoder
  without another conversion;
* the flow is enlarged once per morph; each frame's sampling maps are then one affine step
  written into buffers the render keeps (:class:`MorphWorkspace`), because allocating them anew
  costs more than computing them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MorphSettings:
    """Morph length and optical-flow parameters.

    The morph takes ``min_frames`` when the two frames' thumbnails differ by ``near`` grey levels
    (mean absolute difference) or less, ``max_frames`` from ``far`` on, linearly in between:
    bigger jumps get more time.
    """

    min_frames: int = 5
    max_frames: int = 12
    near: float = 3.0
    far: float = 20.0
    flow_size: int = 64
    still_px: float = 0.25  # if no flow vector reaches this (full-size pixels), a cross-fade is exact

    def length(self, distance: float) -> int:
        """Morph length for a thumbnail distance (mean absolute grey-level difference)."""
        span = max(self.far - self.near, 1e-6)
        fraction = min(max((distance - self.near) / span, 0.0), 1.0)
        return int(round(self.min_frames + fraction * (self.max_frames - self.min_frames)))


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


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


class MorphWorkspace:
    """Buffers a morph reuses frame after frame.

    Allocating a fresh 2 MB map per frame costs more than computing it (page faults: 1.3 ms
    against 0.08 ms for the arithmetic into a kept buffer), so one render keeps one workspace
    and every morph of that render writes into it. Not for use by two morphs at once.
    """

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self.grid = np.dstack([grid_x, grid_y])
        chroma_x, chroma_y = np.meshgrid(np.arange(width // 2, dtype=np.float32), np.arange(height // 2, dtype=np.float32))
        self.chroma_grid = np.dstack([chroma_x, chroma_y])
        self.flows = [np.empty((height, width, 2), np.float32) for _ in range(2)]
        self.chroma_flows = [np.empty((height // 2, width // 2, 2), np.float32) for _ in range(2)]
        self.luma_map = np.empty((height, width, 2), np.float32)
        self.chroma_map = np.empty((height // 2, width // 2, 2), np.float32)
        self.warped = [
            (np.empty((height, width), np.uint8), np.empty((height // 2, width // 2), np.uint8), np.empty((height // 2, width // 2), np.uint8))
            for _ in range(2)
        ]


class Morph:
    """The transition from frame ``a`` to frame ``b``, frame by frame.

    ``a`` and ``b`` are BGR ``(h, w, 3)`` or, cheaper (the render keeps its frames so), I420
    ``(h * 3 / 2, w)``; the size must be even.
    """

    def __init__(
        self, a: np.ndarray, b: np.ndarray, settings: MorphSettings = MorphSettings(), workspace: MorphWorkspace | None = None
    ) -> None:
        self.yuv_a = a if a.ndim == 2 else to_i420(a)
        self.yuv_b = b if b.ndim == 2 else to_i420(b)
        width, height = self.yuv_a.shape[1], self.yuv_a.shape[0] * 2 // 3
        if workspace is None or workspace.size != (width, height):
            workspace = MorphWorkspace(width, height)
        self.workspace = workspace
        small = settings.flow_size
        grey_a = cv2.resize(self.yuv_a[:height], (small, small), interpolation=cv2.INTER_AREA)
        grey_b = cv2.resize(self.yuv_b[:height], (small, small), interpolation=cv2.INTER_AREA)
        scale = np.float32(width / small)
        flows = (_flow(grey_a, grey_b) * scale, _flow(grey_b, grey_a) * scale)  # in full-size pixels
        # Farneback returns faint noise even between equal frames: still if hardly any vector is not.
        self.still = max(np.count_nonzero(np.abs(flow) > settings.still_px) for flow in flows) <= 0.01 * flows[0].size
        if not self.still:
            for flow, full, chroma in zip(flows, workspace.flows, workspace.chroma_flows):
                # Enlarged straight into the workspace; chroma planes move half as many of their pixels.
                cv2.resize(flow, (width, height), dst=full, interpolation=cv2.INTER_LINEAR)
                cv2.resize(flow * np.float32(0.5), (width // 2, height // 2), dst=chroma, interpolation=cv2.INTER_LINEAR)
        self._planes_a, self._planes_b = _planes(self.yuv_a), _planes(self.yuv_b)

    def _warp(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], which: int, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``planes`` at ``grid - step * flow[which]`` (backward warping), into the workspace."""
        space = self.workspace
        cv2.scaleAdd(space.flows[which], -step, space.grid, dst=space.luma_map)
        cv2.scaleAdd(space.chroma_flows[which], -step, space.chroma_grid, dst=space.chroma_map)
        luma, u, v = planes
        out_luma, out_u, out_v = space.warped[which]
        cv2.remap(luma, space.luma_map, None, cv2.INTER_LINEAR, dst=out_luma, borderMode=cv2.BORDER_REPLICATE)
        cv2.remap(u, space.chroma_map, None, cv2.INTER_LINEAR, dst=out_u, borderMode=cv2.BORDER_REPLICATE)
        cv2.remap(v, space.chroma_map, None, cv2.INTER_LINEAR, dst=out_v, borderMode=cv2.BORDER_REPLICATE)
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
