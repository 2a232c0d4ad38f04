"""Quality figures of a render, measured from its pixels against the synthetic ground truth.

Used by the quality benchmark and, at relaxed thresholds, by the end-to-end tests, so both
measure the same thing the same way:

* lip sync: Pearson r between the mouth the synthetic rig would have drawn for the new audio
  (:func:`engine.synthetic.mouth_track`) and the mouth measured in each output frame
  (:func:`engine.synthetic.measure_mouth`), for opening and for width;
* seams: frame-to-frame change (mean absolute grey difference of consecutive output frames) at
  joins (any pair that touches a morph or a cut) against inside segments, and the largest change
  against the library's own 99th percentile;
* silence: the share of frames inside pauses of at least 0.5 s whose mouth is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import synthetic
from .features import FPS
from .library import SPEECH_SOURCE, Library
from .media import iter_frames
from .render import Timeline

CLOSED_OPENING = 0.1
"""A measured opening below this (in the rig's 0..1 units) is a closed mouth."""

MIN_PAUSE_S = 0.5


@dataclass(frozen=True)
class QualityReport:
    r_opening: float
    r_width: float
    r_width_open: float  # width only where the drawn mouth is open: the shape that is seen
    seam_p95_joins: float
    seam_p95_inside: float
    max_change: float
    library_p99: float
    silence_closed: float
    pause_frames: int
    joins: int
    frames: int

    @property
    def seam_ratio(self) -> float:
        return self.seam_p95_joins / max(self.seam_p95_inside, 1e-9)

    @property
    def max_change_ratio(self) -> float:
        return self.max_change / max(self.library_p99, 1e-9)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _grey(frame: np.ndarray, side: int = 128) -> np.ndarray:
    return cv2.resize(
        cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (side, side), interpolation=cv2.INTER_AREA
    ).astype(np.float32)


def library_change_p99(library: Library, limit: int = 3000) -> float:
    """99th percentile of frame-to-frame change inside the library's own speech recording."""
    speech = np.flatnonzero(library.sources == SPEECH_SOURCE)[:limit]
    changes = []
    previous = None
    for index in speech:
        grey = _grey(library.frame(int(index)))
        if previous is not None:
            changes.append(np.abs(grey - previous).mean())
        previous = grey
    return float(np.percentile(changes, 99))


def pause_frames(opening: np.ndarray, min_pause_s: float = MIN_PAUSE_S) -> np.ndarray:
    """Frames inside runs of silence (ground-truth opening exactly 0) of at least ``min_pause_s``."""
    silent = opening <= 1e-6
    mask = np.zeros_like(silent)
    start = None
    for i, value in enumerate(np.append(silent, False)):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start >= min_pause_s * FPS:
                mask[start:i] = True
            start = None
    return mask


def measure(
    video: str | Path, audio: np.ndarray, sample_rate: int, timeline: Timeline, library: Library
) -> QualityReport:
    """Measure a rendered ``video`` of ``audio`` (see the module docstring)."""
    truth = synthetic.mouth_track(audio, sample_rate, timeline.n_frames)
    measured_openings: list[float] = []
    measured_widths: list[float] = []
    frame_changes: list[float] = []
    previous = None
    for frame in iter_frames(video, size=library.size):
        opening, width = synthetic.measure_mouth(frame)
        measured_openings.append(opening)
        measured_widths.append(width)
        grey = _grey(frame)
        if previous is not None:
            frame_changes.append(float(np.abs(grey - previous).mean()))
        previous = grey
    n = min(len(measured_openings), timeline.n_frames)
    openings, widths = np.array(measured_openings[:n]), np.array(measured_widths[:n])
    changes = np.array(frame_changes[: n - 1])
    true_opening, true_width = truth.opening[:n], truth.width[:n]

    # A pair (i, i+1) is at a join if it touches a morphed frame or crosses a cut.
    morph = timeline.morph_mask()[:n]
    at_join = morph[:-1] | morph[1:]
    boundaries = {piece.out_start for piece in timeline.pieces[1:]}
    for index, piece in enumerate(timeline.pieces[1:], start=1):
        before = timeline.pieces[index - 1]
        if piece.lib_start != before.lib_start + before.length and piece.out_start - 1 < len(at_join):
            at_join[piece.out_start - 1] = True
    inside = ~at_join
    for boundary in boundaries:  # continuations are not joins, but keep them out of "inside" too
        if boundary - 1 < len(inside):
            inside[boundary - 1] = False

    pauses = pause_frames(true_opening)
    open_mouth = true_opening > 0.2
    return QualityReport(
        r_opening=_pearson(true_opening, openings),
        r_width=_pearson(true_width, widths),
        r_width_open=_pearson(true_width[open_mouth], widths[open_mouth]),
        seam_p95_joins=float(np.percentile(changes[at_join], 95)) if at_join.any() else 0.0,
        seam_p95_inside=float(np.percentile(changes[inside], 95)) if inside.any() else 0.0,
        max_change=float(changes.max()) if changes.size else 0.0,
        library_p99=library_change_p99(library),
        silence_closed=float((openings[pauses] < CLOSED_OPENING).mean()) if pauses.any() else float("nan"),
        pause_frames=int(pauses.sum()),
        joins=len(timeline.transitions),
        frames=n,
    )
