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

import functools
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from scipy import signal

from .errors import InputError
from .media import ANALYSIS_SAMPLE_RATE, VideoEncoder, write_wav

log = logging.getLogger(__name__)

FPS = 25
"""Video frame rate of everything this module makes; frame ``i`` is centred at ``i / FPS`` s."""

MOUTH_INTERIOR_BGR: tuple[int, int, int] = (60, 0, 240)
"""Saturated red painted only inside the open mouth, in both styles (see :func:`measure_mouth`)."""

MOUTH_LIP_BGR: tuple[int, int, int] = (120, 0, 140)
"""Dark wine painted only on the lips, so the mouth's width can be read even when it is closed."""

STYLES = ("test", "fox")
"""Looks the rig can draw: ``"test"`` (a plain face) and ``"fox"`` (the demo character)."""

# --- mouth geometry, in pixels at 512 (the measurable definition of the units) -------------------
MOUTH_HALF_WIDTH_MIN = 30.0
"""Outer half-width of the lips at ``width = 0`` (a rounded "u")."""
MOUTH_HALF_WIDTH_MAX = 62.0
"""Outer half-width of the lips at ``width = 1`` (a spread "i")."""
MOUTH_OPEN_MAX = 60.0
"""Height of the open interior at ``opening = 1``."""
MOUTH_LIP = 5.0
"""Thickness of the upper and of the lower lip; a closed mouth is a band twice this thick."""
MOUTH_LIP_SIDE = 6.0
"""Thickness of the lips at the mouth corners (outer half-width minus interior half-width)."""
_MOUTH_UP = 0.2  # share of the opening that lifts the upper lip; the jaw drops the rest
_MOUTH_EXPONENT = 2.4  # superellipse exponent: blunt corners, so the extent is stable under AA
_MOUTH_POINTS = 40  # points per mouth edge

_REFERENCE_SIZE = 512
_SHIFT = 4  # sub-pixel bits for cv2 drawing: smooth motion of pupils and mouth
_ONE = 1 << _SHIFT


# ================================================================================================
# Audio: formant speech
# ================================================================================================

_VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (700.0, 1200.0, 2600.0),
    "e": (500.0, 1900.0, 2600.0),
    "i": (300.0, 2300.0, 3000.0),
    "o": (500.0, 900.0, 2500.0),
    "u": (320.0, 800.0, 2400.0),
}
"""F1, F2, F3 in Hz: distinct F2 makes front (i, e) and rounded (o, u) vowels tell apart."""
_FORMANT_BANDWIDTHS = (80.0, 100.0, 140.0)
_NOISE_FLOOR = 2e-4  # about -74 dBFS: a "silent" room is never digitally silent


def _resonator_cascade(formants: tuple[float, ...], sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """One IIR filter equal to a cascade of two-pole resonators (unity gain at DC).

    Folding the cascade into a single denominator polynomial means one ``lfilter`` call per vowel
    over the whole signal, which is what keeps minutes of audio to a fraction of a second.
    """
    a = np.array([1.0])
    for frequency, bandwidth in zip(formants, _FORMANT_BANDWIDTHS):
        frequency = min(frequency, 0.45 * sample_rate)
        radius = math.exp(-math.pi * bandwidth / sample_rate)
        theta = 2.0 * math.pi * frequency / sample_rate
        a = np.convolve(a, [1.0, -2.0 * radius * math.cos(theta), radius * radius])
    return np.array([a.sum()]), a


def _envelope(length: int, attack: int, release: int) -> np.ndarray:
    """A raised-cosine on/off gate: sounds start and stop without clicks."""
    env = np.ones(length, dtype=np.float32)
    attack = min(attack, length // 2)
    release = min(release, length - attack)
    if attack > 0:
        env[:attack] = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, attack, dtype=np.float32))
    if release > 0:
        env[length - release :] = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, release, dtype=np.float32))
    return env


@dataclass
class _Plan:
    """What :func:`synth_speech` will say: sample ranges and gains of every sound."""

    vowels: dict[str, list[tuple[int, int, float]]]
    fricatives: dict[str, list[tuple[int, int, float]]]
    bursts: list[tuple[int, int, float]]
    f0_times: list[float]
    f0_values: list[float]


_FRICATIVES = {"s": (4000.0, 0.10), "sh": (2200.0, 0.10), "f": (1300.0, 0.05)}
"""High-pass cut-off (Hz) and peak level relative to a full vowel, per fricative."""


def _plan_speech(duration_s: float, sample_rate: int, pauses: bool, rng: np.random.Generator) -> _Plan:
    """Lay out phrases, pauses and syllables (consonant + vowel) along the time axis."""
    plan = _Plan({v: [] for v in _VOWELS}, {f: [] for f in _FRICATIVES}, [], [], [])
    base_f0 = rng.uniform(110.0, 200.0)
    t = rng.uniform(0.15, 0.4) if pauses else 0.02
    while t < duration_s:
        phrase_end = min(t + rng.uniform(1.5, 4.0), duration_s)
        phrase_start = t
        phrase_gain = rng.uniform(0.7, 1.0)
        rate = rng.uniform(3.5, 5.5)  # syllables per second, jittered per syllable below
        while t < phrase_end - 0.12:
            length = min(1.0 / np.clip(rate * rng.uniform(0.8, 1.2), 3.0, 6.0), phrase_end - t)
            start = int(t * sample_rate)
            kind = rng.choice(["none", "fricative", "plosive"], p=[0.25, 0.4, 0.35])
            consonant = 0.0
            if kind == "fricative":
                consonant = rng.uniform(0.06, 0.10)
                name = str(rng.choice(list(_FRICATIVES)))
                end = start + int(consonant * sample_rate)
                plan.fricatives[name].append((start, end, _FRICATIVES[name][1] * phrase_gain))
            elif kind == "plosive":
                closure = rng.uniform(0.03, 0.05)
                burst = rng.uniform(0.012, 0.025)
                consonant = closure + burst
                b0 = start + int(closure * sample_rate)
                plan.bursts.append((b0, b0 + int(burst * sample_rate), rng.uniform(0.25, 0.5) * phrase_gain))
            else:
                consonant = rng.uniform(0.015, 0.035)  # a short glottal gap between vowels
            vowel_start = start + int(consonant * sample_rate)
            vowel_end = start + int(max(length, consonant + 0.08) * sample_rate)
            vowel = str(rng.choice(list(_VOWELS)))
            gain = phrase_gain * rng.uniform(0.35, 1.0)
            plan.vowels[vowel].append((vowel_start, vowel_end, gain))
            # intonation: declination over the phrase plus a random accent per syllable
            progress = (t - phrase_start) / max(phrase_end - phrase_start, 1e-3)
            accent = 1.0 + 0.12 * rng.standard_normal() + 0.15 * (gain - 0.6)
            plan.f0_times.append(t + length / 2)
            plan.f0_values.append(base_f0 * (1.12 - 0.25 * progress) * accent)
            t += length
        t = phrase_end + (rng.uniform(0.5, 1.2) if pauses else 0.0)
    return plan


