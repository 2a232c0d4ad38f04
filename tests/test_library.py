"""The library file: build, round trip, idle sources, atomic writes, refusal of foreign files."""

import shutil
import sqlite3

import numpy as np
import pytest

from engine import synthetic
from engine.build import BuildSettings, build_library
from engine.errors import LibraryError
from engine.features import SEGMENT_FRAMES
from engine.library import FORMAT_VERSION, LibraryWriter, open_library
from engine.media import iter_frames

from .conftest import SIZE


def test_library_holds_every_frame_and_segment(character):
    with open_library(character.library) as library:
        info = library.info()
        assert info.format_version == FORMAT_VERSION
        assert info.size == SIZE and info.fps == 25
        assert info.speech_frames == pytest.approx(40 * 25, abs=2)
        assert info.idle_frames == pytest.approx(8 * 25, abs=2)
        assert info.idle_source == "idle-video"
        assert info.speech_segments == pytest.approx((info.speech_frames - SEGMENT_FRAMES) // 2 + 1, abs=1)
        assert info.idle_segments > 0
        n = library.frame_count
        assert library.features.shape == (n, 16)
        assert library.thumbnails.shape == (n, 64, 64)
        assert library.embeddings.shape[0] == n
        assert library.fingerprints.shape == (info.speech_segments + info.idle_segments, 16)
        assert np.diff(library.segment_starts[~library.segment_is_idle]).min() == 2
        # Idle segments come from the idle video only.
        assert (library.sources[library.segment_starts[library.segment_is_idle]] == 1).all()


def test_frames_round_trip(character):
    source = list(iter_frames(character.speech_video, size=SIZE))
    with open_library(character.library) as library:
        for index in (0, 137, len(source) - 1):
            stored = library.frame(index)
            assert stored.shape == (SIZE, SIZE, 3)
            assert np.abs(stored.astype(int) - source[index]).mean() < 3  # JPEG, not another frame


def test_idle_from_pauses_and_from_quietest_segments(tmp_path, character):
    with_pauses = build_library(
        character.speech_video, tmp_path / "pauses.gchar", settings=BuildSettings(size=64, crop="centre")
    )
    assert with_pauses.idle_source == "speech-pauses"
    assert with_pauses.idle_segments >= 3
    # A recording that never pauses: the quietest, stillest segments stand in, and info says so.
    folder = tmp_path / "no-pauses"
    folder.mkdir()
    audio = synthetic.synth_speech(8.0, seed=5, pauses=False)
    from engine.media import VideoEncoder, write_wav

    wav = write_wav(folder / "a.wav", audio, 16_000)
    with VideoEncoder(folder / "talk.mp4", size=64, audio_path=wav) as encoder:
        for frame in synthetic.performance(audio, 16_000, seed=5, size=64):
            encoder.write(frame)
    no_pauses = build_library(
        folder / "talk.mp4", tmp_path / "np.gchar", settings=BuildSettings(size=64, crop="centre")
    )
    assert no_pauses.idle_source == "quietest-segments"
    assert no_pauses.idle_segments >= 3
    assert any("quietest" in line for line in no_pauses.lines())


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "half.gchar"
    with pytest.raises(RuntimeError):
        with LibraryWriter(target) as writer:
            writer.add_frames(0, [b"\xff\xd8 not really a jpeg"])
            raise RuntimeError("power cut")
    assert list(tmp_path.iterdir()) == []


def test_unknown_version_and_foreign_files_are_refused(tmp_path, character):
    newer = tmp_path / "newer.gchar"
    shutil.copy(character.library, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(LibraryError, match="v99 is from a newer Gramophone"):
        open_library(newer)

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    with pytest.raises(LibraryError, match="not a Gramophone character library"):
        open_library(foreign)

    text = tmp_path / "notes.gchar"
    text.write_text("hello")
    with pytest.raises(LibraryError, match="not a Gramophone character library"):
        open_library(text)
    with pytest.raises(LibraryError, match="no such character library"):
        open_library(tmp_path / "missing.gchar")
