"""Acoustic features along the video timeline, and voice activity (where the pauses are).

Everything here runs at the video's frame rate: feature frame ``i`` is centred on video frame
``i`` (time ``i / FPS``), so a library frame and the sound it was recorded with share one index,
and new audio is described on exactly the grid the output video will have.

The per-frame vector has 16 numbers (:data:`FEATURE_DIM`):

====== =======================================================================================
index  meaning
====== =======================================================================================
0      loudness: frame RMS in dB relative to the recording's 95th-percentile frame, / 10,
       floored at -6 (60 dB down); relative, so a quiet microphone and a loud one agree
1      brightness: log2 of the spectral centroid, z-scored over the recording's voiced frames
2..15  MFCC c1..c14 (c0 is loudness again, left out), each z-scored over the voiced frames
====== =======================================================================================

The z-scoring ("cepstral mean and variance normalisation") uses only the frames the voice
activity detector calls speech, so long pauses do not skew it; it removes most of the
difference between one speaker, microphone and room and another, which is exactly what retrieval
across recordings needs. A segment's 16-number fingerprint is the mean of its frames' vectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft

FPS = 25
"""Frames per second of every library and every output video."""

SEGMENT_FRAMES = 10
"""A library segment is 10 frames (0.4 s): long enough to carry a syllable's mouth motion."""

SEGMENT_STEP = 2
"""Segments start every 2 frames, so they overlap and the planner has many choices."""

FEATURE_DIM = 16

LOUDNESS, BRIGHTNESS = 0, 1

_N_FFT = 1024
_N_MELS = 40
_N_MFCC = 14
_EPS = 1e-10


@dataclass(frozen=True)
class VadSettings:
    """Energy-based voice activity detection with hangover.

    A frame is speech when its level is above ``max(p95 - range_db, floor + margin_db)``, where
    p95 is the recording's 95th-percentile frame level and floor its 10th percentile (the noise
    floor, if the recording has pauses). Speech is then held for ``hangover_frames`` after it
    falls below the threshold (word endings are quiet), and pauses shorter than
    ``min_pause_frames`` are filled: only real pauses count as silence. A recording whose loudest
    frames are below ``silence_dbfs`` is silence throughout.
    """

    range_db: float = 30.0
    margin_db: float = 6.0
    hangover_frames: int = 3
    min_pause_frames: int = 8
    silence_dbfs: float = -55.0


def frame_count(n_samples: int, sample_rate: int) -> int:
    """Video frames that cover ``n_samples`` of audio to within half a frame."""
    return max(1, int(round(n_samples / sample_rate * FPS)))


_BLOCK_FRAMES = 750
"""Features are computed 30 s at a time: memory stays flat however long the audio."""


