"""The synthetic character: its audio, its ground-truth mouth, and reading the mouth back from pixels.

Benchmarks trust these pieces as ground truth, so the tests pin the properties they rely on:
speech has the structure we claim (pauses, loud vowels, distinct vowel shapes), the mouth track
follows it, and measuring drawn or H.264-encoded frames recovers what was drawn.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from scipy import signal

from engine import synthetic as syn
from engine.errors import InputError
from engine.media import VideoEncoder, iter_frames, probe

SR = 16_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return syn.synth_speech(12.0, seed=7)


def _frame_db(audio: np.ndarray, sample_rate: int = SR) -> np.ndarray:
    """Level of the 40 ms around each frame centre ``i / FPS``, in dB, independent of the module."""
    hop = sample_rate // syn.FPS
    centred = np.concatenate([np.zeros(hop // 2, dtype=audio.dtype), audio])
    frames = centred[: len(centred) // hop * hop].reshape(-1, hop)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def _vowel(f1: float, f2: float, f3: float, seconds: float = 0.6, f0: float = 140.0) -> np.ndarray:
    """A sustained vowel made here from scratch: pulse train through three resonators."""
    n = int(seconds * SR)
    pulses = np.diff(np.floor(np.arange(n) * f0 / SR), prepend=0.0)
    x = signal.lfilter([1.0, -1.0], [1.0, -1.92, 0.9216], pulses)
    for frequency, bandwidth in ((f1, 80), (f2, 100), (f3, 140)):
        r = np.exp(-np.pi * bandwidth / SR)
        x = signal.lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * frequency / SR), r * r], x)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _with_silence(sound: np.ndarray, seconds: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(0)
    quiet = (1e-4 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    return np.concatenate([quiet, sound, quiet])


def _random_params(rng: np.random.Generator, opening: float | None = None) -> syn.FaceParams:
    return syn.FaceParams(
        opening=float(rng.uniform(0, 1)) if opening is None else opening,
        width=float(rng.uniform(0, 1)),
        blink=float(rng.uniform(0, 1)),
        gaze_x=float(rng.uniform(-1, 1)),
        gaze_y=float(rng.uniform(-1, 1)),
        head_dx=float(rng.uniform(-5, 5)),
        head_dy=float(rng.uniform(-5, 5)),
        head_angle=float(rng.uniform(-2, 2)),
    )


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


# --- synth_speech -------------------------------------------------------------------------------


def test_speech_is_deterministic_per_seed_and_seeds_differ(speech):
    again = syn.synth_speech(12.0, seed=7)
    other = syn.synth_speech(12.0, seed=8)
    assert speech.dtype == np.float32 and speech.shape == (12 * SR,)
    np.testing.assert_array_equal(speech, again)
    assert np.mean(np.abs(speech - other)) > 0.01
    assert np.max(np.abs(speech)) <= 1.0


def test_speech_is_loud_with_phrase_pauses(speech):
    db = _frame_db(speech)
    assert np.sqrt(np.mean(speech.astype(np.float64) ** 2)) > 0.05  # not silent
    loud = np.percentile(db, 95)
    quiet = db < loud - 45  # near-silence: the noise floor, not quiet speech
    # longest quiet run, in frames: phrase pauses last 0.5-1.2 s (12-30 frames)
    runs, run = [], 0
    for q in quiet:
        run = run + 1 if q else 0
        runs.append(run)
    assert max(runs) >= 0.45 * syn.FPS
    pause_starts = np.sum(np.diff(np.asarray(runs) >= 0.45 * syn.FPS).astype(int) == 1)
    assert pause_starts >= 2  # several phrases in 12 s, not one
    assert quiet.mean() < 0.5  # mostly speech


def test_speech_without_pauses_has_no_long_silence():
    db = _frame_db(syn.synth_speech(8.0, seed=3, pauses=False))
    quiet = db < np.percentile(db, 95) - 45
    assert quiet[5:-5].sum() <= 2


def test_speech_synthesis_is_fast_and_validates():
    start = time.perf_counter()
    long = syn.synth_speech(180.0, seed=1)
    assert time.perf_counter() - start < 10.0  # a few seconds at most, even on a busy machine
    assert len(long) == 180 * SR
    assert len(syn.synth_speech(2.0, seed=1, sample_rate=22_050)) == 44_100
    with pytest.raises(InputError):
        syn.synth_speech(0.0, seed=1)
    with pytest.raises(InputError):
        syn.synth_speech(1.0, seed=1, sample_rate=4000)


# --- mouth_track -------------------------------------------------------------------------------


def test_track_length_and_range(speech):
    track = syn.mouth_track(speech, SR)
    assert len(track.opening) == len(track.width) == round(12.0 * syn.FPS)
    for values in (track.opening, track.width):
        assert values.min() >= 0.0 and values.max() <= 1.0
    longer = syn.mouth_track(speech, SR, n_frames=320)
    assert len(longer.opening) == 320
    assert np.all(longer.opening[-10:] == 0.0) and np.allclose(longer.width[-10:], 0.5)


def test_track_opening_follows_loudness_and_closes_in_pauses(speech):
    track = syn.mouth_track(speech, SR)
    db = _frame_db(speech)[: len(track.opening)]
    opening = track.opening[: len(db)]
    pause = db < np.percentile(db, 95) - 45
    # the interior of pauses: two frames in from each edge, where analysis window and smoothing reach
    inner = pause.copy()
    for shift in (-2, -1, 1, 2):
        inner &= np.roll(pause, shift)
    assert inner.sum() > 10
    assert opening[inner].max() < 0.02
    assert np.allclose(track.width[: len(db)][inner], 0.5, atol=0.02)
    speaking = ~pause
    assert _pearson(db[speaking], opening[speaking]) > 0.8  # louder frames, wider open
    loudest = db > np.percentile(db, 90)
    assert opening[loudest].mean() > 0.8


def test_track_vowel_shapes_and_silence():
    i_sound = _with_silence(_vowel(300, 2300, 3000))
    u_sound = _with_silence(_vowel(320, 800, 2400))
    track_i = syn.mouth_track(i_sound, SR)
    track_u = syn.mouth_track(u_sound, SR)
    vowel = slice(int(0.7 * syn.FPS), int(1.1 * syn.FPS))
    silence = slice(0, int(0.5 * syn.FPS))
    for track in (track_i, track_u):
        assert track.opening[vowel].min() > 0.8
        assert track.opening[silence].max() < 0.02
        assert np.allclose(track.width[silence], 0.5)
    assert track_i.width[vowel].mean() > 0.8
    assert track_u.width[vowel].mean() < 0.2


def test_track_ignores_recording_level(speech):
    loud = syn.mouth_track(speech, SR)
    soft = syn.mouth_track(speech * 0.1, SR)  # 20 dB quieter: the noise floor scales with it
    assert np.max(np.abs(loud.opening - soft.opening)) < 0.01
    assert np.max(np.abs(loud.width - soft.width)) < 0.01


def test_track_of_digital_silence_is_closed_and_neutral():
    track = syn.mouth_track(np.zeros(SR, dtype=np.float32), SR)
    assert np.all(track.opening == 0.0) and np.allclose(track.width, 0.5)


# --- drawing and measuring -------------------------------------------------------------------


@pytest.mark.parametrize("style", syn.STYLES)
def test_draw_face_shape_and_interior_colour_is_exclusive(style):
    frame = syn.draw_face(syn.FaceParams(blink=0.4, gaze_x=0.8, head_angle=1.5, head_dx=3), 256, style)
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    distance = np.linalg.norm(frame.astype(float) - np.array(syn.MOUTH_INTERIOR_BGR), axis=2)
    assert distance.min() > 80  # closed mouth: nothing near the interior colour anywhere
    opened = syn.draw_face(syn.FaceParams(opening=0.7), 256, style)
    distance = np.linalg.norm(opened.astype(float) - np.array(syn.MOUTH_INTERIOR_BGR), axis=2)
    assert (distance < 10).sum() > 200


def test_draw_face_rejects_unknown_style():
    with pytest.raises(InputError):
        syn.draw_face(syn.FaceParams(), 256, "dragon")


@pytest.mark.parametrize("style", syn.STYLES)
def test_measure_tracks_drawn_params_with_head_motion(style):
    rng = np.random.default_rng(11)
    drawn, measured = [], []
    for size in (512, 256):
        for _ in range(25):
            params = _random_params(rng)
            drawn.append((params.opening, params.width))
            measured.append(syn.measure_mouth(syn.draw_face(params, size, style)))
    drawn, measured = np.array(drawn), np.array(measured)
    assert _pearson(drawn[:, 0], measured[:, 0]) > 0.95
    assert _pearson(drawn[:, 1], measured[:, 1]) > 0.95
    # same units, not just correlated
    assert np.max(np.abs(measured - drawn)) < 0.05


@pytest.mark.parametrize("style", syn.STYLES)
def test_closed_mouth_measures_zero_opening(style):
    rng = np.random.default_rng(5)
    for _ in range(8):
        params = _random_params(rng, opening=0.0)
        opening, width = syn.measure_mouth(syn.draw_face(params, 256, style))
        assert opening < 0.02
        assert abs(width - params.width) < 0.05


def test_measure_halfway_on_cross_fades():
    """A 50/50 blend of two mouths (as in a morphed frame) reads between them, not as nothing."""
    for style in syn.STYLES:
        a = syn.draw_face(syn.FaceParams(opening=0.8, width=0.3), 256, style)
        b = syn.draw_face(syn.FaceParams(opening=0.0, width=0.3), 256, style)
        c = syn.draw_face(syn.FaceParams(opening=0.4, width=0.9, head_dx=3, head_dy=2), 256, style)
        opening, _ = syn.measure_mouth(cv2.addWeighted(a, 0.5, b, 0.5, 0))
        assert 0.3 < opening < 0.5
        opening, width = syn.measure_mouth(cv2.addWeighted(a, 0.5, c, 0.5, 0))
        assert 0.5 < opening < 0.7 and 0.5 < width < 0.7


def test_measure_without_a_mouth():
    blank = np.full((256, 256, 3), 200, dtype=np.uint8)
    assert syn.measure_mouth(blank) == (0.0, 0.5)


@pytest.mark.parametrize("style", syn.STYLES)
def test_measure_after_mp4_round_trip(tmp_path, style):
    rng = np.random.default_rng(3)
    params = [_random_params(rng, opening=0.0 if i % 6 == 0 else None) for i in range(36)]
    path = tmp_path / "sweep.mp4"
    with VideoEncoder(path, 256) as encoder:
        for p in params:
            encoder.write(syn.draw_face(p, 256, style))
    measured = np.array([syn.measure_mouth(frame) for frame in iter_frames(path, 256)])
    assert len(measured) == len(params)
    drawn = np.array([(p.opening, p.width) for p in params])
    assert _pearson(drawn[:, 0], measured[:, 0]) > 0.9
    assert _pearson(drawn[:, 1], measured[:, 1]) > 0.9
    assert measured[drawn[:, 0] == 0.0, 0].max() < 0.05


def test_drawing_is_fast_enough_for_minutes_of_video():
    params = syn.performance_params(syn.synth_speech(4.0, seed=2), SR, seed=2)
    for style in syn.STYLES:
        syn.draw_face(params[0], 512, style)  # builds and caches the static layers
        start = time.perf_counter()
        for p in params:
            syn.draw_face(p, 512, style)
        per_frame = (time.perf_counter() - start) / len(params)
        assert per_frame < 0.02  # ~2 ms measured on one core; loose for a shared test machine


# --- performances ------------------------------------------------------------------------------


def _sclera_pixels(frame: np.ndarray) -> int:
    """Near-white pixels in the upper face: the eye whites (hidden by closed lids)."""
    upper = frame[: int(0.6 * frame.shape[0])]
    return int(np.all(upper >= 240, axis=2).sum())


@pytest.mark.parametrize("style", syn.STYLES)
def test_idle_performance_is_silent_and_blinks(style):
    frames = list(syn.idle_performance(10 * syn.FPS, seed=4, size=256, style=style))
    assert len(frames) == 250
    openings = [syn.measure_mouth(f)[0] for f in frames[::5]]
    assert max(openings) < 0.02
    whites = np.array([_sclera_pixels(f) for f in frames])
    assert np.median(whites) > 100
    closed = whites < 0.3 * np.median(whites)
    assert closed.sum() >= 1  # at least one blink in 10 s
    assert closed.mean() < 0.1  # eyes mostly open
    moved = np.abs(frames[0].astype(int) - frames[125].astype(int)).mean()
    assert moved > 0.5  # the head is not frozen


def test_performance_follows_the_track_and_is_deterministic():
    audio = syn.synth_speech(3.0, seed=9)
    track = syn.mouth_track(audio, SR)
    frames = list(syn.performance(audio, SR, seed=9, size=256, style="fox"))
    assert len(frames) == len(track.opening) == 75
    measured = np.array([syn.measure_mouth(f) for f in frames])
    assert _pearson(track.opening, measured[:, 0]) > 0.95
    assert _pearson(track.width, measured[:, 1]) > 0.95
    again = list(syn.performance(audio, SR, seed=9, size=256, style="fox"))
    assert all(np.array_equal(a, b) for a, b in zip(frames[::10], again[::10]))
    other = list(syn.performance(audio, SR, seed=10, size=256, style="fox"))
    assert any(not np.array_equal(a, b) for a, b in zip(frames, other))


def test_write_character_videos(tmp_path):
    speech_path, idle_path = syn.write_character_videos(
        tmp_path / "fox", seed=1, duration_s=2.0, size=128, style="fox", idle_s=1.0
    )
    assert speech_path.name == "speech.mp4" and idle_path.name == "idle.mp4"
    speech_info, idle_info = probe(speech_path), probe(idle_path)
    assert speech_info.has_video and speech_info.has_audio
    assert idle_info.has_video and not idle_info.has_audio
    assert speech_info.width == speech_info.height == 128
    assert sum(1 for _ in iter_frames(speech_path, 128)) == 50
    assert sum(1 for _ in iter_frames(idle_path, 128)) == 25
    assert sorted(p.name for p in (tmp_path / "fox").iterdir()) == ["idle.mp4", "speech.mp4"]
