"""Optical-flow transitions between two recorded frames.

A join between segment A and segment B becomes a short morph: Farneback flow A->B and B->A
between A's last frame and B's first, then for each in-between time t, A warped forward by t,
B warped backward by 1 - t, blended by t. The face slides into its new pose instead of jumping.

Cost is what decides how this is done. Flow is computed on small grey copies (``flow_size``)
and scaled up, and warping (the expensive part at full size) is done only inside the box where
the flow is not negligible; outside it the two frames are the same still background and a plain
cross-fade is exact.
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
    flow_size: int = 128
    still_px: float = 0.5  # flow below this (full-size pixels) counts as no motion

    def length(self, distance: float) -> int:
        """Morph length for a thumbnail distance (mean absolute grey-level difference)."""
        span = max(self.far - self.near, 1e-6)
        fraction = min(max((distance - self.near) / span, 0.0), 1.0)
        return int(round(self.min_frames + fraction * (self.max_frames - self.min_frames)))


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


class Morph:
    """The transition from frame ``a`` to frame ``b`` (BGR, same size), frame by frame."""

    def __init__(self, a: np.ndarray, b: np.ndarray, settings: MorphSettings = MorphSettings()) -> None:
        self.a, self.b = a, b
        height, width = a.shape[:2]
        small = settings.flow_size
        grey_a = cv2.resize(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), (small, small), interpolation=cv2.INTER_AREA)
        grey_b = cv2.resize(cv2.cvtColor(b, cv2.COLOR_BGR2GRAY), (small, small), interpolation=cv2.INTER_AREA)
        scale = np.array([width / small, height / small], dtype=np.float32)
        flow_ab = _flow(grey_a, grey_b) * scale
        flow_ba = _flow(grey_b, grey_a) * scale
        moving = np.maximum(np.linalg.norm(flow_ab, axis=2), np.linalg.norm(flow_ba, axis=2)) > settings.still_px
        if moving.any():
            rows, cols = np.flatnonzero(moving.any(axis=1)), np.flatnonzero(moving.any(axis=0))
            margin = 2  # small pixels: the flow field is smooth, and its support bleeds a little
            y0 = int(max(rows[0] - margin, 0) * height / small)
            y1 = int(min(rows[-1] + 1 + margin, small) * height / small)
            x0 = int(max(cols[0] - margin, 0) * width / small)
            x1 = int(min(cols[-1] + 1 + margin, small) * width / small)
            self.box: tuple[int, int, int, int] | None = (y0, y1, x0, x1)
            full_ab = cv2.resize(flow_ab, (width, height), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
            full_ba = cv2.resize(flow_ba, (width, height), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
            grid_x, grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
            self._grid = np.dstack([grid_x, grid_y])
            self._flow_ab = np.ascontiguousarray(full_ab)
            self._flow_ba = np.ascontiguousarray(full_ba)
        else:
            self.box = None

    def frame(self, t: float) -> np.ndarray:
        """The in-between frame at time ``t`` in (0, 1): 0 is ``a``, 1 is ``b``."""
        out = cv2.addWeighted(self.a, 1.0 - t, self.b, t, 0.0)
        if self.box is None:
            return out
        y0, y1, x0, x1 = self.box
        # Backward warping: sample A where each pixel was t of the way back along A->B, and B
        # where it will be (1 - t) of the way back along B->A.
        map_a = cv2.scaleAdd(self._flow_ab, -t, self._grid)
        map_b = cv2.scaleAdd(self._flow_ba, -(1.0 - t), self._grid)
        warped_a = cv2.remap(self.a, map_a, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_b = cv2.remap(self.b, map_b, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = cv2.addWeighted(warped_a, 1.0 - t, warped_b, t, 0.0)
        return out

    def frames(self, count: int) -> list[np.ndarray]:
        """``count`` evenly spaced in-between frames, excluding ``a`` and ``b`` themselves."""
        return [self.frame((k + 1) / (count + 1)) for k in range(count)]
