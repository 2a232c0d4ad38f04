"""Shared fixtures: a synthetic test character, generated and built once per test session.

The character is the ground-truth rig of ``engine.synthetic`` at 256 px (small, so the suite is
fast): 40 s of synthetic speech with pauses, plus 8 s of idle. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine import synthetic
from engine.build import BuildSettings, build_library
from engine.media import write_wav

SAMPLE_RATE = 16_000
SIZE = 256


@dataclass(frozen=True)
class TestCharacter:
    speech_video: Path
    idle_video: Path
    library: Path


@pytest.fixture(scope="session")
def character(tmp_path_factory) -> TestCharacter:
    folder = tmp_path_factory.mktemp("character")
    speech_video, idle_video = synthetic.write_character_videos(
        folder, seed=1, duration_s=40.0, size=SIZE, idle_s=8.0
    )
    library = folder / "test.gchar"
    build_library(speech_video, library, idle_video, BuildSettings(size=SIZE, crop="centre"))
    return TestCharacter(speech_video, idle_video, library)


@pytest.fixture(scope="session")
def new_speech(tmp_path_factory) -> tuple[np.ndarray, Path]:
    """Speech the library has never heard (another seed), as samples and as a WAV file."""
    audio = synthetic.synth_speech(16.0, seed=1077, sample_rate=SAMPLE_RATE)
    path = write_wav(tmp_path_factory.mktemp("audio") / "new.wav", audio, SAMPLE_RATE)
    return audio, path
