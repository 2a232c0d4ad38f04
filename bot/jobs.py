"""What a worker does with one render job: engine calls only, no Telegram, no state database.

A job is a plain dict, self-contained so that a worker on another machine needs nothing but the
character libraries: the request id (for logs), the character id, the language, the kind, the
audio bytes of a voice note (downloaded by the bot) or the text to speak, and how the answer
will be sent. The result is a plain dict too, carrying the mp4 bytes back through the queue's
result store. Plain dicts rather than classes so that a bot and workers of slightly different
versions still understand each other through pickle.

Errors a user or an admin can fix (unreadable audio, a character that vanished) come back as
``{"ok": False, ...}`` and are not retried: rendering them again would fail again. Anything else
raises, and the dispatcher retries the request on another attempt: that includes
:class:`engine.errors.StorageError` (a full disk while ffmpeg wrote), which is an ``OSError``,
never "your audio is unreadable".
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from engine.characters import Catalogue, Character, ensure_library
from engine.errors import GramophoneError, InputError, MediaError
from engine.library import Library, open_library
from engine.render import VIDEO_NOTE_MAX_SIDE

from .payloads import RenderJob, RenderOutcome

log = logging.getLogger(__name__)

VOICE_KINDS = ("voice", "recorded")  # recorded: a part of a story an admin recorded
TEXT_KINDS = ("text", "story", "greeting", "preview")


def make_job(
    *,
    request_id: int,
    character: str,
    language: str,
    kind: str,
    audio: bytes | None = None,
    max_audio_s: float = 300.0,
    text: str | None = None,
    pitch: float = 0.0,
    video_note: bool = True,
    video_note_max_s: float = 60.0,
    max_chars: int = 10_000,
) -> RenderJob:
    """A job dict, checked here so that a malformed one fails in the bot, not in a worker."""
    if kind in VOICE_KINDS and not audio:
        raise ValueError("a voice job needs the audio bytes")
    if kind in TEXT_KINDS and not (text and text.strip()):
        raise ValueError(f"a {kind} job needs text")
    if kind not in VOICE_KINDS + TEXT_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    return {
        "version": 1,
        "request_id": request_id,
        "character": character,
        "language": language,
        "kind": kind,
        "audio": audio,
        "max_audio_s": float(max_audio_s),
        "text": text,
        "pitch": float(pitch),
        "video_note": bool(video_note),
        "video_note_max_s": float(video_note_max_s),
        "max_chars": int(max_chars),
    }


class CharacterCache:
    """The catalogue a worker renders from, reloaded when asked for an id it does not know
    (an admin may add a character while workers run)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self._catalogue: Catalogue | None = None

    def get(self, identifier: str) -> Character:
        if self._catalogue is None:
            self._catalogue = Catalogue(*self.roots)
        elif identifier not in self._catalogue.characters:
            self._catalogue.reload()
        return self._catalogue.get(identifier)

    def all(self) -> list[Character]:
        if self._catalogue is None:
            self._catalogue = Catalogue(*self.roots)
        return self._catalogue.list()


def run_job(job: RenderJob, characters: CharacterCache) -> RenderOutcome:
    """Render one job; returns the result dict (see the module docstring)."""
    started = time.perf_counter()
    label = f"request {job.get('request_id')} ({job.get('kind')})"
    try:
        character = characters.get(job["character"])
        with (
            open_library(ensure_library(character)) as library,
            tempfile.TemporaryDirectory(prefix="gramophone-job-") as scratch,
        ):
            out = Path(scratch) / "answer.mp4"
            if job["kind"] in VOICE_KINDS:
                duration, size = _render_voice(job, character, library, Path(scratch), out)
            else:
                duration, size = _render_text(job, character, library, Path(scratch), out)
            data = out.read_bytes()
    except GramophoneError as error:
        log.warning("%s: cannot render: %s", label, error)
        return {
            "ok": False,
            "error": str(error),
            "error_kind": type(error).__name__,
            "user_error": isinstance(error, (InputError, MediaError)),
        }
    seconds = time.perf_counter() - started
    video_note = (
        job["video_note"] and duration <= job["video_note_max_s"] + 1e-6 and size <= VIDEO_NOTE_MAX_SIDE
    )
    log.info("%s: %.1f s of video, %d px, in %.1f s", label, duration, size, seconds)
    return {
        "ok": True,
        "mp4": data,
        "duration_s": duration,
        "size": size,
        "video_note": video_note,
        "seconds": seconds,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def _note_size(library_size: int, duration: float, job: RenderJob) -> int | None:
    """Output side: the library's, capped at VIDEO_NOTE_MAX_SIDE (512 px) when the answer will be a
    video note."""
    if job["video_note"] and duration <= job["video_note_max_s"] and library_size > VIDEO_NOTE_MAX_SIDE:
        return VIDEO_NOTE_MAX_SIDE
    return None


def _render_voice(
    job: RenderJob, character: Character, library: Library, scratch: Path, out: Path
) -> tuple[float, int]:
    """The child's own voice, pitch-shifted into the character's, lip-synced."""
    from engine.effects import shift_pitch
    from engine.errors import MediaError
    from engine.media import DECODE_MARGIN_S, probe, sniff_container
    from engine.render import render

    # The bot checked this file, and the worker checks again: the container from the bytes, one
    # demuxer, local files only, decoding cut at the limit (a worker may serve another bot version).
    audio = job["audio"]
    assert audio is not None, "make_job checks a voice job has its audio"
    container = sniff_container(audio[:64])
    if container is None:
        raise MediaError("the voice note is not in an audio container we accept")
    source = scratch / f"input.{container}"
    source.write_bytes(audio)
    max_s = float(job.get("max_audio_s", 300.0)) + DECODE_MARGIN_S
    voiced = shift_pitch(source, scratch / "voice.wav", job["pitch"], container=container, max_seconds=max_s)
    duration = probe(voiced).duration or 0.0  # our own WAV: its header is true
    size = _note_size(library.size, duration, job)
    result = render(library, voiced, out, size=size)
    return result.duration_s, result.size


def _render_text(
    job: RenderJob, character: Character, library: Library, scratch: Path, out: Path
) -> tuple[float, int]:
    """Text spoken in the character's voice and lip-synced (``engine.say``: speech streamed into
    the render)."""
    from engine.say import say

    # The answer's length is known only once spoken; keep it small enough for a video note if it may be one.
    size = VIDEO_NOTE_MAX_SIDE if job["video_note"] and library.size > VIDEO_NOTE_MAX_SIDE else None
    text = job["text"]
    assert text is not None, "make_job checks a text job has its text"
    result = say(character, text, out, language=job["language"], max_chars=job["max_chars"], size=size)
    return result.duration_s, result.size