def _hann(length: int) -> np.ndarray:
    """Periodic Hann window (what spectral analysis wants; ``np.hanning`` is the symmetric one)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)


def mel_filterbank(
    sample_rate: int, n_fft: int = _N_FFT, n_mels: int = _N_MELS, fmin: float = 60.0, fmax: float = 7600.0
) -> np.ndarray:
    """Triangular mel filters on the Slaney mel scale with Slaney area normalisation.

    The same filters as ``librosa.filters.mel`` with its defaults (a test checks it): librosa
    itself is not used at render time because importing it loads numba and LLVM, about 190 MB,
    half the memory a long render may use.
    """
    fmax = min(fmax, sample_rate / 2)

    def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        linear = hz / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log_part, linear)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        mel = np.asarray(mel, dtype=np.float64)
        return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _power_blocks(audio: np.ndarray, sample_rate: int, n_frames: int) -> Iterator[np.ndarray]:
    """Power spectra ``(n_fft / 2 + 1, frames)`` of frames ``0 .. n_frames``, in blocks.

    Frame ``i`` is the ``_N_FFT`` samples centred on sample ``i * hop``, with zeros beyond the
    ends of the audio (a centred STFT); each block is cut from the audio with its real
    neighbouring samples, so the blocks join without a seam and memory stays flat.
    """
    hop = sample_rate // FPS
    half = _N_FFT // 2
    window = _hann(_N_FFT)
    audio = np.asarray(audio, dtype=np.float32)
    for first in range(0, n_frames, _BLOCK_FRAMES):
        last = min(first + _BLOCK_FRAMES, n_frames)
        start, stop = first * hop - half, (last - 1) * hop + half + (_N_FFT % 2)
        piece = audio[max(start, 0) : max(min(stop, len(audio)), 0)]
        before = max(-start, 0)
        piece = np.pad(piece, (before, (stop - start) - before - len(piece)))
        frames = np.lib.stride_tricks.sliding_window_view(piece, _N_FFT)[::hop]
        spectrum = scipy.fft.rfft(frames * window, axis=1)
        yield (spectrum.real**2 + spectrum.imag**2).T.astype(np.float32)


def frame_levels_db(audio: np.ndarray, sample_rate: int, n_frames: int | None = None) -> np.ndarray:
    """RMS level of each video frame in dBFS (a full-scale sine is about -3 dB)."""
    return raw_features(audio, sample_rate, n_frames)[1]


def _levels_from_power(power: np.ndarray) -> np.ndarray:
    # Parseval for a Hann-windowed frame: mean power per sample of the frame.
    window_energy = float(np.sum(_hann(_N_FFT).astype(np.float64) ** 2))
    frame_power = (power[0] + power[-1] + 2 * power[1:-1].sum(axis=0)) / (_N_FFT * window_energy)
    return 10 * np.log10(frame_power + _EPS)


def raw_features(
    audio: np.ndarray, sample_rate: int, n_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Un-normalised per-frame features and levels.

    Returns
    -------
    features : ndarray, shape (n_frames, 16)
        Level in dBFS, log2 centroid, MFCC c1..c14, before normalisation.
    levels : ndarray, shape (n_frames,)
        The level in dBFS (same as column 0), for the voice activity detector.
    """
    n_frames = n_frames or frame_count(len(audio), sample_rate)
    mel_basis = mel_filterbank(sample_rate)
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / sample_rate).astype(np.float32)
    features = np.empty((n_frames, FEATURE_DIM), dtype=np.float32)
    first = 0
    for power in _power_blocks(audio, sample_rate, n_frames):
        last = first + power.shape[1]
        levels = _levels_from_power(power)
        mel = mel_basis @ power
        log_mel = 10 * np.log10(mel + 1e-20)
        # 80 dB of range below each frame's strongest band: independent of gain and of blocks.
        log_mel = np.maximum(log_mel, log_mel.max(axis=0, keepdims=True) - 80.0)
        mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=0)[1 : _N_MFCC + 1]
        centroid = (freqs[:, None] * power).sum(axis=0) / (power.sum(axis=0) + _EPS)
        features[first:last, LOUDNESS] = levels
        features[first:last, BRIGHTNESS] = np.log2(np.maximum(centroid, 50.0))
        features[first:last, 2:] = mfcc.T
        first = last
    return features, features[:, LOUDNESS].copy()


def voice_activity(levels_db: np.ndarray, settings: VadSettings = VadSettings()) -> np.ndarray:
    """Boolean speech mask per frame from frame levels (see :class:`VadSettings`)."""
    levels_db = np.asarray(levels_db, dtype=np.float64)
    if levels_db.size == 0:
        return np.zeros(0, dtype=bool)
    loud = np.percentile(levels_db, 95)
    if loud < settings.silence_dbfs:
        return np.zeros(levels_db.shape, dtype=bool)
    floor = np.percentile(levels_db, 10)
    threshold = max(loud - settings.range_db, floor + settings.margin_db)
    active = levels_db > threshold
    # Hangover: hold speech for a few frames after it drops.
    held = active.copy()
    countdown = 0
    for i, is_active in enumerate(active):
        if is_active:
            countdown = settings.hangover_frames
        elif countdown > 0:
            held[i] = True
            countdown -= 1
    # Fill pauses too short to be pauses (but keep leading and trailing silence).
    speech_indices = np.flatnonzero(held)
    if speech_indices.size:
        gaps = np.flatnonzero(np.diff(speech_indices) > 1)
        for gap in gaps:
            start, end = speech_indices[gap] + 1, speech_indices[gap + 1]
            if end - start < settings.min_pause_frames:
                held[start:end] = True
    return held


