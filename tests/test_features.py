"""Acoustic features, voice activity and segmentation on audio whose content we know."""

import numpy as np
import pytest

from engine import features as feat

SR = 16_000


def tone(seconds: float, freq: float = 220.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def test_frame_grid_matches_video_frames():
    audio = tone(2.0)
    assert feat.frame_count(len(audio), SR) == 50
    raw, levels = feat.raw_features(audio, SR)
    assert raw.shape == (50, feat.FEATURE_DIM)
    assert levels.shape == (50,)
    # A full-scale-0.3 sine has an RMS of 0.3/sqrt(2): about -13.5 dBFS.
    assert np.median(levels) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=1.0)


def test_features_are_aligned_in_time():
    audio = np.concatenate([silence(1.0), tone(0.4), silence(1.0)])
    _, levels = feat.raw_features(audio, SR)
    loud = np.flatnonzero(levels > levels.max() - 6)
    # The tone spans 1.0 s .. 1.4 s: frames 25 .. 35 (each frame is centred at i / 25 s).
    assert loud.min() in (24, 25, 26) and loud.max() in (34, 35, 36)


def test_normalised_features_ignore_recording_level():
    rng = np.random.default_rng(1)
    audio = np.concatenate(
        [tone(0.5, 200), silence(0.5), tone(0.5, 300, 0.1), rng.normal(0, 0.05, SR // 2).astype(np.float32)]
    )
    loud = feat.analyse(audio, SR)
    quiet = feat.analyse(audio * 0.05, SR)
    np.testing.assert_array_equal(loud.speech, quiet.speech)
    assert np.abs(loud.features - quiet.features).max() < 0.05


def test_brightness_follows_spectral_centroid():
    low = feat.raw_features(tone(1.0, 200), SR)[0][:, feat.BRIGHTNESS].mean()
    high = feat.raw_features(tone(1.0, 2000), SR)[0][:, feat.BRIGHTNESS].mean()
    assert high > low + 2  # log2: ten times the frequency is more than three octaves


def test_vad_finds_pauses_and_fills_short_gaps():
    audio = np.concatenate([tone(1.0), silence(1.0), tone(1.0), silence(0.12), tone(1.0)])
    speech = feat.analyse(audio, SR).speech
    assert speech[5:20].all()
    assert not speech[32:48].any()  # the 1 s pause, minus the hangover
    assert speech[55:70].all()
    assert speech[75:78].all()  # the 0.12 s gap is not a pause


def test_vad_hangover_holds_speech_after_the_voice_stops():
    audio = np.concatenate([tone(1.0), silence(2.0)])
    levels = feat.frame_levels_db(audio, SR)
    settings = feat.VadSettings(hangover_frames=5)
    speech = feat.voice_activity(levels, settings)
    last_loud = np.flatnonzero(levels > levels.max() - 20).max()
    assert speech[last_loud + 5] and not speech[last_loud + 7]


def test_vad_on_silence_and_on_empty_input():
    assert not feat.voice_activity(feat.frame_levels_db(silence(2.0), SR)).any()
    assert feat.voice_activity(np.zeros(0)).size == 0


def test_segments_overlap_with_step_two():
    starts = feat.segment_starts(30)
    np.testing.assert_array_equal(starts, np.arange(0, 21, 2))
    assert feat.segment_starts(9).size == 0
    features = np.arange(30 * feat.FEATURE_DIM, dtype=np.float32).reshape(30, feat.FEATURE_DIM)
    fingerprints = feat.segment_fingerprints(features, starts)
    np.testing.assert_allclose(fingerprints[3], features[6:16].mean(axis=0), rtol=1e-6)


def test_spectral_features_match_librosa():
    """Our STFT, mel filterbank and MFCC agree with librosa's (which is too heavy to import at
    render time)."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(3)
    audio = (rng.normal(0, 0.1, SR * 3) * np.sin(np.arange(SR * 3) / 900)).astype(np.float32)
    np.testing.assert_allclose(
        feat.mel_filterbank(SR),
        librosa.filters.mel(sr=SR, n_fft=1024, n_mels=40, fmin=60.0, fmax=7600.0),
        rtol=1e-4,
        atol=1e-7,
    )
    power = np.abs(librosa.stft(audio, n_fft=1024, hop_length=SR // 25, center=True)) ** 2
    ours = np.concatenate(list(feat._power_blocks(audio, SR, power.shape[1])), axis=1)
    np.testing.assert_allclose(ours, power, rtol=2e-3, atol=1e-6)
    raw, _ = feat.raw_features(audio, SR, power.shape[1])
    mel = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=40, fmin=60.0, fmax=7600.0) @ power
    reference = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=80.0), n_mfcc=15)[1:]
    np.testing.assert_allclose(raw[:, 2:], reference.T, atol=0.05)


def test_voice_distance_tells_another_voice_from_the_same_one():
    """The planner trusts the recording's audio -> mouth model only for its own voice."""
    from engine import synthetic
    from engine.speech import speak

    recording = synthetic.synth_speech(20.0, seed=1, sample_rate=SR)
    same_voice = synthetic.synth_speech(8.0, seed=1077, sample_rate=SR)
    spoken = speak("Once upon a time a little fox lived at the edge of a quiet wood.")
    reference = feat.analyse(recording, SR).voice
    assert reference is not None and reference.shape == (2, feat.FEATURE_DIM - 1)

    def distance(audio: np.ndarray, rate: int = SR) -> float:
        voice = feat.analyse(audio, rate).voice
        assert voice is not None
        return feat.voice_distance(reference, voice)

    assert distance(recording * 0.05) < 0.01, "a quieter microphone is the same voice"
    assert distance(same_voice) < 0.3
    assert distance(spoken.audio, spoken.sample_rate) > 1.0
