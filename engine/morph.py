"""Optical-flow transitions between two recorded frames.

A join between segment A and segment B becomes a short morph: Farneback flow A->B and B->A
between A's last frame and B's first, then for each in-between time t, A warped forward by t,
B warped backward by 1 - t, blended by t. The face slides into its new pose instead of jumping.

Cost decides how this is done, because at joins morph frames are a large share of the output:

* flow is computed on small grey copies (``flow_size``) and scaled up;
* warping happens in YUV 4:2:0, the encoder's own format: a full-size luma plane and two
  quarter-size chroma planes are half the pixels of BGR, and the result goes to the encoder
  without another conversion;
* the sampling maps are built at the flow's small size and enlarged with a bilinear resize,
  which reproduces the identity grid exactly and interpolates the smooth flow, instead of
  full-size arithmetic per frame.
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


class Morph:
    """The transition from frame ``a`` to frame ``b`` (BGR, same even size), frame by frame."""

    def __init__(self, a: np.ndarray, b: np.ndarray, settings: MorphSettings = MorphSettings()) -> None:
        height, width = a.shape[:2]
        self.size = (width, height)
        self.yuv_a, self.yuv_b = to_i420(a), to_i420(b)
        small = settings.flow_size
        grey_a = cv2.resize(self.yuv_a[:height], (small, small), interpolation=cv2.INTER_AREA)
        grey_b = cv2.resize(self.yuv_b[:height], (small, small), interpolation=cv2.INTER_AREA)
        scale = np.array([width / small, height / small], dtype=np.float32)
        self._flow_ab = _flow(grey_a, grey_b) * scale
        self._flow_ba = _flow(grey_b, grey_a) * scale
        # Farneback returns faint noise even between equal frames: judge stillness on the 99th percentile.
        self.still = max(np.percentile(np.abs(self._flow_ab), 99), np.percentile(np.abs(self._flow_ba), 99)) < settings.still_px
        # Full-size coordinates of the small grid's pixel centres: resizing this grid bilinearly
        # back to full size gives every full-size pixel its own coordinates.
        xs = (np.arange(small, dtype=np.float32) + 0.5) * scale[0] - 0.5
        ys = (np.arange(small, dtype=np.float32) + 0.5) * scale[1] - 0.5
        self._grid = np.dstack(np.meshgrid(xs, ys))
        self._planes_a, self._planes_b = _planes(self.yuv_a), _planes(self.yuv_b)

    def _warp(self, image: tuple[np.ndarray, np.ndarray, np.ndarray], small_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        width, height = self.size
        luma, u, v = image
        luma_map = cv2.resize(small_map, (width, height), interpolation=cv2.INTER_LINEAR)
        # A chroma sample sits between 2x2 luma samples: x_chroma = (x_luma + 0.5) / 2 - 0.5.
        chroma_map = cv2.resize((small_map - 0.5) * 0.5, (width // 2, height // 2), interpolation=cv2.INTER_LINEAR)
        return (
            cv2.remap(luma, luma_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
            cv2.remap(u, chroma_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
            cv2.remap(v, chroma_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        )

    def frame_i420(self, t: float) -> np.ndarray:
        """The in-between frame at time ``t`` in (0, 1) as I420: 0 is ``a``, 1 is ``b``."""
        if self.still:
            return cv2.addWeighted(self.yuv_a, 1.0 - t, self.yuv_b, t, 0.0)
        # Backward warping: sample A where each pixel was t of the way back along A->B, and B
        # where it will be (1 - t) of the way back along B->A.
        warped_a = self._warp(self._planes_a, self._grid - t * self._flow_ab)
        warped_b = self._warp(self._planes_b, self._grid - (1.0 - t) * self._flow_ba)
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
