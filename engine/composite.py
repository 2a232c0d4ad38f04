"""Lower-face compositing: one recorded frame's mouth on another recorded frame's head.

The planner picks two tracks: the head track (pieces chosen for the sound, few joins, the
recording's own head and body motion) and the mouth track (short pieces whose measured mouth
follows the mouth the audio calls for). Each output frame is the head track's frame with the
mouth track's lower face laid over it: warped by the similarity that maps the mouth frame's
nose and eye corners onto the head frame's, and blended through a feathered ellipse from under
the nose to below the chin. A join of the mouth track then moves only the mouth, never the head.

Works on planar I420 frames (the renderer's format): the Y plane at full size, U and V at half.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Positions in engine.mouth.ANCHORS
NOSE, EYE_A, EYE_B, CORNER_A, CORNER_B, UPPER_LIP, LOWER_LIP, CHIN = range(8)
STABLE = [NOSE, EYE_A, EYE_B]
"""Points that do not move with the jaw: what the two frames are aligned on."""


@dataclass(frozen=True)
class CompositeSettings:
    """Shape of the blended region, in eye-corner distances (the face's size)."""

    half_width: float = 0.62
    below_chin: float = 0.12
    below_nose: float = 0.16
    feather: float = 0.12


class MouthCompositor:
    """Composites lower faces for one library (its per-frame landmark anchors)."""

    def __init__(self, anchors: np.ndarray, size: int, settings: CompositeSettings = CompositeSettings()) -> None:
        self.anchors = anchors.astype(np.float32)
        self.size = size
        self.settings = settings
        self._valid = np.isfinite(self.anchors).all(axis=(1, 2))

    def usable(self, frame: int) -> bool:
        return bool(0 <= frame < len(self._valid) and self._valid[frame])

    def _alignment(self, mouth_frame: int, head_frame: int) -> np.ndarray:
        source = self.anchors[mouth_frame, STABLE]
        target = self.anchors[head_frame, STABLE]
        matrix, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.LMEDS)
        if matrix is None:
            matrix = np.float32([[1, 0, 0], [0, 1, 0]])
            matrix[:, 2] = target.mean(axis=0) - source.mean(axis=0)
        return matrix.astype(np.float32)

    def _region(self, head_frame: int, chin_y: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The blend mask (float32, 0..1) and its box (x0, y0, x1, y1) in head-frame pixels."""
        points = self.anchors[head_frame]
        scale = float(np.linalg.norm(points[EYE_A] - points[EYE_B]))
        s = self.settings
        centre_x = float((points[CORNER_A, 0] + points[CORNER_B, 0]) / 2)
        top = float(points[NOSE, 1]) + s.below_nose * scale
        bottom = chin_y + s.below_chin * scale
        half_w = s.half_width * scale
        feather = max(1.0, s.feather * scale)
        x0 = int(max(0, np.floor(centre_x - half_w - feather)))
        x1 = int(min(self.size, np.ceil(centre_x + half_w + feather)))
        y0 = int(max(0, np.floor(top - feather)))
        y1 = int(min(self.size, np.ceil(bottom + feather)))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return np.zeros((0, 0), np.float32), (0, 0, 0, 0)
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        centre = (int(round(centre_x - x0)), int(round((top + bottom) / 2 - y0)))
        axes = (max(1, int(round(half_w))), max(1, int(round((bottom - top) / 2))))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), feather / 2)
        return mask, (x0, y0, x1, y1)

    def compose(self, head: np.ndarray, head_frame: int, mouth: np.ndarray, mouth_frame: int) -> np.ndarray:
        """``head`` (I420) with ``mouth``'s (I420) lower face laid over it; a new array."""
        if mouth_frame == head_frame or not (self.usable(mouth_frame) and self.usable(head_frame)):
            return head
        matrix = self._alignment(mouth_frame, head_frame)
        chin = self.anchors[mouth_frame, CHIN]
        warped_chin_y = float(matrix[1, 0] * chin[0] + matrix[1, 1] * chin[1] + matrix[1, 2])
        chin_y = max(warped_chin_y, float(self.anchors[head_frame, CHIN, 1]))
        mask, (x0, y0, x1, y1) = self._region(head_frame, chin_y)
        if mask.size == 0:
            return head
        out = head.copy()
        n = self.size
        # Y plane: warp just the box (the matrix shifted so the box's corner is the origin).
        shifted = matrix.copy()
        shifted[:, 2] -= (x0, y0)
        _blend(out[:n], mouth[:n], shifted, mask, (x0, y0, x1, y1))
        # U and V planes: half size, the same motion at half scale.
        half = n // 2
        cx0, cy0, cx1, cy1 = x0 // 2, y0 // 2, (x1 + 1) // 2, (y1 + 1) // 2
        small = cv2.resize(mask, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_AREA)
        chroma = matrix.copy()
        chroma[:, 2] = chroma[:, 2] / 2 - (cx0, cy0)
        quarter = half * half
        for offset in (0, quarter):
            start = n * n + offset
            plane_out = out.reshape(-1)[start : start + quarter].reshape(half, half)
            plane_in = mouth.reshape(-1)[start : start + quarter].reshape(half, half)
            _blend(plane_out, plane_in, chroma, small, (cx0, cy0, cx1, cy1))
        return out


def _blend(target: np.ndarray, source: np.ndarray, matrix: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    warped = cv2.warpAffine(source, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    region = target[y0:y1, x0:x1]
    blended = region + (warped.astype(np.float32) - region) * mask[: region.shape[0], : region.shape[1]]
    target[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
