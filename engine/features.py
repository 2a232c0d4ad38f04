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

from dataclasses import dataclass

import librosa
import numpy as np

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


def _power_spectrum(audio: np.ndarray, sample_rate: int, n_frames: int) -> np.ndarray:
    hop = sample_rate // FPS
    spectrum = np.abs(librosa.stft(audio.astype(np.float32), n_fft=_N_FFT, hop_length=hop, center=True)) ** 2
    if spectrum.shape[1] < n_frames:
        spectrum = np.pad(spectrum, ((0, 0), (0, n_frames - spectrum.shape[1])))
    return spectrum[:, :n_frames]


def frame_levels_db(audio: np.ndarray, sample_rate: int, n_frames: int | None = None) -> np.ndarray:
    """RMS level of each video frame in dBFS (a full-scale sine is about -3 dB)."""
    n_frames = n_frames or frame_count(len(audio), sample_rate)
    power = _power_spectrum(audio, sample_rate, n_frames)
    return _levels_from_power(power)


def _levels_from_power(power: np.ndarray) -> np.ndarray:
    # Parseval for a Hann-windowed frame: mean power per sample of the frame.
    window_energy = np.sum(np.hanning(_N_FFT) ** 2)
    frame_power = (power[0] + power[-1] + 2 * power[1:-1].sum(axis=0)) / (_N_FFT * window_energy)
    return 10 * np.log10(frame_power + _EPS)


def raw_features(audio: np.ndarray, sample_rate: int, n_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Un-normalised per-frame features and levels.

    Returns
    -------
    features : ndarray, shape (n_frames, 16)
        Level in dBFS, log2 centroid, MFCC c1..c14, before normalisation.
    levels : ndarray, shape (n_frames,)
        The level in dBFS (same as column 0), for the voice activity detector.
    """
    n_frames = n_frames or frame_count(len(audio), sample_rate)
    power = _power_spectrum(audio, sample_rate, n_frames)
    levels = _levels_from_power(power)
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=_N_MELS, fmin=60.0, fmax=min(7600.0, sample_rate / 2))
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel + _EPS), n_mfcc=_N_MFCC + 1)[1:]
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=_N_FFT)
    centroid = (freqs[:, None] * power).sum(axis=0) / (power.sum(axis=0) + _EPS)
    features = np.empty((n_frames, FEATURE_DIM), dtype=np.float32)
    features[:, LOUDNESS] = levels
    features[:, BRIGHTNESS] = np.log2(np.maximum(centroid, 50.0))
    features[:, 2:] = mfcc.T
    return features, levels.astype(np.float32)


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

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])


def analyse(audio: np.ndarray, sample_rate: int, n_frames: int | None = None, vad: VadSettings = VadSettings()) -> AudioAnalysis:
    """Features, speech mask and levels of ``audio`` along a ``FPS`` timeline."""
    raw, levels = raw_features(audio, sample_rate, n_frames)
    speech = voice_activity(levels, vad)
    return AudioAnalysis(normalise(raw, speech), speech, levels)


def segment_starts(n_frames: int) -> np.ndarray:
    """Start frames of the overlapping segments of a recording of ``n_frames`` frames."""
    if n_frames < SEGMENT_FRAMES:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - SEGMENT_FRAMES + 1, SEGMENT_STEP, dtype=np.int64)


def segment_fingerprints(features: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The 16-number fingerprint of each segment: the mean of its frames' feature vectors."""
    cumulative = np.vstack([np.zeros((1, features.shape[1]), np.float64), np.cumsum(features, axis=0, dtype=np.float64)])
    return ((cumulative[starts + SEGMENT_FRAMES] - cumulative[starts]) / SEGMENT_FRAMES).astype(np.float32)
