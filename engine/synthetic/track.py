"""The ground truth: the mouth a sound calls for, per video frame (:func:`mouth_track`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .geometry import FPS

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
