"""The CPU fallback: one picture made to talk by warping it, no neural network.

Where no GPU (FasterLivePortrait) is at hand, a character still has to come out of the admin's
picture. :class:`Puppet` cuts a square around the face and moves three things in it, frame by
frame, each with a smooth displacement field sampled by ``cv2.remap`` (so edges stay
anti-aliased and nothing tears):

* **mouth**: the lower lip and the jaw drop by the opening (the upper lip rises by a fifth of it,
  as the rig's does), in a mouth-shaped profile near the lips that widens into a jaw-shaped one
  further down and fades out towards the neck; the stretched junction of the lips becomes the
  open gap, which is painted dark. Width stretches the mouth region horizontally about its
  centre. Opening and width come from :func:`engine.synthetic.mouth_track` of the audio.
* **eyes**: each eye is measured in the picture (where it differs from the skin beside it) and a
  lid made for it: the surrounding skin continued over the eye (inpainted). A blink brings the
  lid down from the eye's top edge to its bottom with a lash line at its edge, as the rig's do.
* **head**: a small rotation and shift of the whole frame (one ``warpAffine``).

The per-frame poses (mouth from the audio, blinks every 2-6 s, head drift and nods) are the
rig's own (:func:`engine.synthetic.performance_params`, :func:`engine.synthetic.idle_params`), so
a puppet moves exactly like the drawn characters whose lip sync the tests measure.

Cost: the mouth and eye fields live on small regions of interest; at 512 px a frame is a
couple of milliseconds on one core (see ``benchmarks/make_character.py``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .. import synthetic
from ..errors import InputError
from ..media import VideoEncoder, write_wav
from .picture import Landmarks, read_picture

log = logging.getLogger(__name__)

FPS = synthetic.FPS
CROP_PER_FACE = 4.0
"""Side of the square crop, in eye-to-mouth distances: head and shoulders."""
MARGIN = 0.06
"""Extra picture around the crop, as a share of the output size, so head motion shows no border."""
OPEN_MAX = 0.42
"""Gap height at opening 1, in eye-to-mouth distances (the rig: 60 px of 140)."""
UPPER_SHARE = 0.2
"""Share of the opening taken by the upper lip rising; the jaw drops the rest (as the rig draws it)."""
WIDTH_GAIN = 0.4
"""Horizontal stretch of the mouth per unit of width away from neutral 0.5 (0.8x .. 1.2x)."""
INNER_HALF_WIDTH = 0.87
"""Half-width of the open gap as a share of the mouth's half-width (the lips' corners stay closed)."""
_GAP_EXPONENT = 2.4  # superellipse profile of the gap, as the rig's mouth
_NATURAL_INTERIOR_BGR = (32, 26, 72)  # a mouth interior in shadow: dark, a little red
_TONGUE_BGR = (70, 70, 150)  # seen at the bottom of a wide-open mouth
_EYE_HALF_WIDTH = 0.22  # eye half-width per eye distance
_EYE_HALF_HEIGHT = 0.55  # eye half-height per eye half-width


def _cosine_fall(distance: np.ndarray, flat: float, length: float) -> np.ndarray:
    """1 up to ``flat``, a raised-cosine fall to 0 over the next ``length``: a smooth edge."""
    t = np.clip((distance - flat) / length, 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _crop_with_border(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """``image[y0:y0+side, x0:x0+side]``, its outside filled by replicating the edge."""
    height, width = image.shape[:2]
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + side), min(height, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError("the face lies outside the picture")
    region = image[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_REPLICATE)
    return region


class Puppet:
    """A picture, cropped around its face, that can be posed frame by frame.

    Parameters
    ----------
    picture
        BGR uint8 picture (any size).
    landmarks
        Mouth and eyes in picture pixels.
    size
        Side of the square output frames (even).
    gap_bgr
        Colour of the open mouth. None (default) paints a natural dark interior tinted by the
        lips; the tests and benchmarks pass :data:`engine.synthetic.MOUTH_INTERIOR_BGR` on a
        picture of the rig, so that :func:`engine.synthetic.measure_mouth` can read the opening.

    Raises
    ------
    InputError
        Landmarks that make no face (eyes on top of each other, mouth above the eyes).
    """

    def __init__(self, picture: np.ndarray, landmarks: Landmarks, size: int = 512,
                 gap_bgr: tuple[int, int, int] | None = None) -> None:
        if size < 64 or size % 2:
            raise InputError(f"puppet size {size} must be an even number of pixels, at least 64")
        (e1x, e1y), (e2x, e2y) = landmarks.eyes
        mx, my = landmarks.mouth
        ex, ey = (e1x + e2x) / 2, (e1y + e2y) / 2
        face = math.hypot(mx - ex, my - ey)
        eye_distance = math.hypot(e2x - e1x, e2y - e1y)
        if face < 4 or eye_distance < 4 or my <= ey:
            raise InputError("the landmarks make no face: the eyes must be apart and the mouth below them")
        height, width = picture.shape[:2]
        crop = min(CROP_PER_FACE * face, float(min(width, height)))
        cx = min(max((ex + mx) / 2, crop / 2), width - crop / 2)
        cy = min(max(ey + 0.25 * face, crop / 2), height - crop / 2)
        self.size = size
        self.pad = int(round(MARGIN * size))
        side = size + 2 * self.pad
        region = int(math.ceil(crop * side / size))
        x0, y0 = int(round(cx - region / 2)), int(round(cy - region / 2))
        source = _crop_with_border(picture, x0, y0, region)
        shrink = region > side
        self.canvas = cv2.resize(source, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        scale = side / region
        to_canvas = lambda px, py: ((px - x0) * scale, (py - y0) * scale)  # noqa: E731
        self.mouth = to_canvas(mx, my)
        self.eyes = tuple(to_canvas(*eye) for eye in landmarks.eyes)
        self.face = face * scale
        self.half_width = max(2.0, landmarks.mouth_width * scale / 2)
        self.eye_half_width = _EYE_HALF_WIDTH * eye_distance * scale
        self.pivot = (self.mouth[0], self.mouth[1] + 0.7 * self.face)
        self.motion_scale = size / 512.0
        self._gap_exact = gap_bgr is not None
        self._mouth_setup()
        self._eye_setup()
        self.gap_bgr = np.array(gap_bgr if gap_bgr is not None else self._natural_interior(), np.float32)

    # ---- set-up ----------------------------------------------------------------------------

    def _roi(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int]:
        side = self.canvas.shape[0]
        return (max(0, int(math.floor(x0))), min(side, int(math.ceil(x1))),
                max(0, int(math.floor(y0))), min(side, int(math.ceil(y1))))

    def _mouth_setup(self) -> None:
        mx, my = self.mouth
        u, hw = self.face, self.half_width
        self.mouth_roi = self._roi(mx - 2.0 * hw - 2, mx + 2.0 * hw + 2, my - 0.45 * u - 2, my + (OPEN_MAX + 1.3) * u + 2)
        x0, x1, y0, y1 = self.mouth_roi
        self._mx = (np.arange(x0, x1, dtype=np.float32) - mx)[None, :]
        self._my = (np.arange(y0, y1, dtype=np.float32) - my)[:, None]
        self._jaw = _cosine_fall(np.abs(self._mx), 0.0, 1.9 * hw)  # jaw profile: broad, smooth
        self._stretch_x = _cosine_fall(np.abs(self._mx), 1.1 * hw, 0.9 * hw)

    def _eye_mask(self, ex: float, ey: float) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """The eye's region of interest and a soft mask of the eye in it.

        Landmarks are points, and how big an eye is varies too much (a photo's almond eye, a
        cartoon's round one) to guess from proportions, yet a blink must cover all of it. So the
        eye is measured: the skin colour is the median just beside it, and the eye is the convex
        hull of the connected region around its centre that clearly differs from that skin.
        Where that region is implausible, an ellipse from face proportions stands in.
        """
        ew = self.eye_half_width
        roi = self._roi(ex - 1.7 * ew, ex + 1.7 * ew, ey - 1.6 * ew, ey + 1.6 * ew)
        x0, x1, y0, y1 = roi
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
                if (np.hypot(*(nearest - centre)) <= 0.5 * ew and 1.0 * ew <= width <= 2.8 * ew
                        and 0.4 * ew <= height <= 3.0 * ew):
                    hull = cv2.convexHull(points)
        mask = np.zeros(patch.shape[:2], np.uint8)
        if hull is not None:
            cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA)
        else:
            log.debug("eye at %.0f,%.0f not measurable: an ellipse from proportions", ex, ey)
            centre_px = (int(round(ex - x0)), int(round(ey - y0)))
            cv2.ellipse(mask, centre_px, (int(ew), int(_EYE_HALF_HEIGHT * ew)), 0, 0, 360, 255, -1, cv2.LINE_AA)
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
            # the lid: the skin around the eye continued over it, as the rig paints its lids
            hole = cv2.dilate((cover > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
            lid = cv2.inpaint(self.canvas[y0:y1, x0:x1], hole, max(3.0, 0.15 * self.eye_half_width), cv2.INPAINT_TELEA)
            ring = (cv2.dilate(hole, np.ones((3, 3), np.uint8), iterations=2) > 0) & (cover < 0.5)
            eye_pixels = self.canvas[y0:y1, x0:x1][cover > 0.5].astype(np.float32)
            luminance = eye_pixels.mean(axis=1)
            dark = eye_pixels[luminance <= np.percentile(luminance, 10)].mean(axis=0) if len(eye_pixels) else np.zeros(3)
            skin = self.canvas[y0:y1, x0:x1][ring].astype(np.float32).mean(axis=0) if ring.any() else dark
            lash = tuple(float(v) for v in 0.55 * dark + 0.45 * 0.8 * skin)
            thickness = max(1, int(round(0.035 * (bottom - top).max())))
            lashed = (bottom - top) > 0.35 * (bottom - top).max()  # not the steep ends of the eye
            self.eye_rois.append(roi)
            self._eyes.append((columns, top, bottom, rows, cover[:, :, None], lid, lash, thickness, lashed))

    def _natural_interior(self) -> tuple[float, float, float]:
        """A dark interior tinted by the colour where the lips meet (dark lip line, or drawn line)."""
        mx, my = self.mouth
        hw = INNER_HALF_WIDTH * self.half_width * 0.5
        row = self.canvas[int(round(my)), max(0, int(mx - hw)) : int(mx + hw) + 1].reshape(-1, 3).astype(np.float32)
        junction = np.median(row, axis=0) if len(row) else np.zeros(3, np.float32)
        return tuple(float(v) for v in 0.35 * junction + 0.65 * np.array(_NATURAL_INTERIOR_BGR, np.float32))

    # ---- per frame -------------------------------------------------------------------------

    def _pose_mouth(self, frame: np.ndarray, opening: float, width: float) -> None:
        u, hw = self.face, self.half_width
        xs, ys = self._mx, self._my
        stretch = 1.0 + WIDTH_GAIN * (float(np.clip(width, 0, 1)) - 0.5)
        gap = float(np.clip(opening, 0, 1)) * OPEN_MAX * u
        # the gap's profile follows the stretched mouth: look it up at the source column
        t = np.abs(xs / stretch) / (INNER_HALF_WIDTH * hw)
        profile = np.power(np.clip(1.0 - np.power(np.minimum(t, 1.0), _GAP_EXPONENT), 0.0, 1.0), 1.0 / _GAP_EXPONENT)
        down = (1.0 - UPPER_SHARE) * gap * profile  # (1, W): how far the lower lip dropped
        up = UPPER_SHARE * gap * profile
        # below the lips: mouth profile at the lip, jaw profile further down, fading to the neck
        below = ys - down
        tau = _smoothstep(below / (0.45 * u))
        fade = _cosine_fall(below, 0.55 * u, 0.7 * u)
        jaw = (1.0 - UPPER_SHARE) * gap * (profile * (1.0 - tau) + self._jaw * tau) * fade
        above = -up - ys
        src_y = np.where(ys >= down, ys - jaw, np.where(ys <= -up, ys + up * _cosine_fall(above, 0.0, 0.3 * u), 0.0))
        top, bottom = -0.2 * u - UPPER_SHARE * gap, (1.0 - UPPER_SHARE) * gap + 0.2 * u
        stretch_y = _cosine_fall(np.maximum(top - ys, ys - bottom), 0.0, 0.2 * u)
        src_x = xs - xs * (1.0 - 1.0 / stretch) * (self._stretch_x * stretch_y)
        mx, my = self.mouth
        x0, x1, y0, y1 = self.mouth_roi
        map_x = (src_x + mx).astype(np.float32)
        map_y = (src_y + my).astype(np.float32)
        roi = cv2.remap(self.canvas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if gap > 0.3:
            # exact box-filter coverage of each pixel row by the gap [-up, down]: anti-aliased
            soft = 0.5 if self._gap_exact else 1.0  # natural: a softer, 2-pixel edge
            coverage = np.clip((np.minimum(ys + soft, down) - np.maximum(ys - soft, -up)) / (2 * soft), 0.0, 1.0)
            rows = np.flatnonzero(coverage.max(axis=1) > 0)
            if len(rows):
                r0, r1 = rows[0], rows[-1] + 1
                alpha = coverage[r0:r1, :, None]
                fill = self.gap_bgr
                if not self._gap_exact:
                    alpha = alpha * 0.95
                    depth = np.clip((ys[r0:r1] + up) / np.maximum(up + down, 1e-3), 0.0, 1.0)[..., None]
                    tongue = np.clip((depth - 0.55) / 0.45, 0.0, 1.0) * min(1.0, gap / (0.25 * OPEN_MAX * u))
                    fill = fill * (0.65 + 0.35 * depth) * (1 - 0.5 * tongue) + np.array(_TONGUE_BGR, np.float32) * 0.5 * tongue
                patch = roi[r0:r1].astype(np.float32)
                roi[r0:r1] = np.clip(patch + alpha * (fill - patch) + 0.5, 0, 255).astype(np.uint8)
        frame[y0:y1, x0:x1] = roi

    def _pose_eyes(self, frame: np.ndarray, blink: float) -> None:
        """Lower the lids: above an edge that sweeps from the eye's top to its bottom, the lid shows."""
        for roi, (columns, top, bottom, rows, cover, lid, lash, thickness, lashed) in zip(self.eye_rois, self._eyes):
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
        if params.opening > 1e-3 or abs(params.width - 0.5) > 1e-3:
            self._pose_mouth(frame, params.opening, params.width)
        if params.blink > 0.01:
            self._pose_eyes(frame, float(np.clip(params.blink, 0.0, 1.0)))
        matrix = cv2.getRotationMatrix2D(self.pivot, float(params.head_angle), 1.0)
        matrix[0, 2] += params.head_dx * self.motion_scale - self.pad
        matrix[1, 2] += params.head_dy * self.motion_scale - self.pad
        return cv2.warpAffine(frame, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def puppet_performance(
    picture: Path,
    landmarks: Landmarks,
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
    picture, landmarks
        The character and where its mouth and eyes are (picture pixels).
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
    puppet = Puppet(read_picture(picture), landmarks, size, gap_bgr)
    speech_video, idle_video = out_dir / "speech.mp4", out_dir / "idle.mp4"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".puppet-") as scratch:
        wav = write_wav(Path(scratch) / "speech.wav", audio, sample_rate)
        with VideoEncoder(speech_video, size, FPS, audio_path=wav) as encoder:
            for params in synthetic.performance_params(audio, sample_rate, seed):
                encoder.write(puppet.frame(params))
                if progress:
                    progress(1)
    with VideoEncoder(idle_video, size, FPS) as encoder:
        for params in synthetic.idle_params(max(1, int(round(idle_s * FPS))), seed + 1):
            encoder.write(puppet.frame(params))
            if progress:
                progress(1)
    log.info("puppet of %s: %s (%.1f s) and %s (%.1f s) at %d px", os.path.basename(picture), speech_video.name,
             len(audio) / sample_rate, idle_video.name, idle_s, size)
    return speech_video, idle_video
