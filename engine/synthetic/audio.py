"""Formant-synthesised "speech": voiced syllables, fricatives, plosives, phrase pauses (the test audio).

Deterministic per seed; what the rig performs and what the tests render.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

from ..errors import InputError
from ..media import ANALYSIS_SAMPLE_RATE

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

    source = _glottal_source(plan, n, sample_rate, rng)
    speech = _vowels(plan, source, sample_rate) + _noises(plan, rng.standard_normal(n), sample_rate)
    peak = np.max(np.abs(speech))
    if peak > 0:
        speech *= 0.85 / peak
    speech += _NOISE_FLOOR * rng.standard_normal(n)
    return np.clip(speech, -1.0, 1.0).astype(np.float32)


def _gate(
    n: int, segments: list[tuple[int, int, float]], shape: Callable[[int], np.ndarray], min_length: int
) -> np.ndarray:
    """A gain track: each ``(start, end, gain)`` segment of at least ``min_length`` samples,
    shaped by ``shape``."""
    gate = np.zeros(n, dtype=np.float32)
    for start, end, gain in segments:
        end = min(end, n)
        if end - start >= min_length:
            gate[start:end] += gain * shape(end - start)
    return gate


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _glottal_source(plan: _Plan, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pulses at each period of a smooth f0 contour, shaped like a glottal flow derivative
    (two-pole low-pass plus lip-radiation differentiator), with a little aspiration."""
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
    return source + 0.02 * rng.standard_normal(n) * np.std(source)


def _vowels(plan: _Plan, source: np.ndarray, sample_rate: int) -> np.ndarray:
    """Each vowel's formant filter over the whole source, gated to where that vowel is said."""
    n = len(source)
    speech = np.zeros(n, dtype=np.float64)
    release, attack = int(0.04 * sample_rate), int(0.025 * sample_rate)
    for vowel, formants in _VOWELS.items():
        if plan.vowels[vowel]:
            voiced = _normalised(signal.lfilter(*_resonator_cascade(formants, sample_rate), source))
            gate = _gate(n, plan.vowels[vowel], lambda length: _envelope(length, attack, release), 3)
            speech += gate * voiced  # every vowel equally loud at equal gain
    return speech


def _noises(plan: _Plan, noise: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fricatives (high-passed noise) and plosive bursts (band-passed, decaying), gated."""
    n = len(noise)
    speech = np.zeros(n, dtype=np.float64)
    nyquist = sample_rate / 2.0
    edge = int(0.015 * sample_rate)
    for name, segments in plan.fricatives.items():
        if segments:
            cutoff = min(_FRICATIVES[name][0], 0.8 * nyquist)
            sos = signal.butter(4, cutoff, btype="highpass", fs=sample_rate, output="sos")
            hissing = _normalised(signal.sosfilt(sos, noise))
            speech += _gate(n, segments, lambda length: _envelope(length, edge, edge), 3) * hissing
    if plan.bursts:
        band = [500.0, min(5000.0, 0.8 * nyquist)]
        crackle = _normalised(
            signal.sosfilt(
                signal.butter(2, band, btype="bandpass", fs=sample_rate, output="sos"), noise[::-1]
            )
        )
        decay = 0.006 * sample_rate
        speech += _gate(n, plan.bursts, lambda length: np.exp(-np.arange(length) / decay), 1) * crackle
    return speech
