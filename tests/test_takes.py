"""A person recorded in takes: each take judged at once, the takes joined, and the library built
with no segment across two takes. The takes are the synthetic rig (a face the landmark model
finds, speech of known loudness), spoilt one way at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import features as feat
from engine import landmarks, synthetic
from engine.build import BuildSettings, build_library
from engine.library import open_library
from engine.makers.takes import check_take, join_takes
from engine.media import ANALYSIS_SAMPLE_RATE, VideoEncoder, iter_frames, probe, read_audio, write_wav

SIDE = 256
needs_landmarks = pytest.mark.skipif(not landmarks.available(), reason="no face landmark model installed")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path]:
    return synthetic.write_character_videos(
        tmp_path_factory.mktemp("takes"), seed=5, duration_s=8.0, size=SIDE, idle_s=4.0
    )


def respun(
    source: Path, out: Path, *, light: float = 1.0, audio: np.ndarray | None = None, blank: bool = False
) -> Path:
    """A copy of ``source`` with its frames darkened (or blanked) and/or another sound."""
    sound = read_audio(source) if audio is None else audio
    wav = write_wav(out.with_suffix(".wav"), sound.astype(np.float32), ANALYSIS_SAMPLE_RATE)
    ramp = np.tile(np.linspace(40, 220, SIDE, dtype=np.uint8), (SIDE, 1))
    with VideoEncoder(out, SIDE, 25, audio_path=wav) as encoder:
        for frame in iter_frames(source, SIDE, 25):
            picture = np.dstack([ramp] * 3) if blank else np.clip(frame * light, 0, 255).astype(np.uint8)
            encoder.write(picture)
    return out


@needs_landmarks
def test_good_takes_pass(recorded):
    speech, idle = recorded
    report = check_take(speech, kind="speech", seconds=(5, 61))
    assert report.ok, report.problems
    assert report.face_share >= 0.95 and report.voiced_share > 0.33 and 7.5 < report.seconds < 8.5
    assert check_take(idle, kind="idle", seconds=(2, 15)).ok


@needs_landmarks
def test_each_spoilt_take_gets_its_own_reason(recorded, tmp_path):
    speech, idle = recorded
    sound = read_audio(speech)
    cases = [
        (respun(speech, tmp_path / "dark.mp4", light=0.12), "speech", "too dark"),
        (respun(speech, tmp_path / "noface.mp4", blank=True), "speech", "the face is out of the picture"),
        (respun(speech, tmp_path / "quiet.mp4", audio=sound * 0.0), "speech", "hardly hear any reading"),
        (respun(speech, tmp_path / "loud.mp4", audio=np.clip(sound * 40, -1, 1)), "speech", "distorted"),
        (speech, "idle", "should be silent"),
    ]
    for path, kind, reason in cases:
        report = check_take(path, kind=kind, seconds=(2, 61))
        assert len(report.problems) >= 1 and any(reason in problem for problem in report.problems), (
            path.name,
            report,
        )
        assert all("\n" not in problem for problem in report.problems)
    short = check_take(speech, kind="speech", seconds=(10, 61))
    assert short.problems == ["it is only 8 s long; this part needs at least 10 s"]


def test_takes_join_and_no_segment_crosses_a_take(recorded, tmp_path):
    speech, idle = recorded
    second = tmp_path / "second.mp4"
    synthetic.write_character_videos(tmp_path / "b", seed=6, duration_s=6.0, size=SIDE, idle_s=2.0)
    (tmp_path / "b" / "speech.mp4").rename(second)
    joined = tmp_path / "joined.mp4"
    counts = join_takes([speech, second], joined, size=SIDE)
    assert counts == [200, 150]
    media = probe(joined)
    assert (media.width, media.height, media.has_audio) == (SIDE, SIDE, True)
    assert abs(len(read_audio(joined)) / ANALYSIS_SAMPLE_RATE - 14.0) < 0.1
    library_path = tmp_path / "joined.gchar"
    build_library(joined, library_path, idle, BuildSettings(size=SIDE, crop="centre"), take_frames=counts)
    with open_library(library_path) as library:
        starts = library.segment_starts[~library.segment_is_idle]
    assert len(starts) and not np.any((starts < 200) & (starts + feat.SEGMENT_FRAMES > 200))
    assert np.any(starts + feat.SEGMENT_FRAMES == 200) and np.any(starts == 200)  # both sides still used
    with pytest.raises(Exception, match="do not make the speech video"):
        build_library(
            joined,
            tmp_path / "bad.gchar",
            idle,
            BuildSettings(size=SIDE, crop="centre"),
            take_frames=[100, 100],
        )


def test_a_character_made_from_a_person_loads_renders_and_keeps_its_takes_apart(recorded, tmp_path):
    from engine.characters import Catalogue, ensure_library
    from engine.makers.make import make_character_from_person
    from engine.render import render
    from engine.speech import VoiceSettings

    speech, idle = recorded
    second = tmp_path / "second.mp4"
    synthetic.write_character_videos(
        tmp_path / "b", seed=7, duration_s=5.0, size=320, idle_s=2.0
    )  # another size
    (tmp_path / "b" / "speech.mp4").rename(second)
    stages: list[str] = []
    folder = tmp_path / "characters" / "grandma"
    made = make_character_from_person(
        [speech, second],
        idle,
        folder,
        character_id="grandma",
        name="Grandma",
        language="en",
        voice=VoiceSettings(),
        size=128,
        progress=lambda stage, fraction: stages.append(stage),
    )
    assert made.path == "person" and made.info.size == 128 and stages[-1] == "ready"
    assert sorted(p.name for p in folder.iterdir()) == [
        "character.toml",
        "idle.mp4",
        "library.gchar",
        "portrait.jpg",
        "speech.mp4",
    ]
    grandma = Catalogue(tmp_path / "characters").get("grandma")
    assert grandma.source["takes"] == [200, 125] and grandma.source["maker"] == "person"
    with open_library(grandma.library_path) as library:
        starts = library.segment_starts[~library.segment_is_idle]
    assert not np.any((starts < 200) & (starts + feat.SEGMENT_FRAMES > 200))
    grandma.library_path.unlink()  # a rebuild (characters build --rebuild) keeps the takes apart too
    ensure_library(grandma)
    with open_library(grandma.library_path) as library:
        assert not np.any(
            (library.segment_starts < 200)
            & (library.segment_starts + feat.SEGMENT_FRAMES > 200)
            & ~library.segment_is_idle
        )
    wav = write_wav(tmp_path / "hi.wav", synthetic.synth_speech(2.0, seed=3, sample_rate=16_000), 16_000)
    assert render(grandma.library_path, wav, tmp_path / "hi.mp4").frames == 50


def test_a_users_video_is_copied_through_one_demuxer_and_a_playlist_is_refused(recorded, tmp_path):
    from engine.errors import MediaError
    from engine.media import remux_untrusted_video

    speech, _ = recorded
    copy = remux_untrusted_video(speech, tmp_path / "copy.mp4", max_seconds=3.0)
    media = probe(copy)
    assert media.has_video and media.has_audio and media.duration <= 3.2
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(speech.read_bytes())
    for name, body in [
        ("playlist.mp4", f"#EXTM3U\n#EXTINF:8,\nfile://{secret}\n#EXT-X-ENDLIST\n"),
        ("concat.mp4", f"ffconcat version 1.0\nfile '{secret}'\n"),
    ]:
        hostile = tmp_path / name
        hostile.write_text(body)
        with pytest.raises(MediaError, match="not a video I accept"):
            remux_untrusted_video(hostile, tmp_path / f"out-{name}", max_seconds=60.0)
        assert not (tmp_path / f"out-{name}").exists()
