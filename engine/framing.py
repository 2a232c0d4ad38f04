"""Where the face is: the square a recording is cut to, found from its first seconds.

A phone video is tall, with the head in its upper part; cutting its centred square cuts off the
head. So ``build`` samples frames over the first seconds, finds the face in each (the landmark
model when installed, OpenCV's Haar cascade otherwise), and cuts a square around the median face:
head and shoulders, the face about 45% of the side, made larger when the head moves about, and
slid to stay inside the picture. A recording with no face in most samples is refused: a drawn
character, or an animal the models do not know, gives its crop (``--crop centre`` or x,y,w,h).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import cv2
import cv2.data
import numpy as np

from . import landmarks
from .errors import InputError
from .media import Crop, probe, sample_frames

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 4.0
SAMPLES = 12
FACE_SHARE = 0.45
"""The face's height (brow to chin) as a share of the square's side."""
MIN_FOUND = 0.5
DETECT_SIDE = 640
"""Frames are searched at most this big (the longer side): faces in such videos are large."""


@functools.lru_cache(maxsize=1)
def _haar() -> cv2.CascadeClassifier | None:
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(path))
    return None if cascade.empty() else cascade


def _face_boxes(frames: list[np.ndarray]) -> list[tuple[float, float, float, float] | None]:
    """A face box (x0, y0, x1, y1) per frame, or None; brow to chin, in the frame's pixels."""
    boxes: list[tuple[float, float, float, float] | None] = []
    if landmarks.available():
        with landmarks.FaceTracker(still=True) as tracker:
            for frame in frames:
                face = tracker.find(frame)
                boxes.append(face.box if face is not None else None)
        return boxes
    cascade = _haar()
    for frame in frames:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = (
            cascade.detectMultiScale(grey, 1.1, 5, minSize=(grey.shape[0] // 10,) * 2)
            if cascade is not None
            else ()
        )
        if len(found) == 0:
            boxes.append(None)
            continue
        x, y, w, h = max(found, key=lambda box: box[2] * box[3])
        boxes.append((float(x), float(y) + 0.1 * h, float(x + w), float(y + 1.1 * h)))  # Haar's box sits high
    return boxes


def face_crop(path: str | os.PathLike, *, seconds: float = SAMPLE_SECONDS, samples: int = SAMPLES) -> Crop:
    """The face-centred square of the video at ``path``, in its own pixels.

    Raises
    ------
    InputError
        No face in most of the sampled frames.
    """
    path = Path(path)
    info = probe(path)
    width, height = info.width or 0, info.height or 0
    scale = min(1.0, DETECT_SIDE / max(width, height, 1))
    frames = sample_frames(path, count=samples, seconds=seconds, scale=scale)
    boxes = [box for box in _face_boxes(frames) if box is not None]
    if not frames or len(boxes) < MIN_FOUND * len(frames):
        raise InputError(
            f"{path}: no face in most of its first {seconds:.0f} s ({len(boxes)} of {len(frames)} frames): "
            "give --crop x,y,w,h, or --crop centre for a drawn character"
        )
    array = np.array(boxes, dtype=np.float64) / scale
    centres_x = (array[:, 0] + array[:, 2]) / 2
    centres_y = (array[:, 1] + array[:, 3]) / 2
    face_height = float(np.median(array[:, 3] - array[:, 1]))
    wander = max(np.ptp(centres_x), np.ptp(centres_y))
    side = max(face_height / FACE_SHARE, face_height * 1.6 + wander)
    side = int(min(side, width, height)) // 2 * 2
    centre_x = float(np.median(centres_x))
    centre_y = float(np.median(centres_y)) + 0.08 * side  # a little below the face: shoulders, not sky
    x = int(round(min(max(centre_x - side / 2, 0), width - side)))
    y = int(round(min(max(centre_y - side / 2, 0), height - side)))
    crop = Crop(x, y, side)
    log.info(
        "%s: face found in %d of %d frames; crop %d,%d,%d,%d",
        path.name,
        len(boxes),
        len(frames),
        x,
        y,
        side,
        side,
    )
    return crop
