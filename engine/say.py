"""Text -> speech -> video: a character says a text.

Speech is synthesised sentence by sentence and rendered as it comes (:func:`render_stream`), so
a long story is being encoded while its end is still being spoken. Sentences are grouped into
parts of at least 20 s before rendering, because the audio features are normalised per part and
short parts normalise noisily (fox, unseen text, opening r: 4 s parts 0.81, 8 s 0.83, 15 s 0.84).
eSpeak speaks 20 s in about 20 ms, so the first frames are not held back. Each part carries
its phonemes (:class:`engine.render.SpokenAudio`), so the lips meet on p, b and m.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import chain

import numpy as np

from .characters import Character, ensure_library
from .render import RenderConfig, RenderResult, SpokenAudio, render_stream
from .speech import Speech, VoiceSettings, speak_sentences

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 10_000
MIN_PART_SECONDS = 20.0


def _parts(speeches: Iterable[Speech], min_seconds: float = MIN_PART_SECONDS) -> Iterator[SpokenAudio]:
    """Join consecutive sentences until each part lasts at least ``min_seconds``; each part
    keeps its phonemes, timed from its own start, for the mouth to follow."""
    buffer: list[np.ndarray] = []
    phonemes: list[tuple[float, str]] = []
    seconds = 0.0
    for speech in speeches:
        buffer.append(speech.audio)
        phonemes += [(seconds + time_s, name) for time_s, name in speech.phonemes()]
        seconds += speech.duration
        if seconds >= min_seconds:
            yield SpokenAudio(np.concatenate(buffer), tuple(phonemes))
            buffer, phonemes, seconds = [], [], 0.0
    if buffer:
        yield SpokenAudio(np.concatenate(buffer), tuple(phonemes))


def say(
    character: Character,
    text: str,
    out_path: str | os.PathLike,
    *,
    language: str | None = None,
    video_note: bool = False,
    voice: VoiceSettings | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    size: int | None = None,
    config: RenderConfig = RenderConfig(),
    progress: Callable[[int], None] | None = None,
) -> RenderResult:
    """Render ``character`` saying ``text`` (in ``language``, default the character's own).

    ``voice`` overrides the character's own voice for ``language``.

    Raises
    ------
    GramophoneError
        Empty or too long text, an unknown language or voice, a broken character, a video note
        over 60 s; nothing is left half-written.
    """
    voice = voice or character.voice_for(language)
    speeches = speak_sentences(text, voice, max_chars)  # checks the text and voice before anything is built
    library = ensure_library(character)
    first = next(speeches)
    return render_stream(
        library,
        _parts(chain([first], speeches)),
        first.sample_rate,
        out_path,
        config=config,
        size=size,
        video_note=video_note,
        progress=progress,
    )