def synth_speech(
    duration_s: float, seed: int, sample_rate: int = ANALYSIS_SAMPLE_RATE, pauses: bool = True
) -> np.ndarray:
    """Synthesise speech-like audio with a known structure, for tests and benchmarks.

    A glottal pulse train (f0 100-250 Hz with phrase declination and syllable accents) goes through
    a three-formant resonator cascade per vowel (a, e, i, o, u, with distinct F1/F2); vowels are
    separated by fricatives (high-passed noise), plosives (silent closure + noise burst) or short
    gaps, at 3-6 syllables per second with varied loudness. With ``pauses`` the speech comes in
    phrases of 1.5-4 s separated by 0.5-1.2 s of near-silence (a -74 dBFS noise floor), which is
    what the engine's silence handling must cope with.

    Everything is vectorised (one ``lfilter`` per vowel and per noise type over the whole signal),
    so three minutes take well under a second.

    Parameters
    ----------
    duration_s
        Length in seconds (> 0).
    seed
        Same seed, same audio; different seeds give different utterances and voices.
    sample_rate
        Output rate in Hz (>= 8000, so F3 and the fricatives fit below Nyquist).
    pauses
        Insert phrase pauses; without, one continuous stream of syllables.

    Returns
    -------
    numpy.ndarray
        float32 mono samples in [-1, 1], ``round(duration_s * sample_rate)`` long.

    Raises
    ------
    InputError
        A non-positive duration or a sample rate below 8 kHz.
    """
    if not duration_s > 0:
        raise InputError(f"synthetic speech needs a positive duration, not {duration_s}")
    if sample_rate < 8000:
        raise InputError(f"synthetic speech needs a sample rate of at least 8000 Hz, not {sample_rate}")
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    plan = _plan_speech(duration_s, sample_rate, pauses, rng)

    # Glottal source: pulses at each period of a smooth f0 contour, shaped like a glottal flow
    # derivative (two-pole low-pass plus lip-radiation differentiator), with a little aspiration.
    times = np.arange(n, dtype=np.float64) / sample_rate
    if plan.f0_times:
        f0 = np.interp(times, plan.f0_times, plan.f0_values)
    else:
        f0 = np.full(n, 150.0)
    f0 *= 1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * times)  # slight vibrato: no robotic monotone
    f0 = np.clip(f0, 90.0, 260.0)
    phase = np.cumsum(f0 / sample_rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    pole = 0.96
    source = signal.lfilter([1.0, -1.0], [1.0, -2.0 * pole, pole * pole], pulses)
    source += 0.02 * rng.standard_normal(n) * np.std(source)

    speech = np.zeros(n, dtype=np.float64)
    release = int(0.04 * sample_rate)
    attack = int(0.025 * sample_rate)
    for vowel, formants in _VOWELS.items():
        segments = plan.vowels[vowel]
        if not segments:
            continue
        b, a = _resonator_cascade(formants, sample_rate)
        voiced = signal.lfilter(b, a, source)
        voiced /= np.sqrt(np.mean(voiced**2)) + 1e-12  # every vowel equally loud at equal gain
        gate = np.zeros(n, dtype=np.float32)
        for start, end, gain in segments:
            end = min(end, n)
            if end - start > 2:
                gate[start:end] += gain * _envelope(end - start, attack, release)
        speech += gate * voiced

    noise = rng.standard_normal(n)
    nyquist = sample_rate / 2.0
    for name, segments in plan.fricatives.items():
        if not segments:
            continue
        cutoff = min(_FRICATIVES[name][0], 0.8 * nyquist)
        sos = signal.butter(4, cutoff, btype="highpass", fs=sample_rate, output="sos")
        hissing = signal.sosfilt(sos, noise)
        hissing /= np.sqrt(np.mean(hissing**2)) + 1e-12
        gate = np.zeros(n, dtype=np.float32)
        for start, end, gain in segments:
            end = min(end, n)
            if end - start > 2:
                gate[start:end] += gain * _envelope(end - start, int(0.015 * sample_rate), int(0.015 * sample_rate))
        speech += gate * hissing
    if plan.bursts:
        sos = signal.butter(2, [500.0, min(5000.0, 0.8 * nyquist)], btype="bandpass", fs=sample_rate, output="sos")
        crackle = signal.sosfilt(sos, noise[::-1])
        crackle /= np.sqrt(np.mean(crackle**2)) + 1e-12
        gate = np.zeros(n, dtype=np.float32)
        for start, end, gain in plan.bursts:
            end = min(end, n)
            if end > start:
                gate[start:end] += gain * np.exp(-np.arange(end - start) / (0.006 * sample_rate))
        speech += gate * crackle

    peak = np.max(np.abs(speech))
    if peak > 0:
        speech *= 0.85 / peak
    speech += _NOISE_FLOOR * rng.standard_normal(n)
    return np.clip(speech, -1.0, 1.0).astype(np.float32)


# ================================================================================================
# Ground truth: the mouth track
# ================================================================================================

_WINDOW_S = 0.05  # analysis window: longer than a 40 ms frame, so the track is gently smooth
_OPENING_RANGE_DB = 30.0
_REFERENCE_PERCENTILE = 95.0
_MIN_REFERENCE_DB = -40.0  # a clip quieter than this is treated as near-silence, not normalised up
_VOICED_RANGE_DB = 12.0  # how far above the silence floor before width leaves neutral
_WIDTH_BAND = (200.0, 3500.0)  # where F1 and F2 live
_WIDTH_CENTROID_HZ = (650.0, 2300.0)  # tilt-corrected centroid mapped (in log frequency) to width 0 .. 1
_SMOOTH = np.array([0.25, 0.5, 0.25])


@dataclass(frozen=True)
class MouthTrack:
    """Per-video-frame mouth shape, floats in ``[0, 1]``.

    Attributes
    ----------
    opening
        0 closed .. 1 fully open; see the module docstring for the pixel meaning.
    width
        0 rounded ("u") .. 1 spread ("i"); 0.5 is neutral (silence).
    """

    opening: np.ndarray
    width: np.ndarray


def _smooth(values: np.ndarray) -> np.ndarray:
    """3-tap smoothing with edge replication: mouths don't jump from one frame to the next."""
    if len(values) < 3:
        return values
    padded = np.concatenate([values[:1], values, values[-1:]])
    return np.convolve(padded, _SMOOTH, mode="valid")


def mouth_track(audio: np.ndarray, sample_rate: int, n_frames: int | None = None) -> MouthTrack:
    """The ground-truth mouth for any audio: what the rig would draw, frame by frame.

    For frame ``i`` (centred at ``i / FPS`` s) a 50 ms Hann window gives:

    * **opening** -- the frame's level in dB relative to the clip's own 95th percentile of frame
      levels (so the recording level does not matter), mapped linearly from ``ref - 30 dB`` (0) to
      ``ref`` (1) and clipped. The reference is never below -40 dBFS, so near-silent clips are not
      blown up to a gaping mouth.
    * **width** -- spectral shape, a stand-in for F2: the centroid of the power spectrum between
      200 Hz and 3.5 kHz after a +12 dB/octave tilt (which undoes the voice's natural roll-off so
      F2 counts as much as F1), mapped linearly in log frequency from 650 Hz (0) to 2300 Hz (1).
      Front vowels come out wide (i ~1, e ~0.8), "a" middling (~0.3), rounded vowels narrow
      (o, u ~0-0.1); fricatives, with their energy high up, read wide. The result is pulled towards
      the neutral 0.5 in proportion to how far the frame is above the silence floor (fully itself
      12 dB above it), so silence is neutral and noise in pauses cannot twitch the lips.

    Both are smoothed with a 3-tap [1/4, 1/2, 1/4] filter. It is a plain function of the audio so
    the same truth can be computed for any new audio a render is driven by.

    Parameters
    ----------
    audio
        Mono samples (multi-channel input is averaged).
    sample_rate
        Samples per second of ``audio``.
    n_frames
        Frames wanted; default ``round(len(audio) / sample_rate * FPS)``. Frames past the end of the
        audio are silence.

    Returns
    -------
    MouthTrack
        ``opening`` and ``width`` arrays of ``n_frames`` float64 values in [0, 1].
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim > 1:
        audio = audio.mean(axis=1 if audio.shape[0] > audio.shape[1] else 0)
    if sample_rate <= 0:
        raise InputError(f"sample rate must be positive, not {sample_rate}")
    if n_frames is None:
        n_frames = int(round(len(audio) / sample_rate * FPS))
    if n_frames <= 0:
        return MouthTrack(np.zeros(0), np.zeros(0))
    window = max(16, int(round(_WINDOW_S * sample_rate)) // 2 * 2)
    nfft = 1 << (window - 1).bit_length()
    hann = np.hanning(window).astype(np.float32)
    hann_power = float(np.sum(hann**2))
    centres = np.round(np.arange(n_frames) * sample_rate / FPS).astype(np.int64)
    half = window // 2
    tail = max(0, int(centres[-1]) + half - len(audio)) + 1
    padded = np.pad(audio, (half, tail))
    frames_view = np.lib.stride_tricks.sliding_window_view(padded, window)
    freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    band = (freqs >= _WIDTH_BAND[0]) & (freqs < min(_WIDTH_BAND[1], 0.5 * sample_rate))
    # +12 dB/octave undoes the glottal spectral tilt, so F2 weighs as much as F1 in the centroid
    emphasis = (freqs[band] / 1000.0) ** 4
    level_db = np.empty(n_frames)
    centroid = np.empty(n_frames)
    for first in range(0, n_frames, 2048):  # chunks keep memory flat for hour-long audio
        block = frames_view[centres[first : first + 2048]] * hann
        level_db[first : first + len(block)] = 10 * np.log10(np.sum(block**2, axis=1) / hann_power + 1e-12)
        power = (np.abs(np.fft.rfft(block, nfft, axis=1)) ** 2)[:, band] * emphasis
        centroid[first : first + len(block)] = (power @ freqs[band] + 1e-9) / (power.sum(axis=1) + 1e-12)
    reference = max(float(np.percentile(level_db, _REFERENCE_PERCENTILE)), _MIN_REFERENCE_DB)
    above_floor = level_db - (reference - _OPENING_RANGE_DB)
    opening = np.clip(above_floor / _OPENING_RANGE_DB, 0.0, 1.0)
    voiced = np.clip(above_floor / _VOICED_RANGE_DB, 0.0, 1.0)
    low, high = np.log2(_WIDTH_CENTROID_HZ)
    shape = np.clip((np.log2(np.maximum(centroid, 1.0)) - low) / (high - low), 0.0, 1.0)
    width = 0.5 + (shape - 0.5) * voiced
    return MouthTrack(np.clip(_smooth(opening), 0.0, 1.0), np.clip(_smooth(width), 0.0, 1.0))


# ================================================================================================
# Drawing
# ================================================================================================


@dataclass(frozen=True)
class FaceParams:
    """Everything that moves in one frame of the rig.

    Attributes
    ----------
    opening, width
        Mouth, in :class:`MouthTrack` units.
    blink
        0 eyes open .. 1 closed.
    gaze_x, gaze_y
        -1 .. 1: pupils to the viewer's left/up .. right/down.
    head_dx, head_dy
        Head shift in pixels at 512 (scaled with the frame).
    head_angle
        Head roll in degrees (counter-clockwise positive, as in OpenCV).
    """

    opening: float = 0.0
    width: float = 0.5
    blink: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    head_dx: float = 0.0
    head_dy: float = 0.0
    head_angle: float = 0.0


def _mouth_unit_shape() -> np.ndarray:
    """Superellipse profile ``(1 - |u|^n)^(1/n)`` sampled on ``u`` in [-1, 1]."""
    u = np.linspace(-1.0, 1.0, _MOUTH_POINTS)
    return u, np.power(np.clip(1.0 - np.abs(u) ** _MOUTH_EXPONENT, 0.0, 1.0), 1.0 / _MOUTH_EXPONENT)


_MOUTH_U, _MOUTH_PROFILE = _mouth_unit_shape()


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _mouth_polygons(opening: float, width: float, smile: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Outer (lips) and inner (interior) polygons at 512 scale, relative to the mouth centre.

    The interior is a superellipse of half-width ``a - MOUTH_LIP_SIDE`` and height
    ``opening * MOUTH_OPEN_MAX``, split ``_MOUTH_UP`` above and the rest below the centre line; the
    lips are the same shape grown by the lip thickness. ``smile`` lifts the corners by shifting
    whole columns, which changes neither the area nor the horizontal extent that
    :func:`measure_mouth` reads.
    """
    half_width = MOUTH_HALF_WIDTH_MIN + float(np.clip(width, 0, 1)) * (MOUTH_HALF_WIDTH_MAX - MOUTH_HALF_WIDTH_MIN)
    height = float(np.clip(opening, 0, 1)) * MOUTH_OPEN_MAX
    up, down = _MOUTH_UP * height, (1.0 - _MOUTH_UP) * height
    lift = -smile * _MOUTH_U**2
    x_out = half_width * _MOUTH_U
    outer = np.concatenate(
        [
            np.stack([x_out, lift - (up + MOUTH_LIP) * _MOUTH_PROFILE], axis=1),
            np.stack([x_out[::-1], (lift + (down + MOUTH_LIP) * _MOUTH_PROFILE)[::-1]], axis=1),
        ]
    )
    if height < 0.3:
        return outer, None
    inner_half = half_width - MOUTH_LIP_SIDE
    x_in = inner_half * _MOUTH_U
    lift_in = -smile * (x_in / half_width) ** 2
    inner = np.concatenate(
        [
            np.stack([x_in, lift_in - up * _MOUTH_PROFILE], axis=1),
            np.stack([x_in[::-1], (lift_in + down * _MOUTH_PROFILE)[::-1]], axis=1),
        ]
    )
    return outer, inner


_INTERIOR_FILL = _polygon_area(_mouth_polygons(1.0, 1.0, 0.0)[1]) / (
    2 * (MOUTH_HALF_WIDTH_MAX - MOUTH_LIP_SIDE) * MOUTH_OPEN_MAX
)
"""Interior area / (interior width x height): the same for every opening and width (same shape)."""


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates to cv2's fixed-point ``shift`` format."""
    return np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(image: np.ndarray, points: np.ndarray, colour: tuple[int, ...]) -> None:
    cv2.fillPoly(image, [_fixed(points)], colour, cv2.LINE_AA, _SHIFT)


def _ellipse(
    image: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], colour: tuple[int, ...],
    thickness: int = -1, angle: float = 0.0, start: float = 0.0, end: float = 360.0,
) -> None:
    c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
    a = (max(0, int(round(axes[0] * _ONE))), max(0, int(round(axes[1] * _ONE))))
    cv2.ellipse(image, c, a, angle, start, end, colour, thickness, cv2.LINE_AA, _SHIFT)


