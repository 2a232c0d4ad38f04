"""Face landmarks, at build time only: MediaPipe's face mesh, shipped inside its PyPI wheel.

Why MediaPipe 0.10.21: its wheel carries the face detector and the 478-point face mesh (with
refined lips and irises) as TFLite files, so it runs offline on the CPU at 3-5 ms a frame at
512 px on one core, and finds the face on every frame of every real clip we have. Code and
models are Apache-2.0. Newer releases ship no models (they download a ``.task`` file at run
time) and depend on ``opencv-contrib-python``, which clashes with our ``opencv-python-headless``;
0.10.21 declares that dependency too, so it is installed with ``--no-deps`` (README: the
``face`` extra, then ``pip install --no-deps mediapipe==0.10.21``). It is optional: without it,
:mod:`engine.mouth` measures the mouth from pixels, and framing falls back to OpenCV's Haar
cascade.

Nothing here runs at render time: the renderer plays recorded frames and never looks for a face.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Indices into the 478-point mesh ("right" is the subject's right, the image's left).
MOUTH_CORNERS = (61, 291)
INNER_CORNERS = (78, 308)
INNER_LIPS = (13, 14)  # upper, lower inner-lip midpoints
OUTER_LIPS = (0, 17)  # upper, lower outer-lip midpoints
EYE_CORNERS = (33, 263)  # outer corners: the face's scale
RIGHT_EYE_LIDS = (159, 145)
LEFT_EYE_LIDS = (386, 374)
CHIN = 152
NOSE_TIP = 1


@functools.lru_cache(maxsize=1)
def _face_mesh_module() -> types.ModuleType | None:
    """MediaPipe's face mesh module, or None when MediaPipe is not installed."""
    if os.environ.get("GRAMOPHONE_NO_LANDMARKS"):
        return None
    os.environ.setdefault("GLOG_minloglevel", "2")  # its C++ start-up chatter
    try:
        import matplotlib.pyplot  # noqa: F401 -- mediapipe's drawing helpers import it
    except ImportError:
        # We never draw; a stand-in lets ``mediapipe.python.solutions`` import without matplotlib
        # (95 MB of dependencies for code we do not call).
        for name in ("matplotlib", "matplotlib.pyplot"):
            sys.modules.setdefault(name, types.ModuleType(name))
    try:
        from mediapipe.python.solutions import face_mesh
    except Exception as error:  # noqa: BLE001 -- absent, or a broken install: fall back, say why once
        log.info("face landmarks unavailable (%s: %s): mouths are measured from pixels", type(error).__name__, error)
        return None
    return face_mesh


def available() -> bool:
    """Whether a landmark model is installed (``pip install --no-deps mediapipe==0.10.21``)."""
    return _face_mesh_module() is not None


def model_name() -> str:
    return "mediapipe-face-mesh-0.10.21" if available() else "none"


@dataclass(frozen=True)
class Face:
    """One face's landmarks in pixels, shape (478, 2)."""

    points: np.ndarray

    def point(self, index: int) -> np.ndarray:
        return self.points[index]

    @property
    def scale(self) -> float:
        """Distance between the outer eye corners: the face's size, steady as the mouth moves."""
        a, b = EYE_CORNERS
        return float(np.linalg.norm(self.points[a] - self.points[b]))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) around all the points."""
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def mouth_opening(self) -> float:
        """Inner-lip gap over inner mouth width: 0 closed, about 0.3-0.8 wide open."""
        gap = np.linalg.norm(self.points[INNER_LIPS[0]] - self.points[INNER_LIPS[1]])
        width = np.linalg.norm(self.points[INNER_CORNERS[0]] - self.points[INNER_CORNERS[1]])
        return float(gap / max(width, 1e-6))

    @property
    def mouth_width(self) -> float:
        """Outer mouth width over eye-corner distance: wide on i/e, narrow on o/u."""
        width = np.linalg.norm(self.points[MOUTH_CORNERS[0]] - self.points[MOUTH_CORNERS[1]])
        return float(width / max(self.scale, 1e-6))

    @property
    def mouth_centre(self) -> np.ndarray:
        return (self.points[OUTER_LIPS[0]] + self.points[OUTER_LIPS[1]]) / 2


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """MediaPipe's C++ side prints set-up chatter straight to file descriptor 2, which would break
    the CLI's one-line errors; it is pointed at /dev/null while the graph starts (a few ms)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


class FaceTracker:
    """Landmarks of consecutive frames of one video (MediaPipe's tracking mode), or of unrelated
    pictures (``still=True``). Not thread-safe: one per thread.

    Raises
    ------
    RuntimeError
        No landmark model is installed (check :func:`available` first).
    """

    def __init__(self, *, still: bool = False) -> None:
        module = _face_mesh_module()
        if module is None:
            raise RuntimeError("no face landmark model: pip install --no-deps mediapipe==0.10.21 (see README)")
        with _native_stderr_silenced():
            self._mesh = module.FaceMesh(
                static_image_mode=still, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=0.5, min_tracking_confidence=0.5,
            )
        self._warm = False

    def find(self, image_bgr: np.ndarray) -> Face | None:
        """The face in this frame, or None."""
        height, width = image_bgr.shape[:2]
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        if self._warm:
            result = self._mesh.process(rgb)
        else:
            with _native_stderr_silenced():  # the first call sets up TFLite and says so
                result = self._mesh.process(rgb)
            self._warm = True
        if not result.multi_face_landmarks:
            return None
        landmarks = result.multi_face_landmarks[0].landmark
        points = np.array([(p.x * width, p.y * height) for p in landmarks], dtype=np.float32)
        return Face(points)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
