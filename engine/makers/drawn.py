"""A drawn character's "recording": the rig of :mod:`engine.synthetic` reading the passages.

The rig is driven by text-to-speech of the phonetically diverse passages in
``characters/passages/``, so its mouth follows real speech sounds; an idle take (blinks, gaze,
mouth closed) goes beside it. Both are written as ordinary videos and built into a library
exactly as a filmed character would be: the engine never knows the difference.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import synthetic
from ..build import BuildSettings, build_library
from ..characters import Character, CharacterError, builtin_characters_dir
from ..library import LibraryInfo
from ..media import PERFORMED_IDLE_S, write_takes
from ..speech import concatenate, speak_sentences

log = logging.getLogger(__name__)

PAUSE_BETWEEN_PASSAGES_S = 1.0


def passages_dir() -> Path:
    return builtin_characters_dir() / "passages"


def read_passage(language: str) -> str:
    path = passages_dir() / f"{language}.txt"
    if not path.is_file():
        raise CharacterError(f"no reading passage for language {language!r} ({path} is missing)")
    return path.read_text(encoding="utf-8")


def performance_audio(character: Character) -> tuple[np.ndarray, int]:
    """The character's voice reading its passages, one after another."""
    languages = character.source.get("passages", [character.language])
    parts = []
    for language in languages:
        spoken = concatenate(
            speak_sentences(read_passage(language), character.voice_for(language)), gap_s=0.15
        )
        parts.append(spoken)
    speech = concatenate(parts, gap_s=PAUSE_BETWEEN_PASSAGES_S)
    return speech.audio, speech.sample_rate


def write_performance(
    character: Character, folder: Path, progress: Callable[[int], None] | None = None
) -> tuple[Path, Path]:
    """Write the speech and idle takes of a drawn character into ``folder``."""
    style = character.source.get("style", "fox")
    size = int(character.source.get("size", 512))
    seed = int(character.source.get("seed", 7))
    audio, sample_rate = performance_audio(character)
    idle_frames = int(PERFORMED_IDLE_S * synthetic.FPS)
    return write_takes(
        folder,
        audio,
        sample_rate,
        synthetic.performance(audio, sample_rate, seed=seed, size=size, style=style),
        synthetic.idle_performance(idle_frames, seed=seed + 1, size=size, style=style),
        size=size,
        progress=progress,
    )


def build_drawn_character(character: Character, progress: Callable[[int], None] | None = None) -> LibraryInfo:
    """Perform, film and build a drawn character's library (into its folder, atomically)."""
    size = int(character.source.get("size", 512))
    with tempfile.TemporaryDirectory(prefix=f"gramophone-{character.id}-") as work:
        speech_video, idle_video = write_performance(character, Path(work), progress)
        return build_library(
            speech_video,
            character.library_path,
            idle_video,
            BuildSettings(size=size, crop="centre"),
            progress=progress,
        )
