"""Phonemes -> mouth opening, and synthesised speech planned by its phonemes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr

from engine import features as feat
from engine.library import open_library
from engine.media import ANALYSIS_SAMPLE_RATE
from engine.render import SpokenAudio, plan_audio, render_stream
from engine.say import _parts
from engine.speech import Speech, SpeechEvent, speak
from engine.visemes import OPENING, frame_sounds, opening_track, sound_class

BILABIAL_TEXT = (
    "Mum baked a plum pie, and the puppy put a pebble in my blue boot. Bob met Pam by the big "
    "map, and a mop, a bumblebee and a bamboo bomb were in the box."
)


@pytest.mark.parametrize(
    ("phoneme", "expected"),
    [
        ("p", "closed"),
        ("b", "closed"),
        ("m", "closed"),
        ("_", "closed"),
        ("f", "lip-teeth"),
        ("v", "lip-teeth"),
        ("ˈæ", "open"),
        ("ˈaɪ", "open"),
        ("ɐ", "open"),  # Russian unstressed "a"
        ("ə", "mid"),
        ("əl", "mid"),
        ("ˈoʊ", "mid"),
        ("iː", "close"),
        ("ˈʊ", "close"),
        ("w", "rounded"),
        ("t", "consonant"),
        ("tʲ", "consonant"),  # palatalised (Russian)
        ("", "closed"),
    ],
)
def test_sounds_are_classed_by_their_letters(phoneme: str, expected: str) -> None:
    assert sound_class(phoneme) == expected


def test_the_track_follows_the_phonemes_with_a_small_lead() -> None:
    # 0.0 s pause, 0.2 s "m", 0.6 s "a", 1.0 s "p", 1.2 s "a" until the end
    track = opening_track([(0.0, "_"), (0.2, "m"), (0.6, "ˈa"), (1.0, "p"), (1.2, "a")], 40)
    assert track.shape == (40,) and track.dtype == np.float32
    assert track[2] == 0.0 and track[10] == 0.0  # the pause, the "m"
    assert track[20] == OPENING["open"] and track[35] == OPENING["open"]
    assert track[26] < 0.3  # the "p" closes the lips between two open vowels
    # the lead: the lips start moving towards "a" one frame before it sounds (0.6 s = frame 15)
    assert 0.0 < track[14] < OPENING["open"]
    assert opening_track([], 10).tolist() == [0.0] * 10


def test_parts_keep_each_sentence_s_phonemes_timed_from_the_part_start() -> None:
    rate = 1000

    def sentence(seconds: float, sound: str) -> Speech:
        audio = np.zeros(int(seconds * rate), np.float32)
        return Speech(audio, rate, [SpeechEvent("phoneme", 0.1, 0, 0, sound), SpeechEvent("word", 0.1, 0, 1)])

    parts = list(_parts([sentence(1.5, "m"), sentence(2.0, "a"), sentence(1.0, "p")], min_seconds=3.0))
    assert [len(part.samples) for part in parts] == [3500, 1000]
    assert parts[0].phonemes == ((0.1, "m"), (1.6, "a"))
    assert parts[1].phonemes == ((0.1, "p"),)


def _contrast(opening: np.ndarray, classes: list[str]) -> float:
    labels = np.array(classes)
    return float(opening[labels == "open"].mean() - opening[labels == "closed"].mean())


def test_the_lips_meet_on_p_b_m_when_the_phonemes_are_known(character) -> None:  # noqa: ANN001
    """eSpeak on the rig's library (another voice): with its phonemes the planner closes the
    mouth on p, b, m and opens it on open vowels more clearly than from the sound alone."""
    spoken = speak(BILABIAL_TEXT)
    phonemes = spoken.phonemes()
    audio = soxr.resample(spoken.audio, spoken.sample_rate, ANALYSIS_SAMPLE_RATE)
    n_frames = feat.frame_count(len(audio), ANALYSIS_SAMPLE_RATE)
    # each frame's sound, as the phonemes say; pauses left out (the idle library closes them)
    sounds = frame_sounds(phonemes, n_frames)
    classes = [sound_class(s) if s.strip("ˈˌ")[:1] != "_" else "pause" for s in sounds]
    with open_library(character.library) as library:
        without = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE)
        with_phonemes = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, phonemes=phonemes)
        played = [library.mouth[timeline.frame_source, 0] for timeline in (without, with_phonemes)]
        contrasts = [_contrast(opening, classes) for opening in played]
        spread = float(library.mouth[library.sources == 0, 0].std())
    assert contrasts[1] > 0.5 * spread and contrasts[1] > contrasts[0] + 0.2 * spread, (contrasts, spread)


def test_a_stream_of_spoken_parts_is_planned_by_its_phonemes(character, tmp_path: Path) -> None:  # noqa: ANN001
    spoken = speak(BILABIAL_TEXT)
    phonemes = spoken.phonemes()
    result = render_stream(
        character.library, [SpokenAudio(spoken.audio, phonemes)], spoken.sample_rate, tmp_path / "out.mp4"
    )
    audio = soxr.resample(spoken.audio, spoken.sample_rate, ANALYSIS_SAMPLE_RATE)
    with open_library(character.library) as library:
        expected = plan_audio(
            library, audio, ANALYSIS_SAMPLE_RATE, n_frames=result.timeline.n_frames, phonemes=phonemes
        )
        plain = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, n_frames=result.timeline.n_frames)
    assert np.array_equal(result.timeline.frame_source, expected.frame_source)
    assert not np.array_equal(result.timeline.frame_source, plain.frame_source)
