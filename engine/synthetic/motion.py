"""Performances: the rig reading audio, and sitting still (blinks, drift, head motion).

The puppet (:mod:`engine.makers.puppet`) moves a picture with the same parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .drawing import FaceParams
from .face import _rig, draw_face
from .geometry import FPS
from .track import mouth_track


def _smooth_noise(
    n: int, rng: np.random.Generator, amplitude: float, frequencies: tuple[float, float]
) -> np.ndarray:
    """A sum of three slow sinusoids with random rates and phases: drift that never repeats visibly."""
    t = np.arange(n) / FPS
    out = np.zeros(n)
    for _ in range(3):
        out += rng.uniform(0.5, 1.0) * np.sin(
            2 * np.pi * rng.uniform(*frequencies) * t + rng.uniform(0, 2 * np.pi)
        )
    return amplitude * out / 2.0


def _blinks(n: int, rng: np.random.Generator) -> np.ndarray:
    """Blink curve per frame: one every 2-6 s (the first within 3 s), about 150 ms long.

    Each blink is placed so its fully-closed instant falls on a frame; otherwise a 40 ms frame
    grid could sample a 150 ms blink only half-closed.
    """
    blink = np.zeros(n)
    t = rng.uniform(0.5, 3.0)
    while t < n / FPS:
        peak = int(round(t * FPS))
        duration = rng.uniform(0.12, 0.18)
        close, reopen = 0.4 * duration, 0.6 * duration
        for i in range(max(0, peak - 3), min(n, peak + 5)):
            tau = (i - peak) / FPS
            if -close < tau <= 0:
                value = math.sin(0.5 * math.pi * (tau + close) / close) ** 2
            elif 0 < tau < reopen:
                value = math.cos(0.5 * math.pi * tau / reopen) ** 2
            else:
                value = 0.0
            blink[i] = max(blink[i], value)
        t += rng.uniform(2.0, 6.0)
    return blink


def _motion(n: int, rng: np.random.Generator, opening: np.ndarray) -> list[FaceParams]:
    """Natural-looking non-mouth motion: blinks, gaze drift, a gently moving head."""
    blink = _blinks(n, rng)
    gaze_x = np.clip(_smooth_noise(n, rng, 0.45, (0.03, 0.15)), -1, 1)
    gaze_y = np.clip(_smooth_noise(n, rng, 0.3, (0.03, 0.12)), -1, 1)
    head_dx = _smooth_noise(n, rng, 3.0, (0.05, 0.3))
    nod = np.convolve(opening, np.ones(9) / 9, mode="same") if n else opening
    head_dy = _smooth_noise(n, rng, 2.0, (0.05, 0.3)) + 1.5 * nod  # speakers nod a little on stress
    head_angle = np.clip(_smooth_noise(n, rng, 1.5, (0.04, 0.25)), -2.0, 2.0)
    return [
        FaceParams(
            0.0,
            0.5,
            float(blink[i]),
            float(gaze_x[i]),
            float(gaze_y[i]),
            float(head_dx[i]),
            float(head_dy[i]),
            float(head_angle[i]),
        )
        for i in range(n)
    ]


def performance_params(audio: np.ndarray, sample_rate: int, seed: int) -> list[FaceParams]:
    """The per-frame :class:`FaceParams` of :func:`performance`, for tests that need the truth."""
    track = mouth_track(audio, sample_rate)
    rng = np.random.default_rng(seed)
    motion = _motion(len(track.opening), rng, track.opening)
    return [
        FaceParams(float(o), float(w), p.blink, p.gaze_x, p.gaze_y, p.head_dx, p.head_dy, p.head_angle)
        for o, w, p in zip(track.opening, track.width, motion)
    ]


def performance(
    audio: np.ndarray, sample_rate: int, seed: int, size: int = 512, style: str = "test"
) -> Iterator[np.ndarray]:
    """The "recorded" speech video: the rig lip-syncing ``audio`` exactly per :func:`mouth_track`.

    Mouth from the track; blinks every 2-6 s (~150 ms); the head drifts a few pixels and rolls
    within +-2 degrees, nodding slightly on loud syllables; the gaze drifts slowly. All the
    non-mouth motion is drawn from ``seed``, so a performance is reproducible.

    Parameters
    ----------
    audio, sample_rate
        The speech to perform (mono).
    seed
        Seeds blinks, gaze and head motion.
    size, style
        As in :func:`draw_face`.

    Yields
    ------
    numpy.ndarray
        ``round(len(audio) / sample_rate * FPS)`` BGR uint8 frames.
    """
    _rig(style, int(size))  # fail early on a bad style or size
    for params in performance_params(audio, sample_rate, seed):
        yield draw_face(params, size, style)


def idle_params(n_frames: int, seed: int) -> list[FaceParams]:
    """The per-frame :class:`FaceParams` of :func:`idle_performance`."""
    rng = np.random.default_rng(seed)
    return _motion(max(0, int(n_frames)), rng, np.zeros(max(0, int(n_frames))))


def idle_performance(n_frames: int, seed: int, size: int = 512, style: str = "test") -> Iterator[np.ndarray]:
    """The character listening in silence: mouth closed (neutral width), blinks, gaze, head drift.

    Parameters
    ----------
    n_frames
        How many frames.
    seed
        Seeds blinks, gaze and head motion.
    size, style
        As in :func:`draw_face`.

    Yields
    ------
    numpy.ndarray
        BGR uint8 frames.
    """
    _rig(style, int(size))
    for params in idle_params(n_frames, seed):
        yield draw_face(params, size, style)
