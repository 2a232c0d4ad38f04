"""Audio -> planned frames -> encoder. The only module that wires the engine's stages together.

A render is three steps: analyse the audio on the video grid (:mod:`engine.features`), plan which
library frames play when (:mod:`engine.planner`), then stream frames, decoded from the library or
morphed at joins (:mod:`engine.morph`), into the encoder (:mod:`engine.media`). Frames are
produced one at a time, so memory does not grow with the length of the audio.

Morphs never shift timing: a join's morph replaces frames on both sides of the boundary (the end
of A and the start of B), so the output has exactly one frame per 1/25 s of audio.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from . import features as feat
from .errors import InputError
from .library import Library, open_library
from .media import ANALYSIS_SAMPLE_RATE, EncodeSettings, VideoEncoder, read_audio
from .morph import Morph, MorphSettings
from .planner import Piece, PlannerSettings, plan

log = logging.getLogger(__name__)

VIDEO_NOTE_MAX_SECONDS = 60.0
VIDEO_NOTE_MAX_SIDE = 640


@dataclass(frozen=True)
class RenderConfig:
    """Every parameter of a render, with working defaults (see each part's own settings)."""

    planner: PlannerSettings = field(default_factory=PlannerSettings)
    morph: MorphSettings = field(default_factory=MorphSettings)
    vad: feat.VadSettings = field(default_factory=feat.VadSettings)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    frame_cache: int = 16


@dataclass(frozen=True)
class Transition:
    """A morph over output frames ``start .. start + count`` between two shown frames."""

    start: int
    count: int
    a_out: int  # output frame (a real library frame) the morph starts from
    b_out: int  # output frame (a real library frame) the morph arrives at


@dataclass(frozen=True)
class Timeline:
    """What plays on every output frame: a library frame, unless a transition covers it."""

    pieces: list[Piece]
    frame_source: np.ndarray  # (n_frames,) library frame index per output frame
    transitions: list[Transition]

    @property
    def n_frames(self) -> int:
        return len(self.frame_source)

    def morph_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_frames, dtype=bool)
        for transition in self.transitions:
            mask[transition.start : transition.start + transition.count] = True
        return mask

    def idle_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_frames, dtype=bool)
        for piece in self.pieces:
            mask[piece.out_start : piece.out_end] = piece.idle
        return mask


@dataclass(frozen=True)
class RenderResult:
    """What a render produced, with the figures a caller may want to log."""

    path: Path
    duration_s: float
    frames: int
    size: int
    joins: int
    morph_frames: int
    idle_frames: int
    seconds: float
    timeline: Timeline = field(repr=False)


def make_timeline(library: Library, pieces: list[Piece], morph: MorphSettings) -> Timeline:
    """Lay the planned pieces on the output frames and place a morph at every join.

    A join is a boundary where playback does not simply continue the recording. Each morph takes
    frames from both sides of its boundary; it never takes all of a piece, so every piece shows at
    least one real frame that the morphs on either side start from or arrive at.
    """
    n_frames = pieces[-1].out_end if pieces else 0
    frame_source = np.empty(n_frames, dtype=np.int64)
    for piece in pieces:
        offsets = np.arange(piece.length)
        frame_source[piece.out_start : piece.out_end] = np.minimum(piece.lib_start + offsets, library.source_end[piece.lib_start] - 1)
    is_join = [False] + [
        pieces[i].lib_start != pieces[i - 1].lib_start + pieces[i - 1].length
        or pieces[i - 1].lib_start + pieces[i - 1].length > library.source_end[pieces[i - 1].lib_start]
        for i in range(1, len(pieces))
    ]
    thumbs = library.thumbnails
    consumed_at_start = [0] * len(pieces)
    transitions: list[Transition] = []
    for i in range(1, len(pieces)):
        if not is_join[i]:
            continue
        before, after = pieces[i - 1], pieces[i]
        last_a, first_b = frame_source[before.out_end - 1], frame_source[after.out_start]
        distance = float(np.abs(thumbs[last_a].astype(np.int16) - thumbs[first_b].astype(np.int16)).mean())
        length = morph.length(distance)
        room_before = before.length - 1 - consumed_at_start[i - 1]
        next_is_join = i + 1 < len(pieces) and is_join[i + 1]
        room_after = (after.length - 1) // 2 if next_is_join else after.length - 1
        take_before = min(length // 2, room_before)
        take_after = min(length - take_before, room_after)
        take_before = min(length - take_after, room_before)
        consumed_at_start[i] = take_after
        if take_before + take_after == 0:
            continue
        start = after.out_start - take_before
        transitions.append(Transition(start, take_before + take_after, start - 1, after.out_start + take_after))
    return Timeline(pieces, frame_source, transitions)


class _FrameCache:
    """The last few decoded library frames: morph end points are frames shown right beside them."""

    def __init__(self, library: Library, capacity: int) -> None:
        self.library = library
        self.capacity = max(2, capacity)
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, index: int) -> np.ndarray:
        frame = self._frames.get(index)
        if frame is None:
            frame = self.library.frame(index)
            self._frames[index] = frame
            if len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(index)
        return frame


