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

import atexit
import functools
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import cast

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
        log.info(
            "face landmarks unavailable (%s: %s): mouths are measured from pixels",
            type(error).__name__,
            error,
        )
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
        width = float(np.linalg.norm(self.points[INNER_CORNERS[0]] - self.points[INNER_CORNERS[1]]))
        return float(gap / max(width, 1e-6))

    @property
    def mouth_width(self) -> float:
        """Outer mouth width over eye-corner distance: wide on i/e, narrow on o/u."""
        width = np.linalg.norm(self.points[MOUTH_CORNERS[0]] - self.points[MOUTH_CORNERS[1]])
        return float(width / max(self.scale, 1e-6))

    @property
    def mouth_centre(self) -> np.ndarray:
        return (self.points[OUTER_LIPS[0]] + self.points[OUTER_LIPS[1]]) / 2


def _send(stream, message: object) -> None:  # noqa: ANN001 -- a binary pipe
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream) -> object:  # noqa: ANN001 -- a binary pipe
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the landmark process is gone")
    (length,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(length))


def serve() -> None:
    """The landmark process (``python -m engine.landmarks``): MediaPipe's graph, fed frames
    through stdin, answering landmarks through stdout.

    MediaPipe's C++ side writes set-up messages straight to file descriptor 2, from its own
    threads and at moments of its choosing, which would break the CLI's one-line errors and its
    progress bar; in a process of its own, its stderr is simply /dev/null. A plain subprocess
    rather than multiprocessing, because huey's process workers are daemonic and may not have
    multiprocessing children."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the answer pipe
    module = _face_mesh_module()
    mesh = None
    while True:
        try:
            kind, payload = cast(tuple[str, object], _receive(source))  # what _Server.ask sends
        except EOFError:
            break
        if kind == "stop":
            break
        if kind == "reset":
            if mesh is not None:
                mesh.close()
            assert module is not None  # the client starts this process only when MediaPipe imports
            mesh = module.FaceMesh(
                static_image_mode=bool(payload),
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=0.5,
                min_tracking_confidence=0.5,
            )
            _send(sink, None)
            continue
        assert mesh is not None  # FaceTracker sends "reset" before any frame
        frame = cast(np.ndarray, payload)  # a "frame" message carries an RGB image
        result = mesh.process(frame)
        if not result.multi_face_landmarks:
            _send(sink, None)
            continue
        height, width = frame.shape[:2]
        points = result.multi_face_landmarks[0].landmark
        _send(sink, np.array([(p.x * width, p.y * height) for p in points], dtype=np.float32))


class _Server:
    """One landmark process per Python process, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.landmarks"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        self.lock = threading.Lock()
        atexit.register(self.stop)

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, kind: str, payload: object) -> object:
        assert self.process.stdin is not None and self.process.stdout is not None
        with self.lock:
            try:
                _send(self.process.stdin, (kind, payload))
                return _receive(self.process.stdout)
            except (BrokenPipeError, EOFError) as error:
                raise RuntimeError(
                    f"the face landmark process stopped (exit {self.process.poll()})"
                ) from error

    def stop(self) -> None:
        if not self.alive():
            return
        try:
            assert self.process.stdin is not None
            _send(self.process.stdin, ("stop", None))
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.process.kill()


_server: _Server | None = None
_server_lock = threading.Lock()


def _the_server() -> _Server:
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            _server = _Server()
        return _server


class FaceTracker:
    """Landmarks of consecutive frames of one video (MediaPipe's tracking mode), or of unrelated
    pictures (``still=True``). One tracker at a time per process (they share the landmark
    process); use it as a context manager or call :meth:`close`.

    Raises
    ------
    RuntimeError
        No landmark model is installed (check :func:`available` first).
    """

    def __init__(self, *, still: bool = False) -> None:
        if _face_mesh_module() is None:
            raise RuntimeError(
                "no face landmark model: pip install --no-deps mediapipe==0.10.21 (see README)"
            )
        self._server = _the_server()
        self._server.ask("reset", still)

    def find(self, image_bgr: np.ndarray) -> Face | None:
        """The face in this frame, or None."""
        points = self._server.ask("frame", cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        return None if points is None else Face(points)  # type: ignore[arg-type]

    def close(self) -> None:
        """Nothing to free: the landmark process stays for the next tracker."""

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve()
