"""The character catalogue, the fox, `gramophone say`, `demo` and `characters`."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import synthetic
from engine.characters import (
    Catalogue,
    CharacterError,
    builtin_characters_dir,
    ensure_library,
    load_character,
)
from engine.errors import InputError
from engine.library import open_library
from engine.media import iter_frames, probe, read_audio
from engine.quality import measure
from engine.say import say

REPO_CHARACTERS = Path(__file__).resolve().parents[1] / "characters"


@pytest.fixture(scope="session")
def characters_dir(tmp_path_factory) -> Path:
    """A copy of the repository's characters with the fox at 96 px, so it builds in seconds."""
    folder = tmp_path_factory.mktemp("characters") / "characters"
    shutil.copytree(REPO_CHARACTERS, folder, ignore=shutil.ignore_patterns("library.gchar", ".build.lock"))
    toml = folder / "fox" / "character.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("size = 512", "size = 96"), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def fox(characters_dir):
    character = Catalogue(characters_dir).get("fox")
    ensure_library(character)
    return character


def test_the_repository_ships_the_fox_and_both_passages():
    catalogue = Catalogue(REPO_CHARACTERS)
    fox = catalogue.get("fox")
    assert catalogue.problems == []
    assert fox.source["source"] == "drawn" and fox.pitch_semitones > 0
    assert fox.voice_for("ru").language == "ru" and fox.voice_for("en").language == "en"
    assert "fox" in fox.greeting_for("en").lower() and fox.greeting_for("ru")
    for language in ("en", "ru"):
        assert (
            len((REPO_CHARACTERS / "passages" / f"{language}.txt").read_text(encoding="utf-8").split()) > 150
        )
    assert builtin_characters_dir() == REPO_CHARACTERS or os.environ.get("GRAMOPHONE_BUILTIN_CHARACTERS_DIR")


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "character.toml").write_text(text, encoding="utf-8")
    return folder


def test_broken_folders_are_named_and_the_rest_still_load(tmp_path, characters_dir):
    root = tmp_path / "chars"
    shutil.copytree(characters_dir / "fox", root / "fox")
    write(root / "bad-toml", "id = [unclosed")
    write(root / "no-name", 'id = "owl"\nlanguage = "en"\n')
    write(root / "bad-id", 'id = "../etc"\nname = "X"\nlanguage = "en"\n')
    write(
        root / "no-video", 'id = "knight"\nname = "Ivanhoe"\nlanguage = "en"\n[library]\nsource = "video"\n'
    )
    write(root / "bad-voice", 'id = "bear"\nname = "Bear"\nlanguage = "en"\n[voice]\nrate = 5\n')
    catalogue = Catalogue(root)
    assert [c.id for c in catalogue.list()] == ["fox"]
    assert len(catalogue.problems) == 5
    for folder in ("bad-toml", "no-name", "bad-id", "no-video", "bad-voice"):
        assert any(folder in problem for problem in catalogue.problems), folder
    with pytest.raises(InputError, match="unknown character 'owl' .*known: fox"):
        catalogue.get("owl")
    with pytest.raises(CharacterError, match="no character.toml"):
        load_character(tmp_path)


def test_the_fox_builds_and_says_new_text_with_moving_lips(fox, tmp_path):
    with open_library(fox.library_path) as library:
        info = library.info()
        assert info.idle_source == "idle-video" and info.speech_seconds > 100  # both passages were read
    out = tmp_path / "hello.mp4"
    text = (
        "Good evening, little one. Today I found a shiny red apple under the old oak tree, "
        "and I shared it with my friend the hedgehog."
    )
    result = say(fox, text, out)
    media = probe(out)
    assert (media.video_codec, media.audio_codec) == ("h264", "aac")
    audio = read_audio(out)
    assert abs(result.frames / 25 - len(audio) / 16_000) < 0.1
    openings = np.array([synthetic.measure_mouth(frame)[0] for frame in iter_frames(out, size=96)])
    assert openings.max() > 0.4 and openings.std() > 0.1  # the mouth moves
    with open_library(fox.library_path) as library:
        report = measure(out, audio, 16_000, result.timeline, library)
    assert report.r_opening > 0.6


def test_say_in_russian_and_as_a_video_note(fox, tmp_path):
    result = say(
        fox, "Привет! Я лисёнок. Я живу в лесу.", tmp_path / "ru.mp4", language="ru", video_note=True
    )
    assert probe(result.path).width == 96 and result.duration_s > 1.0


def test_say_bad_input_leaves_nothing(fox, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="empty"):
        say(fox, "   ", out)
    with pytest.raises(InputError, match="100"):
        say(fox, "word " * 100, out, max_chars=100)
    with pytest.raises(InputError, match="language"):
        say(fox, "hello", out, language="xx-nowhere")
    long_text = "This sentence is long enough to take a few seconds to say. " * 25
    with pytest.raises(InputError, match="too long for a video note"):
        say(fox, long_text, out, video_note=True)
    assert list(tmp_path.iterdir()) == []