def render_frames(library: Library, timeline: Timeline, config: RenderConfig = RenderConfig()) -> Iterator[np.ndarray]:
    """Yield every output frame of ``timeline`` in order (library size, BGR uint8)."""
    cache = _FrameCache(library, config.frame_cache)
    transitions = iter(timeline.transitions)
    upcoming = next(transitions, None)
    out = 0
    while out < timeline.n_frames:
        if upcoming is not None and upcoming.start == out:
            morph = Morph(cache.get(int(timeline.frame_source[upcoming.a_out])), cache.get(int(timeline.frame_source[upcoming.b_out])), config.morph)
            for k in range(upcoming.count):
                yield morph.frame((k + 1) / (upcoming.count + 1))
            out += upcoming.count
            upcoming = next(transitions, None)
        else:
            yield cache.get(int(timeline.frame_source[out]))
            out += 1


def plan_audio(library: Library, audio: np.ndarray, sample_rate: int = ANALYSIS_SAMPLE_RATE, config: RenderConfig = RenderConfig()) -> Timeline:
    """Analyse ``audio`` and lay out the whole output: the plan without any pixels."""
    n_frames = feat.frame_count(len(audio), sample_rate)
    analysis = feat.analyse(audio, sample_rate, n_frames, config.vad)
    pieces = plan(library, analysis, config.planner)
    return make_timeline(library, pieces, config.morph)


def render(
    character: Library | str | os.PathLike,
    audio_path: str | os.PathLike,
    out_path: str | os.PathLike,
    config: RenderConfig = RenderConfig(),
    size: int | None = None,
    video_note: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RenderResult:
    """Render ``character`` saying ``audio_path`` to an H.264 + AAC mp4 at 25 fps.

    Parameters
    ----------
    character
        A character library, or the path of one.
    audio_path
        Any audio (or video with audio) ffmpeg reads: OGG/Opus voice notes, wav, mp3, m4a.
    out_path
        The mp4 to write; written atomically, nothing is left behind on failure.
    size
        Side of the square output; default: the library's (at most 640 for a video note).
    video_note
        A Telegram round video note: square, side at most 640, at most 60 s of audio.
    progress
        Called with the number of frames just written, for a progress bar.

    Raises
    ------
    GramophoneError
        Unreadable or empty audio, an unreadable library, an unwritable output, a video note
        over 60 s; the message says which.
    """
    started = time.perf_counter()
    library = character if isinstance(character, Library) else open_library(character)
    try:
        if size is None:
            size = min(library.size, VIDEO_NOTE_MAX_SIDE) if video_note else library.size
        if size < 16 or size % 2:
            raise InputError(f"size {size}: must be an even number of pixels, at least 16")
        if video_note and size > VIDEO_NOTE_MAX_SIDE:
            raise InputError(f"size {size}: a video note is at most {VIDEO_NOTE_MAX_SIDE} pixels wide")
        audio = read_audio(audio_path)
        duration = len(audio) / ANALYSIS_SAMPLE_RATE
        if len(audio) < ANALYSIS_SAMPLE_RATE // feat.FPS:
            raise InputError(f"{audio_path}: the audio is empty")
        if video_note and duration > VIDEO_NOTE_MAX_SECONDS + 0.5 / feat.FPS:
            raise InputError(f"{audio_path}: {duration:.1f} s is too long for a video note (at most {VIDEO_NOTE_MAX_SECONDS:.0f} s)")
        timeline = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, config)
        with VideoEncoder(out_path, size=size, audio_path=audio_path, settings=config.encode) as encoder:
            for frame in render_frames(library, timeline, config):
                if frame.shape[0] != size:
                    interpolation = cv2.INTER_AREA if size < frame.shape[0] else cv2.INTER_LINEAR
                    frame = cv2.resize(frame, (size, size), interpolation=interpolation)
                encoder.write(frame)
                if progress:
                    progress(1)
    finally:
        if not isinstance(character, Library):
            library.close()
    result = RenderResult(
        path=Path(out_path),
        duration_s=duration,
        frames=timeline.n_frames,
        size=size,
        joins=len(timeline.transitions),
        morph_frames=int(timeline.morph_mask().sum()),
        idle_frames=int(timeline.idle_mask().sum()),
        seconds=time.perf_counter() - started,
        timeline=timeline,
    )
    log.info(
        "rendered %s: %.1f s, %d frames, %d joins, %.1fx real time",
        out_path, duration, result.frames, result.joins, duration / max(result.seconds, 1e-9),
    )
    return result
