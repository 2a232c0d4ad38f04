"""The shapes of what travels through the queues: jobs to the workers, outcomes back.

They stay plain dicts on the wire, so that a bot and workers of slightly different versions
still understand each other through pickle; these TypedDicts are the one place their keys are
written down, for readers and for mypy. ``version`` grows when a key changes meaning.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class RenderJob(TypedDict):
    """One answer to render (:func:`bot.jobs.make_job` builds it, :func:`bot.jobs.run_job` runs it)."""

    version: int
    request_id: int
    character: str
    language: str
    kind: str  # bot.jobs.VOICE_KINDS or TEXT_KINDS
    audio: bytes | None  # a voice note's or a recorded story part's bytes
    max_audio_s: float
    text: str | None
    pitch: float
    video_note: bool
    video_note_max_s: float
    max_chars: int


class RenderOutcome(TypedDict):
    """What a render worker sends back: ``ok`` with the video, or not with the reason."""

    ok: bool
    mp4: NotRequired[bytes]
    duration_s: NotRequired[float]
    size: NotRequired[int]
    video_note: NotRequired[bool]
    seconds: NotRequired[float]
    worker: NotRequired[str]
    error: NotRequired[str]
    error_kind: NotRequired[str]
    user_error: NotRequired[bool]
    """The input itself cannot be rendered (unreadable audio, a vanished character): retrying
    cannot help, and the chat is told its file is the problem."""


class MakeJobPayload(TypedDict):
    """One character to make (:func:`bot.make_jobs.make_make_job`, :func:`bot.make_jobs.run_make_job`)."""

    version: int
    job_id: int
    character_id: str
    name: str
    language: str
    voice: dict[str, Any]  # engine.speech.VoiceSettings fields
    picture: bytes
    picture_suffix: str
    description: str
    pitch_semitones: float
    mouth: tuple[float, float] | None
    eyes: tuple[tuple[float, float], tuple[float, float]] | None
    mouth_width: float | None
    open_mouth: tuple[tuple[float, float], tuple[float, float]] | None  # top, bottom of an open mouth
    takes: list[bytes] | None  # a person's recorded parts
    idle_take: bytes | None  # and their silent take
    route: str  # "cpu" or "gpu"
    size: int


class MakeOutcome(TypedDict):
    """What a maker sends back: ``ok`` with the character (as tar bytes, or in parts), or not."""

    ok: bool
    tar: NotRequired[bytes]
    parts: NotRequired[int]
    bytes: NotRequired[int]
    path_used: NotRequired[str]
    seconds: NotRequired[float]
    info: NotRequired[str]
    worker: NotRequired[str]
    error: NotRequired[str]
    error_kind: NotRequired[str]
    cancelled: NotRequired[bool]
    """Stopped because an admin cancelled it (not a failure)."""