def gramophone(*args: str, characters: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRAMOPHONE_BUILTIN_CHARACTERS_DIR": str(characters)}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_cli_say_demo_and_characters(fox, characters_dir, tmp_path):
    listed = gramophone("characters", "list", characters=characters_dir, cwd=tmp_path)
    assert listed.returncode == 0 and "Little Fox" in listed.stdout and "built" in listed.stdout
    info = gramophone("characters", "info", "fox", characters=characters_dir, cwd=tmp_path)
    assert info.returncode == 0 and "idle video" in info.stdout
    story = tmp_path / "story.txt"
    story.write_text(
        "Once upon a time a fox found a star. It was warm and bright. Good night!", encoding="utf-8"
    )
    said = gramophone(
        "say",
        "--file",
        str(story),
        "-o",
        "story.mp4",
        "--voice",
        "en-gb",
        "--rate",
        "180",
        "--pitch",
        "60",
        characters=characters_dir,
        cwd=tmp_path,
    )
    assert said.returncode == 0, said.stderr
    assert probe(tmp_path / "story.mp4").has_audio
    demo = gramophone("demo", characters=characters_dir, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert str(tmp_path / "demo.mp4") in demo.stdout
    assert probe(tmp_path / "demo.mp4").duration > 20


def test_cli_say_bad_input(characters_dir, tmp_path):
    for args, needle in [
        (("say", "", "-o", "x.mp4"), "empty"),
        (("say", "hi", "--character", "dragon", "-o", "x.mp4"), "unknown character"),
        (("say", "hi", "--lang", "zz", "-o", "x.mp4"), "language"),
        (("say", "hi", "--voice", "nonexistent-voice", "-o", "x.mp4"), "voice"),
        (("say", "hi", "--rate", "5", "-o", "x.mp4"), "rate"),
        (("say", "--file", "missing.txt", "-o", "x.mp4"), "cannot read"),
    ]:
        result = gramophone(*args, characters=characters_dir, cwd=tmp_path)
        assert result.returncode == 2, args
        assert result.stderr.strip().startswith("gramophone: error:") and needle in result.stderr, (
            result.stderr
        )
    assert not (tmp_path / "x.mp4").exists()


def test_character_toml_has_one_reader_and_writer_that_round_trip(tmp_path):
    """What ``to_toml`` writes, ``from_toml`` reads back to an equal spec: control characters and
    quotes escaped, unknown keys and the top comment kept, nested voice tables intact."""
    from engine.character_spec import CharacterSpec

    spec = CharacterSpec(
        id="odd-one",
        name='Tab\there "quoted" \x7f\x01 \\ end',
        language="en",
        description="line one\nline two",
        pitch_semitones=-2.5,
        portrait="portrait.png",
        voice={"voice": "en-us+f3", "rate": 150},
        voices={"ru": {"voice": "ru+f3"}},
        greeting={"en": 'Hello! I am Tab\there "quoted" \x7f\x01 \\ end.'},
        library={"source": "video", "size": 512, "takes": [100, 200]},
        extra={"future_key": True, "future_table": {"a": 1}},
        comment="Made by a test.\nSecond line.",
    )
    text = spec.to_toml()
    assert text.startswith("# Made by a test.\n# Second line.\n")
    assert CharacterSpec.from_toml(text) == spec
    folder = tmp_path / "odd-one"
    folder.mkdir()
    (folder / "character.toml").write_text(text, encoding="utf-8")
    (folder / "speech.mp4").write_bytes(b"")
    loaded = load_character(folder)
    assert (loaded.name, loaded.voice_for("ru").voice, loaded.source["takes"]) == (
        spec.name,
        "ru+f3",
        [100, 200],
    )


def test_a_rename_changes_the_name_and_greetings_and_keeps_the_rest():
    from engine.character_spec import CharacterSpec

    fox = builtin_characters_dir() / "fox" / "character.toml"
    spec = CharacterSpec.from_toml(fox.read_text(encoding="utf-8"))
    spec = dataclasses.replace(spec, greeting={**spec.greeting, "en": f"Hello! I am {spec.name}."})
    renamed = CharacterSpec.from_toml(spec.renamed("Fluffy\nTail").to_toml())
    assert renamed.name == "Fluffy\nTail" and renamed.id == spec.id
    said_the_name = [language for language, line in spec.greeting.items() if spec.name in line]
    assert said_the_name and all("Fluffy\nTail" in renamed.greeting[language] for language in said_the_name)
    assert (renamed.voice, renamed.voices, renamed.library, renamed.pitch_semitones) == (
        spec.voice,
        spec.voices,
        spec.library,
        spec.pitch_semitones,
    )


def test_a_spec_with_the_wrong_shape_is_refused_with_its_reason():
    from engine.character_spec import CharacterSpec

    cases = {
        'id = "x"\nname = "X"\n': "missing language",
        'id = "X!"\nname = "X"\nlanguage = "en"\n': "lowercase",
        'id = "x"\nname = "X"\nlanguage = "en"\npitch_semitones = 40\n': "between -12 and 12",
        'id = "x"\nname = "X"\nlanguage = "en"\nvoice = 3\n': "must be a table",
        'id = "x"\nname = "X"\nlanguage = "en"\n[library]\nsource = "magic"\n': "must be one of",
    }
    for text, reason in cases.items():
        with pytest.raises(CharacterError, match=reason):
            CharacterSpec.from_toml(text, where="test.toml")
