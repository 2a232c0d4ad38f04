"""Mouths: the per-frame measures, the audio -> mouth model, the planner's mouth target,
face-centred framing, and v1 libraries opening as before."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import features as feat
from engine import landmarks, synthetic
from engine.build import BuildSettings, build_library
from engine.errors import InputError
from engine.framing import face_crop
from engine.library import open_library
from engine.media import ANALYSIS_SAMPLE_RATE, ffmpeg_exe, read_audio
from engine.mouth import fit_mouth_model
from engine.planner import PlannerSettings
from engine.render import RenderConfig, plan_audio, render

needs_landmarks = pytest.mark.skipif(
    not landmarks.available(), reason="the face landmark model (mediapipe) is not installed"
)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _true_opening(character) -> tuple[np.ndarray, int]:  # noqa: ANN001 -- the conftest fixture
    with open_library(character.library) as library:
        speech_frames = int((library.sources == 0).sum())
    audio = read_audio(character.speech_video)
    return synthetic.mouth_track(audio, ANALYSIS_SAMPLE_RATE, speech_frames).opening, speech_frames


@needs_landmarks
def test_landmarks_measure_the_rigs_known_mouth(character) -> None:  # noqa: ANN001
    truth, n = _true_opening(character)
    with open_library(character.library) as library:
        assert library.mouth_meta["measure"] == "landmarks" and library.mouth_meta["found"] > 0.95
        measured = library.mouth[:n, 0]
        assert library.info().format_version == 2
        # every frame's face points, the skipped ones (every other) filled in: the morphs use them
        assert library.mouth_anchors is not None and np.isfinite(library.mouth_anchors[:n]).all()
    assert _r(measured, truth) > 0.8


@needs_landmarks
def test_morphs_on_a_face_are_guided_by_its_landmarks(character, new_speech) -> None:  # noqa: ANN001
    """The render hands each join's two sets of face points to its morph: with the guidance off,
    only morph frames change."""
    from engine.morph import MorphSettings
    from engine.render import render_frames

    audio, _ = new_speech
    with open_library(character.library) as library:
        timeline = plan_audio(library, audio[: 6 * ANALYSIS_SAMPLE_RATE], ANALYSIS_SAMPLE_RATE)
        guided = list(render_frames(library, timeline))
        unguided_config = RenderConfig(morph=dataclasses.replace(MorphSettings(), face_guided=False))
        unguided = list(render_frames(library, timeline, unguided_config))
    morph = timeline.morph_mask()
    assert morph.any() and len(guided) == len(unguided) == timeline.n_frames
    differs = np.array([not np.array_equal(g, u) for g, u in zip(guided, unguided)])
    assert differs.any() and not differs[~morph].any()


def test_pixels_measure_the_mouth_where_no_landmarks_are(character, tmp_path: Path) -> None:  # noqa: ANN001
    library_path = tmp_path / "pixels.gchar"
    build_library(
        character.speech_video,
        library_path,
        character.idle_video,
        BuildSettings(size=128, crop="centre", mouth_landmarks=False),
    )
    truth, n = _true_opening(character)
    with open_library(library_path) as library:
        assert library.mouth_meta["measure"] == "pixels"
        assert _r(library.mouth[:n, 0], truth) > 0.75


def test_the_audio_to_mouth_model_learns_a_known_mapping() -> None:
    rng = np.random.default_rng(3)
    n = 1500
    features = rng.normal(size=(n, feat.FEATURE_DIM)).astype(np.float32)
    features = np.apply_along_axis(
        lambda column: np.convolve(column, np.ones(5) / 5, mode="same"), 0, features
    )
    # The mouth opens with loudness a frame later, and widens with feature 3: a causal, local rule.
    opening = np.roll(features[:, 0], 1) + 0.5 * features[:, 2] + 0.1 * rng.normal(size=n)
    width = features[:, 3] + 0.1 * rng.normal(size=n)
    mouth = np.stack([opening, width], axis=1).astype(np.float32)
    train = np.zeros(n, dtype=bool)
    train[:1000] = True
    model = fit_mouth_model(features, mouth, train)
    assert model is not None and model.cv_r[0] > 0.8 and model.cv_r[1] > 0.8
    predicted = model.predict(features[1000:])
    assert _r(predicted[:, 0], opening[1000:]) > 0.85 and _r(predicted[:, 1], width[1000:]) > 0.85
    assert abs(predicted[:, 0].std() - 1.0) < 0.3, "the track asks for the recording's full range"
    assert fit_mouth_model(features, mouth, np.arange(n) < 20) is None, "too little to learn from"


def test_the_planner_follows_the_mouth_target_when_asked(character, new_speech) -> None:  # noqa: ANN001
    audio, _ = new_speech
    with open_library(character.library) as library:
        model = library.mouth_model
        assert model is not None
        analysis = feat.analyse(audio, ANALYSIS_SAMPLE_RATE)
        target = model.predict(analysis.features)[:, 0]
        speech = analysis.speech
        loudness = analysis.features[:, 0]
        followed, loud = [], []
        for weight, loudness_target in ((0.0, 0.0), (50.0, 0.0), (50.0, 10.0)):
            planner = dataclasses.replace(
                PlannerSettings(), mouth_weight=weight, loudness_target=loudness_target, slot_frames=5
            )
            timeline = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, config=RenderConfig(planner=planner))
            played = library.mouth[timeline.frame_source, 0]
            followed.append(_r(played[speech], target[speech]))
            loud.append(_r(played[speech], loudness[speech]))
    assert followed[1] > followed[0] + 0.05 and followed[1] > 0.8, followed
    # the loudness in the target: the mouth follows the new audio's loudness more, the model less
    assert loud[2] > loud[1] and followed[2] < followed[1], (loud, followed)


def test_another_voice_opens_the_mouth_on_its_loud_syllables(character, new_speech) -> None:  # noqa: ANN001
    """eSpeak on the rig's library: the model learnt the rig's voice, not this one, so the
    planner follows the new audio's loudness instead; the rig's own voice keeps the model."""
    from engine.planner import other_voice_share
    from engine.speech import speak

    spoken = speak(
        "Once upon a time, a little fox lived at the edge of a quiet wood. Every morning she ran "
        "to the river, looked at the fish, and sang a song about the sun."
    )
    own_audio, _ = new_speech
    with open_library(character.library) as library:
        assert library.voice is not None and library.voice.shape == (2, feat.FEATURE_DIM - 1)
        settings = PlannerSettings()
        own = feat.analyse(own_audio, ANALYSIS_SAMPLE_RATE)
        other = feat.analyse(spoken.audio, spoken.sample_rate)
        assert other_voice_share(library, own, settings) == 0.0
        assert other_voice_share(library, other, settings) == 1.0
        loudness = other.features[:, 0]
        followed = []
        for planner in (dataclasses.replace(settings, other_voice=(98.0, 99.0)), settings):
            timeline = plan_audio(
                library, spoken.audio, spoken.sample_rate, config=RenderConfig(planner=planner)
            )
            played = library.mouth[timeline.frame_source, 0]
            followed.append(_r(played[other.speech], loudness[other.speech]))
    assert followed[1] > followed[0] + 0.1 and followed[1] > 0.5, followed


def _portrait_video(
    path: Path, *, width: int = 360, height: int = 640, face_at: tuple[int, int] = (40, 60)
) -> Path:
    """A tall video (a phone's) with the rig's face, 200 px, in its upper left, and its voice."""
    audio = synthetic.synth_speech(3.0, seed=5, sample_rate=ANALYSIS_SAMPLE_RATE)
    params = synthetic.performance_params(audio, ANALYSIS_SAMPLE_RATE, seed=5)
    wav = path.with_suffix(".wav")
    from engine.media import write_wav

    write_wav(wav, audio, ANALYSIS_SAMPLE_RATE)
    silent = path.with_name("silent.mp4")
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    for p in params:
        canvas = np.full((height, width, 3), (90, 110, 130), np.uint8)
        x, y = face_at
        canvas[y : y + 200, x : x + 200] = synthetic.draw_face(p, 200, "test")
        writer.write(canvas)
    writer.release()
    subprocess.run(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(silent),
            "-i",
            str(wav),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


@needs_landmarks
def test_framing_finds_a_face_off_centre_in_a_tall_video(tmp_path: Path) -> None:
    video = _portrait_video(tmp_path / "phone.mp4")
    crop = face_crop(video)
    face_centre = (40 + 100, 60 + 100)
    assert crop.x <= face_centre[0] <= crop.x + crop.side and crop.y <= face_centre[1] <= crop.y + crop.side
    assert crop.y < 640 // 2 - crop.side // 2, "a centred square would cut the head off; this one moves up"
    assert abs((crop.x + crop.side / 2) - face_centre[0]) < crop.side * 0.2
    library = build_library(video, tmp_path / "phone.gchar", settings=BuildSettings(size=128))
    assert library.build["crop"] == f"face {crop.x},{crop.y},{crop.side},{crop.side}"
    assert any(line.startswith("settings") and "crop=face" in line for line in library.lines())


def test_a_video_with_no_face_is_refused_unless_a_crop_is_given(tmp_path: Path) -> None:
    video = tmp_path / "wall.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=320x240:d=3",
            "-f",
            "lavfi",
            "-i",
            "sine=d=3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-shortest",
            str(video),
        ],
        check=True,
    )
    with pytest.raises(InputError, match="--crop"):
        build_library(video, tmp_path / "wall.gchar", settings=BuildSettings(size=64))
    assert not (tmp_path / "wall.gchar").exists()
    info = build_library(video, tmp_path / "wall.gchar", settings=BuildSettings(size=64, crop="centre"))
    assert info.build["crop"] == "centre"


def test_a_version_1_library_opens_and_renders_as_before(character, new_speech, tmp_path: Path) -> None:  # noqa: ANN001
    """A v1 file (no mouth arrays) keeps working: the planner simply has no mouth target."""
    _, speech_path = new_speech
    old = tmp_path / "v1.gchar"
    old.write_bytes(character.library.read_bytes())
    with sqlite3.connect(old) as connection:
        connection.execute("DELETE FROM arrays WHERE name LIKE 'mouth%'")
        connection.execute("DELETE FROM meta WHERE key = 'mouth'")
        connection.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", [json.dumps(1)])
    with open_library(old) as library:
        assert library.info().format_version == 1 and library.mouth is None and library.mouth_model is None
        assert "v1 library" in "\n".join(library.info().lines())
        planner = dataclasses.replace(PlannerSettings(), mouth_weight=10.0)
        result = render(
            library, speech_path, tmp_path / "v1.mp4", config=RenderConfig(planner=planner), size=128
        )
    assert result.frames == feat.frame_count(len(read_audio(speech_path)), ANALYSIS_SAMPLE_RATE)


def test_a_library_built_before_the_voice_was_kept_plans_every_voice_as_its_own(
    character,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """A v2 file without ``voice`` keeps its old plans; ``info`` says how to upgrade it."""
    from engine.planner import other_voice_share
    from engine.speech import speak

    older = tmp_path / "older.gchar"
    older.write_bytes(character.library.read_bytes())
    with sqlite3.connect(older) as connection:
        connection.execute("DELETE FROM arrays WHERE name = 'voice'")
    spoken = speak("Once upon a time a little fox lived at the edge of a quiet wood.")
    other = feat.analyse(spoken.audio, spoken.sample_rate)
    with open_library(character.library) as library:
        assert other_voice_share(library, other, PlannerSettings()) == 1.0
        assert any(line.startswith("voice        kept") for line in library.info().lines())
    with open_library(older) as library:
        assert library.voice is None and other_voice_share(library, other, PlannerSettings()) == 0.0
        (line,) = [line for line in library.info().lines() if line.startswith("voice")]
        assert "not kept" in line and "--rebuild" in line


def test_a_library_of_a_newer_format_is_refused(character, tmp_path: Path) -> None:  # noqa: ANN001
    newer = tmp_path / "v9.gchar"
    newer.write_bytes(character.library.read_bytes())
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE meta SET value = '9' WHERE key = 'format_version'")
    from engine.errors import LibraryError

    with pytest.raises(LibraryError, match="newer"):
        open_library(newer)


def _real_mouths_benchmark():  # noqa: ANN202 -- a module loaded from its file
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "real_mouths.py"
    spec = importlib.util.spec_from_file_location("real_mouths_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_ceiling_run_plans_toward_the_known_mouth(character, new_speech) -> None:  # noqa: ANN001
    """benchmarks/real_mouths.py --ceiling swaps the library's mouth model for the real mouth:
    the planner must then follow that track, not the audio's prediction."""
    known_mouth = _real_mouths_benchmark().KnownMouth
    audio, _ = new_speech
    analysis = feat.analyse(audio, ANALYSIS_SAMPLE_RATE)
    frames = np.arange(analysis.n_frames)
    track = np.sin(2 * np.pi * frames / 37.0) + 0.5 * np.sin(2 * np.pi * frames / 11.0)  # unlike any speech
    track[::50] = np.nan  # frames without a face
    planner = dataclasses.replace(PlannerSettings(), mouth_weight=10.0, loudness_target=0.0, slot_frames=5)
    config = RenderConfig(planner=planner)
    speech = analysis.speech & np.isfinite(track)
    with open_library(character.library) as library:
        model = library.mouth_model
        assert model is not None
        predicted = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, config=config)
        library.mouth_model = known_mouth(model, track)  # type: ignore[misc]
        known = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, config=config)
        follows_known = _r(library.mouth[known.frame_source, 0][speech], track[speech])
        follows_predicted = _r(library.mouth[predicted.frame_source, 0][speech], track[speech])
    assert follows_known > 0.4, follows_known
    assert follows_known > follows_predicted + 0.3, (follows_known, follows_predicted)
