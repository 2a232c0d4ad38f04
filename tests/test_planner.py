"""The planners and the timeline they produce, on the synthetic test character."""

import numpy as np
import pytest

from engine import features as feat
from engine.library import open_library
from engine.media import read_audio
from engine.morph import MorphSettings
from engine.planner import MIN_SLOT_FRAMES, PlannerSettings, make_slots, plan
from engine.render import RenderConfig, plan_audio

from .conftest import SAMPLE_RATE


@pytest.mark.parametrize("seed", range(20))
def test_slots_partition_the_timeline_along_speech_and_pauses(seed):
    rng = np.random.default_rng(seed)
    speech = np.repeat(rng.random(12) > 0.4, rng.integers(1, 40, 12))
    slots = make_slots(speech)
    position = 0
    for start, length, idle in slots:
        assert start == position
        assert 1 <= length <= feat.SEGMENT_FRAMES + MIN_SLOT_FRAMES - 1
        assert (speech[start : start + length] == (not idle)).all()
        position += length
    assert position == len(speech)


@pytest.fixture(scope="module")
def library(character):
    with open_library(character.library) as opened:
        yield opened


@pytest.fixture(scope="module")
def analysis(new_speech):
    audio, _ = new_speech
    return feat.analyse(audio, SAMPLE_RATE)


@pytest.mark.parametrize("method", ["greedy", "global"])
def test_plan_covers_every_frame_with_the_right_kind_of_segment(library, analysis, method):
    pieces = plan(library, analysis, PlannerSettings(method=method))
    assert pieces[0].out_start == 0 and pieces[-1].out_end == analysis.n_frames
    for before, after in zip(pieces, pieces[1:]):
        assert before.out_end == after.out_start
    for piece in pieces:
        assert piece.idle == (not analysis.speech[piece.out_start])
        frames = np.arange(piece.lib_start, piece.lib_start + piece.length)
        assert frames[-1] < library.source_end[piece.lib_start]  # never runs across a source's end
        if piece.idle:
            assert library.idle_frames[frames].all()
        else:
            assert (library.sources[frames] == 0).all()


def test_greedy_seed_is_reproducible(library, analysis):
    settings = PlannerSettings(method="greedy")
    assert plan(library, analysis, settings) == plan(library, analysis, settings)


def test_global_planner_finds_the_recording_itself(character, library):
    """Asked to say exactly what the library recorded, the global planner replays the recording."""
    audio = read_audio(character.speech_video)[: 12 * SAMPLE_RATE]
    analysis = feat.analyse(audio, SAMPLE_RATE)
    pieces = plan(library, analysis, PlannerSettings(method="global"))
    speech_pieces = [piece for piece in pieces if not piece.idle]
    in_place = sum(abs(piece.lib_start - piece.out_start) <= 2 for piece in speech_pieces)
    assert in_place >= 0.8 * len(speech_pieces)


def test_global_planner_joins_less_than_greedy(library, analysis):
    joins = {}
    for method in ("greedy", "global"):
        pieces = plan(library, analysis, PlannerSettings(method=method))
        joins[method] = sum(b.lib_start != a.lib_start + a.length for a, b in zip(pieces, pieces[1:]))
    assert joins["global"] < joins["greedy"]


def test_timeline_morphs_fit_between_shown_frames(library, new_speech):
    audio, _ = new_speech
    timeline = plan_audio(library, audio, SAMPLE_RATE, config=RenderConfig())
    assert timeline.n_frames == feat.frame_count(len(audio), SAMPLE_RATE)
    covered = np.zeros(timeline.n_frames, dtype=int)
    settings = MorphSettings()
    for transition in timeline.transitions:
        assert 1 <= transition.count <= settings.max_frames - 2  # frames between the two recorded ends
        assert (
            transition.a_out == transition.start - 1
            and transition.b_out == transition.start + transition.count
        )
        covered[transition.start : transition.start + transition.count] += 1
    assert covered.max() <= 1
    for transition in timeline.transitions:  # both end points are real frames, not morphed ones
        assert covered[transition.a_out] == 0
        assert transition.b_out >= timeline.n_frames or covered[transition.b_out] == 0
    long_enough = [t.count for t in timeline.transitions if t.count + 2 >= settings.min_frames]
    assert len(long_enough) >= 0.8 * len(timeline.transitions)
