"""A synthetic talking character whose mouth is a known function of its audio.

Why this exists
---------------
Real recordings have no ground truth: nobody knows how far the speaker's mouth "should" be open
at a given instant of *new* audio. This module draws a face whose mouth opening and mouth width
are plain, documented functions of the audio (:func:`mouth_track`), so that a render of any new
audio can be scored by measuring the mouth in the output pixels (:func:`measure_mouth`) and
correlating with what the generator would have drawn for that audio.

The same rig, in its ``"fox"`` style, is also the product's demo character: a cartoon fox for
children. There is one rig with two styles (``"test"``: a plain face; ``"fox"``), never two rigs, so
every property the tests prove about the measurable mouth holds for the demo character too.

Pieces
------
* :func:`synth_speech` -- formant-synthesised "speech": voiced syllables, fricatives, plosives,
  phrase pauses. Deterministic per seed.
* :func:`mouth_track` -- the ground truth: per-video-frame mouth opening (from loudness) and width
  (from spectral shape), both in ``[0, 1]``.
* :func:`draw_face` -- one frame of the rig for given :class:`FaceParams`.
* :func:`performance` / :func:`idle_performance` -- the "recorded" speech and silence videos.
* :func:`measure_mouth` -- reads opening and width back from pixels, in the units of
  :class:`MouthTrack`.
* :func:`write_character_videos` -- ``speech.mp4`` and ``idle.mp4`` for building a library.

Mouth units (shared by drawing and measuring)
---------------------------------------------
All lengths below are in pixels of a 512 x 512 frame and scale with the frame size.

* **opening** ``o``: the open interior (painted :data:`MOUTH_INTERIOR_BGR`) is
  ``o * MOUTH_OPEN_MAX`` = ``o * 60`` px tall at its centre line. ``o = 0`` draws no interior.
* **width** ``w``: the lips (painted :data:`MOUTH_LIP_BGR`) span
  ``2 * (MOUTH_HALF_WIDTH_MIN + w * (MOUTH_HALF_WIDTH_MAX - MOUTH_HALF_WIDTH_MIN))`` = 60 .. 124 px
  outside to outside, whatever the opening, so width stays measurable with a closed mouth.

:func:`measure_mouth` inverts exactly these definitions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..media import ANALYSIS_SAMPLE_RATE, write_takes
from .audio import synth_speech
from .drawing import FaceParams
from .face import _rig, draw_face
from .geometry import (
    FPS,
    MOUTH_HALF_WIDTH_MAX,
    MOUTH_HALF_WIDTH_MIN,
    MOUTH_INTERIOR_BGR,
    MOUTH_LIP,
    MOUTH_LIP_BGR,
    MOUTH_LIP_SIDE,
    MOUTH_OPEN_MAX,
    STYLES,
)
from .measurement import measure_mouth
from .motion import idle_params, idle_performance, performance, performance_params
from .track import MouthTrack, mouth_track

__all__ = [
    "FPS",
    "MOUTH_HALF_WIDTH_MAX",
    "MOUTH_HALF_WIDTH_MIN",
    "MOUTH_INTERIOR_BGR",
    "MOUTH_LIP",
    "MOUTH_LIP_BGR",
    "MOUTH_LIP_SIDE",
    "MOUTH_OPEN_MAX",
    "STYLES",
    "FaceParams",
    "MouthTrack",
    "draw_face",
    "idle_params",
    "idle_performance",
    "measure_mouth",
    "mouth_track",
    "performance",
    "performance_params",
    "synth_speech",
    "write_character_videos",
]

log = logging.getLogger(__name__)


def write_character_videos(
    directory: str | os.PathLike,
    seed: int,
    duration_s: float,
    *,
    size: int = 512,
    style: str = "test",
    idle_s: float = 10.0,
) -> tuple[Path, Path]:
    """Write a synthetic character's source videos: ``speech.mp4`` and ``idle.mp4``.

    These are what a user would record of a real character -- a talking take and a silent
    listening take -- so the whole pipeline (library build, render, benchmark) can run on footage
    whose mouth is known exactly. ``speech.mp4`` carries the :func:`synth_speech` audio (seeded by
    ``seed``) as AAC; ``idle.mp4`` has no audio track.

    Parameters
    ----------
    directory
        Created if missing; existing files of the same names are replaced (atomically).
    seed
        Seeds the speech and all motion; the idle take uses ``seed + 1`` for its motion, so its
        blinks do not repeat the speech take's.
    duration_s
        Length of the speech take in seconds.
    size, style
        As in :func:`draw_face`.
    idle_s
        Length of the idle take in seconds.

    Returns
    -------
    tuple[Path, Path]
        ``(speech_path, idle_path)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _rig(style, int(size))
    sample_rate = ANALYSIS_SAMPLE_RATE
    audio = synth_speech(duration_s, seed, sample_rate)
    speech_path, idle_path = write_takes(
        directory,
        audio,
        sample_rate,
        performance(audio, sample_rate, seed, size, style),
        idle_performance(max(1, int(round(idle_s * FPS))), seed + 1, size, style),
        size=size,
    )
    log.info("wrote %s (%.1f s) and %s (%.1f s), style %s", speech_path, duration_s, idle_path, idle_s, style)
    return speech_path, idle_path