def _circle(image: np.ndarray, centre: tuple[float, float], radius: float, colour: tuple[int, ...]) -> None:
    c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
    cv2.circle(image, c, max(1, int(round(radius * _ONE))), colour, -1, cv2.LINE_AA, _SHIFT)


def _spline(points: list[tuple[float, float]], closed: bool = True, samples: int = 12) -> np.ndarray:
    """Catmull-Rom curve through control points: soft cartoon outlines from a few numbers."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.concatenate([p[-1:], p, p[:2]])
    else:
        p = np.concatenate([p[:1], p, p[-1:]])
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    if not closed:
        out.append(p[-2][None, :])
    return np.concatenate(out)


def _mask(shape: tuple[int, int], draw: Callable[[np.ndarray], None]) -> np.ndarray:
    """A float alpha mask in [0, 1] from a drawing callback that paints 255 on uint8."""
    canvas = np.zeros(shape, dtype=np.uint8)
    draw(canvas)
    return canvas.astype(np.float32) / 255.0


def _paint(image: np.ndarray, alpha: np.ndarray, colour: tuple[float, ...] | np.ndarray) -> None:
    """Blend a colour (or an image) into the uint8 ``image`` through an alpha mask, in place."""
    a = alpha[..., None]
    blended = image * (1.0 - a) + np.asarray(colour, dtype=np.float32) * a
    image[:] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


@dataclass
class _Eye:
    """Pre-computed pieces of one eye at one frame size (all in that size's pixels)."""

    x0: int
    y0: int
    cx: float  # centre, relative to (x0, y0)
    cy: float
    ea: float  # semi-axes of the eye opening
    eb: float
    eb_lid: float  # vertical semi-axis the lid travels over (opening plus rim)
    white: np.ndarray  # float32 alpha of the eye opening (where the pupil shows)
    cover: np.ndarray  # float32 alpha of opening plus rim (what a closed lid covers)
    sclera: np.ndarray  # uint8 patch of the sclera colour
    lid: np.ndarray  # uint8 patch: the surrounding skin or fur continued over the eye
    ys: np.ndarray  # float32 row coordinates, column vector
    arc: np.ndarray  # float32 per column: sqrt(1 - ((x - cx)/(ea + rim))^2), 0 outside
    iris_radius: float
    pupil_radius: float
    gaze_x: float  # pupil travel at gaze 1
    gaze_y: float
    iris_bgr: tuple[int, int, int]
    pupil_bgr: tuple[int, int, int]
    lash_bgr: tuple[int, int, int]
    lash: int  # lash line thickness in pixels
    highlights: tuple[tuple[float, float, float], ...]  # (dx, dy, r) relative to the iris centre


@dataclass
class _Rig:
    """One style at one size: the static picture and what moves on it."""

    base: np.ndarray
    eyes: tuple[_Eye, ...]
    mouth: tuple[float, float]  # centre in pixels
    smile: float  # corner lift at 512
    pivot: tuple[float, float]  # head roll centre in pixels
    scale: float


@dataclass(frozen=True)
class _EyeSpec:
    """An eye's design in 512-pixel units: where, how big, what colours, how far the pupil moves."""

    centre: tuple[float, float]
    axes: tuple[float, float]
    iris: float
    pupil: float
    travel: tuple[float, float]
    sclera_bgr: tuple[int, int, int]
    iris_bgr: tuple[int, int, int]
    pupil_bgr: tuple[int, int, int]
    lash_bgr: tuple[int, int, int]
    lash: float
    highlights: tuple[tuple[float, float, float], ...]
    rim: float = 2.0  # dark outline around the opening; closed lids cover it
    rim_bgr: tuple[int, int, int] = (45, 40, 50)


def _make_eye(spec: _EyeSpec, scale: float, base: np.ndarray) -> _Eye:
    """Cut an eye's region of interest and pre-compute its masks, so a frame costs microseconds."""
    cx, cy = spec.centre[0] * scale, spec.centre[1] * scale
    ea, eb = spec.axes[0] * scale, spec.axes[1] * scale
    rim = spec.rim * scale
    pad = 4 + rim + spec.lash * scale
    x0, y0 = int(math.floor(cx - ea - pad)), int(math.floor(cy - eb - pad))
    x1, y1 = int(math.ceil(cx + ea + pad)), int(math.ceil(cy + eb + pad))
    h, w = y1 - y0, x1 - x0
    rcx, rcy = cx - x0, cy - y0
    big = 4  # draw the opening 4x larger and area-average: an exact anti-aliased alpha
    centre = ((rcx + 0.5) * big - 0.5, (rcy + 0.5) * big - 0.5)

    def alpha(grow: float) -> np.ndarray:
        canvas = np.zeros((h * big, w * big), dtype=np.uint8)
        _ellipse(canvas, centre, ((ea + grow) * big, (eb + grow) * big), (255,))
        return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    white = alpha(0.0)
    cover = alpha(rim + 1.2)
    xs = np.arange(w, dtype=np.float32)
    rel = (xs - rcx) / (ea + rim + 0.5)
    arc = np.sqrt(np.clip(1.0 - rel**2, 0.0, 1.0)).astype(np.float32)
    # The lid is the surrounding skin or fur continued over the eye (inpainted from the static
    # picture), so a closed eye blends into the face instead of showing a flat patch.
    hole = cv2.dilate((cover > 0.01).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    lid = cv2.inpaint(base[y0:y1, x0:x1], hole, max(3.0, 4 * scale), cv2.INPAINT_TELEA)
    return _Eye(
        x0=x0, y0=y0, cx=rcx, cy=rcy, ea=ea, eb=eb, eb_lid=eb + rim + 0.5, white=white, cover=cover,
        sclera=np.full((h, w, 3), spec.sclera_bgr, dtype=np.uint8),
        lid=lid,
        ys=np.arange(h, dtype=np.float32)[:, None], arc=arc,
        iris_radius=spec.iris * scale, pupil_radius=spec.pupil * scale,
        gaze_x=spec.travel[0] * scale, gaze_y=spec.travel[1] * scale,
        iris_bgr=spec.iris_bgr, pupil_bgr=spec.pupil_bgr, lash_bgr=spec.lash_bgr,
        lash=max(1, int(round(spec.lash * scale))),
        highlights=tuple((dx * scale, dy * scale, r * scale) for dx, dy, r in spec.highlights),
    )


def _draw_eye(frame: np.ndarray, eye: _Eye, params: FaceParams) -> None:
    """Pupil (clipped to the eye opening), then the lid closing down to ``blink``, in place."""
    h, w = eye.white.shape
    roi = frame[eye.y0 : eye.y0 + h, eye.x0 : eye.x0 + w]
    ball = eye.sclera.copy()
    px = eye.cx + float(np.clip(params.gaze_x, -1, 1)) * eye.gaze_x
    py = eye.cy + float(np.clip(params.gaze_y, -1, 1)) * eye.gaze_y
    _circle(ball, (px, py), eye.iris_radius, eye.iris_bgr)
    _circle(ball, (px, py), eye.pupil_radius, eye.pupil_bgr)
    for dx, dy, r in eye.highlights:
        _circle(ball, (px + dx, py + dy), r, (255, 255, 255))
    roi[:] = cv2.blendLinear(ball, roi, eye.white, 1.0 - eye.white)
    blink = float(np.clip(params.blink, 0.0, 1.0))
    # lid edge: the top arc of the opening at 0, a straight line at 0.5, the bottom arc at 1
    edge = eye.cy + eye.eb_lid * (2.0 * blink - 1.0) * eye.arc
    if blink > 0.0:
        lid_alpha = np.clip(edge[None, :] - eye.ys + 0.5, 0.0, 1.0) * eye.cover
        roi[:] = cv2.blendLinear(eye.lid, roi, lid_alpha, 1.0 - lid_alpha)
    inside = eye.arc > 0.15
    xs = np.nonzero(inside)[0].astype(np.float32)
    if len(xs) > 1:
        points = np.stack([xs, edge[inside]], axis=1)
        cv2.polylines(roi, [_fixed(points)], False, eye.lash_bgr, eye.lash, cv2.LINE_AA, _SHIFT)


def _draw_mouth(frame: np.ndarray, rig: _Rig, params: FaceParams) -> None:
    outer, inner = _mouth_polygons(params.opening, params.width, rig.smile)
    centre = np.array(rig.mouth)
    _fill(frame, outer * rig.scale + centre, MOUTH_LIP_BGR)
    if inner is not None:
        _fill(frame, inner * rig.scale + centre, MOUTH_INTERIOR_BGR)


# ---- static layers ----------------------------------------------------------------------------


def _supersampled(size: int, paint: Callable[[np.ndarray, float], None], factor: int = 2) -> np.ndarray:
    """Paint a static layer at ``factor`` x the size and area-average it down: smooth edges for free,
    because static layers are painted once per (style, size) and cached."""
    big = np.zeros((size * factor, size * factor, 3), dtype=np.uint8)
    paint(big, size * factor / _REFERENCE_SIZE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _mask_poly(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    return _mask(shape, lambda c: _fill(c, points, (255,)))


def _mask_ellipse(shape: tuple[int, int], centre, axes, angle: float = 0.0) -> np.ndarray:
    return _mask(shape, lambda c: _ellipse(c, centre, axes, (255,), angle=angle))


def _scaled(points: list[tuple[float, float]], s: float) -> list[tuple[float, float]]:
    return [(x * s, y * s) for x, y in points]


def _paint_eye_static(img: np.ndarray, eye: _EyeSpec, s: float) -> None:
    """The static part of an eye: its dark rim and the sclera under the moving pupil."""
    cx, cy = eye.centre
    _ellipse(img, (cx * s, cy * s), ((eye.axes[0] + eye.rim) * s, (eye.axes[1] + eye.rim) * s), eye.rim_bgr)
    _ellipse(img, (cx * s, cy * s), (eye.axes[0] * s, eye.axes[1] * s), eye.sclera_bgr)


# test style: a plain face ------------------------------------------------------------------------
_TEST_SKIN = (170, 200, 238)
_TEST_BG = (205, 200, 190)
_TEST_EYES = tuple(
    _EyeSpec(
        centre=(x, 228.0), axes=(30.0, 17.0), iris=12.0, pupil=5.5, travel=(14.0, 4.0),
        sclera_bgr=(245, 245, 245), iris_bgr=(60, 80, 120), pupil_bgr=(20, 20, 20),
        lash_bgr=(40, 45, 60), lash=2.5, highlights=((3.5, -3.5, 2.2),),
        rim=1.5, rim_bgr=(120, 140, 170),
    )
    for x in (196.0, 316.0)
)


def _paint_test(img: np.ndarray, s: float) -> None:
    shape = img.shape[:2]
    img[:] = _TEST_BG
    _paint(img, _mask_ellipse(shape, (256 * s, 560 * s), (150 * s, 140 * s)), (140, 120, 90))  # shirt
    _paint(img, _mask_poly(shape, np.array(_scaled([(210, 380), (302, 380), (308, 470), (204, 470)], s))), _TEST_SKIN)
    for x in (96, 416):  # ears
        _paint(img, _mask_ellipse(shape, (x * s, 265 * s), (22 * s, 40 * s)), (155, 188, 228))
    _paint(img, _mask_ellipse(shape, (256 * s, 262 * s), (160 * s, 200 * s)), _TEST_SKIN)
    _paint(img, _mask_ellipse(shape, (256 * s, 120 * s), (165 * s, 85 * s)), (50, 60, 80))  # hair
    _paint(img, _mask_ellipse(shape, (256 * s, 160 * s), (150 * s, 45 * s)), _TEST_SKIN)
    for eye in _TEST_EYES:
        cx, cy = eye.centre
        _paint_eye_static(img, eye, s)
        _ellipse(img, (cx * s, (cy - 20) * s), (34 * s, 12 * s), (50, 65, 90), max(1, round(6 * s)), start=200, end=340)
    nose = _spline([(250, 250), (242, 300), (238, 318), (256, 326), (274, 318)], closed=False)
    cv2.polylines(img, [_fixed(nose * s)], False, (120, 150, 195), max(1, round(4 * s)), cv2.LINE_AA, _SHIFT)


# fox style: the demo character ------------------------------------------------------------------
_FUR = (40, 130, 238)
_FUR_DARK = (28, 92, 190)
_FUR_TIP = (50, 48, 62)
_CREAM = (235, 245, 250)
_INNER_EAR = (180, 208, 250)
_FOX_NOSE = (45, 35, 40)
_FOX_EYES = tuple(
    _EyeSpec(
        centre=(x, 266.0), axes=(28.0, 34.0), iris=22.0, pupil=13.0, travel=(9.0, 8.0),
        sclera_bgr=(250, 250, 250), iris_bgr=(40, 80, 135), pupil_bgr=(30, 22, 25),
        lash_bgr=(45, 40, 50), lash=5.0, highlights=((7.0, -8.5, 6.5), (-7.5, 8.5, 3.0)),
        rim=2.5,
    )
    for x in (194.0, 318.0)
)
_FOX_HEAD = [
    (256, 132), (336, 146), (390, 196), (410, 258), (410, 300), (446, 346), (446, 346), (410, 360),
    (436, 394), (436, 394), (374, 402), (330, 440), (256, 462), (182, 440), (138, 402), (76, 394),
    (76, 394), (102, 360), (66, 346), (66, 346), (102, 300), (102, 258), (122, 196), (176, 146),
]
_FOX_CHEEK = [
    (256, 318), (286, 330), (322, 318), (360, 304), (398, 300), (446, 346), (446, 346), (410, 360),
    (436, 394), (436, 394), (374, 402), (330, 440), (256, 462), (182, 440), (138, 402), (76, 394),
    (76, 394), (102, 360), (66, 346), (66, 346), (114, 300), (152, 304), (190, 318), (226, 330),
]


def _bezier(p0, control, p1, samples: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(control) + t**2 * np.array(p1)


def _ear(flip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outer ear, inner ear and dark-tip polygons of one ear (left, or mirrored to the right)."""
    outer = np.concatenate([_bezier((132, 262), (86, 150), (104, 40)), _bezier((104, 40), (178, 78), (240, 168))[1:]])
    inner = np.concatenate([_bezier((150, 236), (118, 150), (118, 82)), _bezier((118, 82), (170, 112), (214, 176))[1:]])
    tip = np.concatenate(
        [_bezier((96, 118), (96, 70), (104, 40)), _bezier((104, 40), (140, 58), (168, 86))[1:],
         _bezier((168, 86), (140, 118), (96, 118))[1:]]
    )
    if flip:
        outer, inner, tip = ([(_REFERENCE_SIZE - p[:, 0]), p[:, 1]] for p in (outer, inner, tip))
        outer, inner, tip = (np.stack(p, axis=1) for p in (outer, inner, tip))
    return outer, inner, tip


def _paint_fox(img: np.ndarray, s: float) -> None:
    shape = img.shape[:2]
    n = shape[0]
    # background: a gentle sky-to-mint gradient with a soft light behind the head
    rows = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
    top, bottom = np.array((242, 222, 178), np.float32), np.array((222, 240, 226), np.float32)
    img[:] = np.round(top * (1 - rows) + bottom * rows).astype(np.uint8)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / s
    glow = np.exp(-((xx - 256) ** 2 + (yy - 270) ** 2) / (2 * 170.0**2))
    _paint(img, 0.35 * glow, (250, 248, 240))
    # body: shoulders with a cream bib
    _paint(img, _mask_ellipse(shape, (256 * s, 590 * s), (190 * s, 170 * s)), _FUR)
    _paint(img, _mask_ellipse(shape, (256 * s, 560 * s), (80 * s, 120 * s)), _CREAM)
    # ears: orange, pale inside, dark tips
    for flip in (False, True):
        outer, inner, tip = _ear(flip)
        ear_mask = _mask_poly(shape, outer * s)
        _paint(img, ear_mask, _FUR)
        _paint(img, _mask_poly(shape, inner * s), _INNER_EAR)
        _paint(img, _mask_poly(shape, tip * s) * ear_mask, _FUR_TIP)
    # head with soft darker fur towards the rim and a lighter forehead
    head = _spline(_FOX_HEAD, samples=10) * s
    head_mask = _mask_poly(shape, head)
    inside = cv2.distanceTransform((head_mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / s
    rim = np.clip(1.0 - inside / 45.0, 0.0, 1.0) ** 2
    fur = np.array(_FUR, np.float32) * (1 - rim[..., None]) + np.array(_FUR_DARK, np.float32) * rim[..., None]
    _paint(img, head_mask, fur)
    forehead = np.exp(-((xx - 256) ** 2 / (2 * 70.0**2) + (yy - 205) ** 2 / (2 * 50.0**2)))
    _paint(img, head_mask * 0.3 * forehead, (110, 185, 252))
    # cream cheeks and muzzle (the tufts follow the head outline), leaving an orange nose bridge
    cheeks = _mask_poly(shape, _spline(_FOX_CHEEK, samples=10) * s)
    _paint(img, cheeks, _CREAM)
    for x in (168, 344):  # rosy cheeks, kept peachy (no red: red belongs to the mouth)
        blush = np.exp(-((xx - x) ** 2 / (2 * 20.0**2) + (yy - 360) ** 2 / (2 * 12.0**2)))
        _paint(img, cheeks * 0.5 * blush, (165, 190, 250))
    # eyes and brows
    for eye in _FOX_EYES:
        _paint_eye_static(img, eye, s)
        cx = eye.centre[0]
        brow = _spline([(cx - 24, 218), (cx, 208), (cx + 24, 214)], closed=False) * s
        cv2.polylines(img, [_fixed(brow)], False, _FUR_DARK, max(1, round(7 * s)), cv2.LINE_AA, _SHIFT)
    # nose: soft rounded triangle with a highlight, philtrum down to the mouth
    nose = _spline([(256, 352), (233, 337), (231, 325), (256, 318), (281, 325), (279, 337)], samples=8) * s
    cv2.polylines(img, [_fixed(np.array([[256, 350], [256, 380]]) * s)], False, _FOX_NOSE, max(1, round(3.5 * s)),
                  cv2.LINE_AA, _SHIFT)
    _fill(img, nose, _FOX_NOSE)
    _ellipse(img, (247 * s, 326 * s), (9 * s, 4.5 * s), (205, 205, 215), angle=-10)


_PAINTERS = {"test": _paint_test, "fox": _paint_fox}
_STYLE_SPECS = {
    "test": dict(eyes=_TEST_EYES, mouth=(256.0, 368.0), smile=3.0, pivot=(256.0, 470.0)),
    "fox": dict(eyes=_FOX_EYES, mouth=(256.0, 384.0), smile=7.0, pivot=(256.0, 470.0)),
}


@functools.lru_cache(maxsize=8)
def _rig(style: str, size: int) -> _Rig:
    """Build (once per style and size) the static picture and the moving parts' pre-computations."""
    if style not in _PAINTERS:
        raise InputError(f"unknown style {style!r}: choose one of {', '.join(STYLES)}")
    if size < 64:
        raise InputError(f"frame size {size} is too small for the synthetic face (64 or more)")
    spec = _STYLE_SPECS[style]
    scale = size / _REFERENCE_SIZE
    base = _supersampled(size, _PAINTERS[style])
    eyes = tuple(_make_eye(e, scale, base) for e in spec["eyes"])
    mx, my = spec["mouth"]
    px, py = spec["pivot"]
    log.debug("built the %s rig at %d px", style, size)
    return _Rig(base, eyes, (mx * scale, my * scale), float(spec["smile"]), (px * scale, py * scale), scale)


def draw_face(params: FaceParams, size: int = 512, style: str = "test") -> np.ndarray:
    """Draw one frame of the rig.

    The static picture (background, head, ears, nose, ...) is painted once per style and size and
    cached; a frame copies it, composites the eyes (pupils clipped to the eye opening, lids down to
    ``blink``), fills the two mouth polygons and, if the head moved, applies one ``warpAffine``.
    That keeps a 512 x 512 frame at about 2 ms on one core.

    Parameters
    ----------
    params
        Mouth, eyes and head pose.
    size
        Frame side in pixels (square; >= 64).
    style
        ``"test"`` (plain face) or ``"fox"`` (the demo character).

    Returns
    -------
    numpy.ndarray
        BGR uint8 ``(size, size, 3)``.

    Raises
    ------
    InputError
        Unknown style or a too-small size.
    """
    rig = _rig(style, int(size))
    frame = rig.base.copy()
    for eye in rig.eyes:
        _draw_eye(frame, eye, params)
    _draw_mouth(frame, rig, params)
    if params.head_dx or params.head_dy or params.head_angle:
        matrix = cv2.getRotationMatrix2D(rig.pivot, float(params.head_angle), 1.0)
        matrix[0, 2] += params.head_dx * rig.scale
        matrix[1, 2] += params.head_dy * rig.scale
        frame = cv2.warpAffine(frame, matrix, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    return frame


# ================================================================================================
# Performances
# ================================================================================================


def _smooth_noise(n: int, rng: np.random.Generator, amplitude: float, frequencies: tuple[float, float]) -> np.ndarray:
    """A sum of three slow sinusoids with random rates and phases: drift that never repeats visibly."""
    t = np.arange(n) / FPS
    out = np.zeros(n)
    for _ in range(3):
        out += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * rng.uniform(*frequencies) * t + rng.uniform(0, 2 * np.pi))
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
        FaceParams(0.0, 0.5, float(blink[i]), float(gaze_x[i]), float(gaze_y[i]), float(head_dx[i]),
                   float(head_dy[i]), float(head_angle[i]))
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


# ================================================================================================
# Measuring the mouth from pixels
# ================================================================================================


def _colour_features() -> np.ndarray:
    """Two affine colour features (a 2 x 4 matrix for ``cv2.transform``).

    * ``interior``: 1 on :data:`MOUTH_INTERIOR_BGR`, 0 on the lips, on the fox's cream muzzle and
      on the test face's skin;
    * ``mouth``: 1 on both interior and lips, 0 on muzzle and skin.

    Being affine in BGR, a feature of a blend is the blend of the features: a 50/50 mix of interior
    and lips (or skin) -- an anti-aliased edge, chroma subsampling, a cross-faded frame -- reads as
    exactly half. So summing ``interior`` over pixels gives the interior *area* unbiased by edges,
    and thresholding ``mouth`` at 0.5 cuts the lips exactly at their edge. The colours were chosen
    so every other colour either style paints scores at most about 0.2 on both features.
    """
    anchors = np.array([MOUTH_INTERIOR_BGR, MOUTH_LIP_BGR, _CREAM, _TEST_SKIN], dtype=np.float64)
    design = np.concatenate([anchors, np.ones((4, 1))], axis=1)
    interior = np.linalg.solve(design, [1.0, 0.0, 0.0, 0.0])
    mouth = np.linalg.solve(design, [1.0, 1.0, 0.0, 0.0])
    return np.stack([interior, mouth]).astype(np.float32)


_FEATURES = _colour_features()
_AA_GROWTH = 1.0  # pixels an anti-aliased cv2 polygon fill adds to a shape's width and height
_BLOB_THRESHOLD = 0.35  # mouth feature: below a 50/50 blend with skin (0.5), above any scene colour (~0.1)
_INTERIOR_DEADZONE = 0.25  # interior feature below this is not interior (scene colours reach ~0.2)


def measure_mouth(frame: np.ndarray) -> tuple[float, float]:
    """Read the mouth's (opening, width) back from a frame, in :class:`MouthTrack` units.

    How: two affine colour features (see ``_colour_features``) are computed for the whole frame,
    so the mouth is found wherever the head moved. The largest connected blob where the ``mouth``
    feature exceeds 0.35 (below the 0.5 of a 50/50 blend with skin, above the ~0.1 any other
    colour of either style reaches) is the lips plus interior; its roll is estimated from its
    second moments (the mouth is left-right symmetric) and undone on a small crop. Then

    * width = (horizontal extent of the blob, sub-pixel from the anti-aliased end columns, in
      512-pixels - 60) / 64, i.e. the inverse of the drawn lip extent;
    * opening = interior area / (interior width x the shape's fill factor) / 60, where interior
      area is the sum of the ``interior`` feature (with a 0.25..0.75 dead zone mapped to 0..1)
      and interior width is the measured lip extent minus the two corner lip thicknesses.

    Both undo the ~1 px that OpenCV's anti-aliased polygon fill adds to a shape's width and height.
    On drawn frames the error is below 0.015 at 512 px and 0.03 at 256 px (including head motion);
    after an H.264 (crf 23) round trip below about 0.07 at 512 and 0.1 at 256.

    Area over width, not vertical extent, makes the opening insensitive to head roll, and summing
    an affine feature makes it tolerant of anti-aliasing, H.264 and 4:2:0 chroma: they move colour
    between neighbouring pixels but hardly change its sum. A pixel blended 50/50 with lip or skin
    colour counts as half an interior pixel, so a cross-fade of two mouths measures between them.

    Parameters
    ----------
    frame
        A square-ish BGR uint8 frame of the rig, any size (units scale with ``frame.shape[0]``).

    Returns
    -------
    tuple[float, float]
        ``(opening, width)`` clipped to [0, 1]; ``(0.0, 0.5)`` when no mouth is visible.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"measure_mouth needs a BGR frame, got shape {frame.shape}")
    scale = frame.shape[0] / _REFERENCE_SIZE
    features = cv2.transform(frame.astype(np.float32), _FEATURES)
    mouth = features[..., 1]
    blob = (mouth > _BLOB_THRESHOLD).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(blob, connectivity=8)
    if count <= 1:
        return 0.0, 0.5
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < 40 * scale * scale:
        return 0.0, 0.5
    x, y, w, h = (int(v) for v in stats[best, :4])
    pad = int(6 + 0.3 * max(w, h))
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(frame.shape[1], x + w + pad), min(frame.shape[0], y + h + pad)
    crop = features[y0:y1, x0:x1]
    member = (labels[y0:y1, x0:x1] == best).astype(np.float32)
    # Roll: from the blob's second moments. Undo only a clearly defined, small angle.
    moments = cv2.moments(member, binaryImage=True)
    mu20, mu02, mu11 = moments["mu20"], moments["mu02"], moments["mu11"]
    angle = 0.0
    if abs(mu20 - mu02) > 0.2 * (mu20 + mu02):
        angle = 0.5 * math.degrees(math.atan2(2 * mu11, mu20 - mu02))  # axis of the larger spread
        if angle > 45:
            angle -= 90
        elif angle < -45:
            angle += 90
        if abs(angle) > 8:
            angle = 0.0
    cx, cy = centroids[best][0] - x0, centroids[best][1] - y0
    # keep only what is near this blob, so nothing else in the crop is counted
    near = cv2.dilate(member, np.ones((5, 5), np.uint8), iterations=max(1, int(round(2 * scale))))
    interior = np.clip((crop[..., 0] - _INTERIOR_DEADZONE) / (1 - 2 * _INTERIOR_DEADZONE), 0, 1) * near
    lips = np.clip(crop[..., 1], 0, 1) * near
    if angle:
        rotation = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, 1.0)
        size = (crop.shape[1], crop.shape[0])
        lips = cv2.warpAffine(lips, rotation, size, flags=cv2.INTER_LINEAR)
    columns = np.clip((lips.max(axis=0) - 0.15) / 0.7, 0.0, 1.0)
    # cv2's anti-aliased polygon fill grows a shape by about half a pixel on every side: undo it
    extent_px = float(columns.sum()) - _AA_GROWTH
    inner_px = max(extent_px - 2 * MOUTH_LIP_SIDE * scale, 1.0)
    height_px = float(interior.sum()) / (_INTERIOR_FILL * (inner_px + _AA_GROWTH)) - _AA_GROWTH
    opening = height_px / (MOUTH_OPEN_MAX * scale)
    width = (extent_px / scale / 2 - MOUTH_HALF_WIDTH_MIN) / (MOUTH_HALF_WIDTH_MAX - MOUTH_HALF_WIDTH_MIN)
    return float(np.clip(opening, 0.0, 1.0)), float(np.clip(width, 0.0, 1.0))


# ================================================================================================
# Character videos
# ================================================================================================


def write_character_videos(
    directory: str | os.PathLike,
    seed: int,
    duration_s: float,
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
    speech_path, idle_path = directory / "speech.mp4", directory / "idle.mp4"
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        wav = write_wav(Path(scratch) / "speech.wav", audio, sample_rate)
        with VideoEncoder(speech_path, size, FPS, audio_path=wav) as encoder:
            for frame in performance(audio, sample_rate, seed, size, style):
                encoder.write(frame)
    with VideoEncoder(idle_path, size, FPS) as encoder:
        for frame in idle_performance(max(1, int(round(idle_s * FPS))), seed + 1, size, style):
            encoder.write(frame)
    log.info("wrote %s (%.1f s) and %s (%.1f s), style %s", speech_path, duration_s, idle_path, idle_s, style)
    return speech_path, idle_path