def normalise(features: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Make raw features comparable across recordings (see the module docstring)."""
    features = np.asarray(features, dtype=np.float32)
    out = np.empty_like(features)
    levels = features[:, LOUDNESS]
    reference = np.percentile(levels, 95) if levels.size else 0.0
    out[:, LOUDNESS] = np.maximum((levels - reference) / 10.0, -6.0)
    voiced = features[speech] if speech.sum() >= 5 else features
    mean = voiced[:, 1:].mean(axis=0)
    std = voiced[:, 1:].std(axis=0) + 1e-3
    out[:, 1:] = (features[:, 1:] - mean) / std
    # Silence has no meaningful timbre: pull it to the voiced mean so noise does not steer matching.
    out[~speech, 1:] *= 0.25
    return out


@dataclass(frozen=True)
class AudioAnalysis:
    """Everything the planner needs to know about a piece of audio, on the video grid."""

    features: np.ndarray  # (n_frames, 16) normalised
    speech: np.ndarray  # (n_frames,) bool
    levels_db: np.ndarray  # (n_frames,)
    voice: np.ndarray | None = None  # (2, 15): the voice's timbre, see voice_profile()
    spoken: np.ndarray | None = None  # (n_frames,): the opening its known phonemes call for (engine.visemes)

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])


def analyse(
    audio: np.ndarray, sample_rate: int, n_frames: int | None = None, vad: VadSettings = VadSettings()
) -> AudioAnalysis:
    """Features, speech mask and levels of ``audio`` along a ``FPS`` timeline."""
    raw, levels = raw_features(audio, sample_rate, n_frames)
    speech = voice_activity(levels, vad)
    return AudioAnalysis(normalise(raw, speech), speech, levels, voice_profile(raw, speech))


def voice_profile(raw: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """What a voice sounds like, whatever it says: the mean and spread of its raw timbre.

    Parameters
    ----------
    raw : ndarray, shape (n_frames, 16)
        :func:`raw_features` (before normalisation, which removes exactly this).
    speech : ndarray, shape (n_frames,)
        The voice activity; only speech frames describe the voice.

    Returns
    -------
    ndarray, shape (2, 15), float32
        Mean and standard deviation of the brightness and MFCC c1..c14 over the speech frames.
    """
    voiced = raw[speech] if speech.sum() >= 5 else raw
    timbre = voiced[:, 1:].astype(np.float64)
    if len(timbre) == 0:
        return np.zeros((2, FEATURE_DIM - 1), np.float32)
    return np.stack([timbre.mean(axis=0), timbre.std(axis=0)]).astype(np.float32)


def voice_distance(reference: np.ndarray, other: np.ndarray) -> float:
    """How unlike ``reference``'s voice ``other`` sounds: the RMS over timbre dimensions of the
    difference of means, in units of the reference's own spread.

    Measured on the shared real clips (a recording's first 65 % against the rest, 2-4 s):
    the same person scores 0.22-0.42, eSpeak NG 0.57-1.27, other people 0.15-0.91 (median 0.69).
    """
    spread = np.maximum(reference[1].astype(np.float64), 1e-3)
    difference = (other[0].astype(np.float64) - reference[0]) / spread
    return float(np.sqrt(np.mean(difference**2)))


def segment_starts(n_frames: int) -> np.ndarray:
    """Start frames of the overlapping segments of a recording of ``n_frames`` frames."""
    if n_frames < SEGMENT_FRAMES:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - SEGMENT_FRAMES + 1, SEGMENT_STEP, dtype=np.int64)


def segment_fingerprints(features: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The 16-number fingerprint of each segment: the mean of its frames' feature vectors."""
    cumulative = np.vstack(
        [np.zeros((1, features.shape[1]), np.float64), np.cumsum(features, axis=0, dtype=np.float64)]
    )
    return ((cumulative[starts + SEGMENT_FRAMES] - cumulative[starts]) / SEGMENT_FRAMES).astype(np.float32)
