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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import soxr

from . import features as feat
from .errors import InputError
from .library import Library, open_library
from .media import ANALYSIS_SAMPLE_RATE, EncodeSettings, VideoEncoder, read_audio
from .morph import Morph, MorphSettings, MorphWorkspace, to_i420
from .planner import Piece, PlannerSettings, plan
from .visemes import opening_track

log = logging.getLogger(__name__)

VIDEO_NOTE_MAX_SECONDS = 60.0
VIDEO_NOTE_MAX_SIDE = 512
"""Side of a round video note. The Bot API documents no limit, but a ``length`` of 640 or more is
refused ("Bad Request: wrong video note length": pyTelegramBotAPI pull 338, TelegramBotPHP issue
77; 639 works), and Telegram's own apps record notes at 384 (Android) and 400 px (iOS; Nekogram
issue 317). 512 is our libraries' size, well inside what is accepted, and even (H.264)."""


@dataclass(frozen=True)
class RenderConfig:
    """Every parameter of a render, with working defaults (see each part's own settings)."""

    planner: PlannerSettings = field(default_factory=PlannerSettings)
    morph: MorphSettings = field(default_factory=MorphSettings)
    vad: feat.VadSettings = field(default_factory=feat.VadSettings)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    frame_cache: int = 16


@dataclass(frozen=True)
class SpokenAudio:
    """A part of synthesised speech whose sounds are known, for :func:`render_stream`: the mouth
    is then shaped by the phonemes (:mod:`engine.visemes`), not only by the sound."""

    samples: np.ndarray
    phonemes: tuple[tuple[float, str], ...] = ()  # (seconds from the part's start, IPA phoneme)


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

    @classmethod
    def of(
        cls, path: str | os.PathLike, duration_s: float, size: int, started: float, timeline: Timeline
    ) -> RenderResult:
        """The result of a render that began at ``started`` (a ``perf_counter`` reading)."""
        return cls(
            path=Path(path),
            duration_s=duration_s,
            frames=timeline.n_frames,
            size=size,
            joins=len(timeline.transitions),
            morph_frames=int(timeline.morph_mask().sum()),
            idle_frames=int(timeline.idle_mask().sum()),
            seconds=time.perf_counter() - started,
            timeline=timeline,
        )


@contextmanager
def _opened(character: Library | str | os.PathLike) -> Iterator[Library]:
    """The library itself, or the library at a path, opened for this render and closed after."""
    if isinstance(character, Library):
        yield character
    else:
        with open_library(character) as library:
            yield library


def make_timeline(
    library: Library, pieces: list[Piece], morph: MorphSettings, previous_frame: int | None = None
) -> Timeline:
    """Lay the planned pieces on the output frames and place a morph at every join.

    A join is a boundary where playback does not simply continue the recording. A morph between
    two pieces takes frames from both sides of its boundary, except that the morph into a pause lies
    wholly inside the pause (measured: the first frames of pauses then stay closed). It never takes all of a
    piece, so every piece shows at
    least one real frame that the morphs on either side start from or arrive at.

    With ``previous_frame`` (the library frame shown just before, in a streamed render), a first
    piece that does not continue it opens with a morph from that frame; such a transition has
    ``a_out == -1``: its start is the frame already shown.
    """
    n_frames = pieces[-1].out_end if pieces else 0
    frame_source = np.empty(n_frames, dtype=np.int64)
    for piece in pieces:
        offsets = np.arange(piece.length)
        frame_source[piece.out_start : piece.out_end] = np.minimum(
            piece.lib_start + offsets, library.source_end[piece.lib_start] - 1
        )
    is_join = [False] + [
        pieces[i].lib_start != pieces[i - 1].lib_start + pieces[i - 1].length
        or pieces[i - 1].lib_start + pieces[i - 1].length > library.source_end[pieces[i - 1].lib_start]
        for i in range(1, len(pieces))
    ]
    thumbs = library.thumbnails
    consumed_at_start = [0] * len(pieces)
    transitions: list[Transition] = []
    if previous_frame is not None and pieces and pieces[0].lib_start != previous_frame + 1:
        first = pieces[0]
        distance = float(
            np.abs(thumbs[previous_frame].astype(np.int16) - thumbs[frame_source[0]].astype(np.int16)).mean()
        )
        room = (first.length - 1) // 2 if len(pieces) > 1 and is_join[1] else first.length - 1
        take = min(morph.inbetweens(distance), room)
        consumed_at_start[0] = take
        if take:
            transitions.append(Transition(0, take, -1, take))
    for i in range(1, len(pieces)):
        if not is_join[i]:
            continue
        before, after = pieces[i - 1], pieces[i]
        last_a, first_b = frame_source[before.out_end - 1], frame_source[after.out_start]
        distance = float(np.abs(thumbs[last_a].astype(np.int16) - thumbs[first_b].astype(np.int16)).mean())
        between = morph.inbetweens(distance)  # synthesised frames; the recorded end frames stay
        room_before = before.length - 1 - consumed_at_start[i - 1]
        next_is_join = i + 1 < len(pieces) and is_join[i + 1]
        room_after = (after.length - 1) // 2 if next_is_join else after.length - 1
        if after.idle and not before.idle:
            # Into a pause: morph inside the silence (after the voice activity hangover, so from a
            # mouth already closing), never over the pause's first, silent frames.
            take_before, take_after = 0, min(between, room_after)
        else:
            take_before = min(between // 2, room_before)
            take_after = min(between - take_before, room_after)
            take_before = min(between - take_after, room_before)
        consumed_at_start[i] = take_after
        if take_before + take_after == 0:
            continue
        start = after.out_start - take_before
        transitions.append(
            Transition(start, take_before + take_after, start - 1, after.out_start + take_after)
        )
    return Timeline(pieces, frame_source, transitions)


class _FrameCache:
    """The last few decoded library frames, as I420 (the encoder's and the morph's format).

    Morph end points are frames shown right beside the morph, so they come from here.
    """

    def __init__(self, library: Library, capacity: int) -> None:
        self.library = library
        self.capacity = max(2, capacity)
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, index: int) -> np.ndarray:
        frame = self._frames.get(index)
        if frame is None:
            frame = to_i420(self.library.frame(index))
            self._frames[index] = frame
            if len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(index)
        return frame


def render_frames(
    library: Library,
    timeline: Timeline,
    config: RenderConfig = RenderConfig(),
    previous_image: np.ndarray | None = None,
    *,
    previous_frame: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield every output frame of ``timeline`` in order, at library size, as planar I420.

    I420 ``(h * 3 / 2, w)`` is the encoder's own format and the morph's (see
    :mod:`engine.morph`), so each frame is converted once, when it is decoded.
    ``previous_image`` is the frame shown just before (a transition with ``a_out == -1`` starts
    from it), BGR or I420; ``previous_frame`` its library frame, when known.
    """
    cache = _FrameCache(library, config.frame_cache)
    workspace = MorphWorkspace(library.size, library.size)
    faces = library.mouth_anchors if config.morph.face_guided else None
    transitions = iter(timeline.transitions)
    upcoming = next(transitions, None)
    out = 0
    while out < timeline.n_frames:
        if upcoming is not None and upcoming.start == out:
            end_frame = int(timeline.frame_source[upcoming.b_out])
            if upcoming.a_out < 0:
                assert previous_image is not None, "a transition from the previous frame needs previous_image"
                start_image, start_frame = previous_image, previous_frame
            else:
                start_frame = int(timeline.frame_source[upcoming.a_out])
                start_image = cache.get(start_frame)
            morph = Morph(
                start_image,
                cache.get(end_frame),
                config.morph,
                workspace,
                faces=_faces(faces, start_frame, end_frame),
            )
            for k in range(upcoming.count):
                yield morph.frame_i420((k + 1) / (upcoming.count + 1))
            out += upcoming.count
            upcoming = next(transitions, None)
        else:
            yield cache.get(int(timeline.frame_source[out]))
            out += 1


def _faces(anchors: np.ndarray | None, a: int | None, b: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The face landmarks of library frames ``a`` and ``b``, when both were measured."""
    if anchors is None or a is None:
        return None
    pair = (anchors[a], anchors[b])
    return pair if all(np.isfinite(points).all() for points in pair) else None


def plan_audio(
    library: Library,
    audio: np.ndarray,
    sample_rate: int = ANALYSIS_SAMPLE_RATE,
    *,
    config: RenderConfig = RenderConfig(),
    n_frames: int | None = None,
    previous_frame: int | None = None,
    phonemes: tuple[tuple[float, str], ...] = (),
) -> Timeline:
    """Analyse ``audio`` and lay out the whole output: the plan without any pixels.

    ``phonemes`` ((seconds from the first frame, IPA), as :class:`SpokenAudio` has them) are
    the sounds of synthesised speech, when known."""
    n_frames = n_frames or feat.frame_count(len(audio), sample_rate)
    analysis = feat.analyse(audio, sample_rate, n_frames, config.vad)
    if phonemes:
        analysis = replace(analysis, spoken=opening_track(phonemes, n_frames))
    pieces = plan(library, analysis, config.planner, previous_frame)
    return make_timeline(library, pieces, config.morph, previous_frame)


def _shifted(timeline: Timeline, offset: int) -> Timeline:
    pieces = [Piece(p.out_start + offset, p.length, p.lib_start, p.idle) for p in timeline.pieces]
    transitions = [
        Transition(t.start + offset, t.count, t.a_out + offset, t.b_out + offset)
        for t in timeline.transitions
    ]
    return Timeline(pieces, timeline.frame_source, transitions)


def _joined(timelines: list[Timeline]) -> Timeline:
    pieces: list[Piece] = []
    transitions: list[Transition] = []
    offset = 0
    for timeline in timelines:
        shifted = _shifted(timeline, offset)
        pieces += shifted.pieces
        transitions += shifted.transitions
        offset += timeline.n_frames
    sources = [t.frame_source for t in timelines] or [np.zeros(0, np.int64)]
    return Timeline(pieces, np.concatenate(sources), transitions)


def _output_size(library: Library, size: int | None, video_note: bool) -> int:
    if size is None:
        size = min(library.size, VIDEO_NOTE_MAX_SIDE) if video_note else library.size
    if size < 16 or size % 2:
        raise InputError(f"size {size}: must be an even number of pixels, at least 16")
    if video_note and size > VIDEO_NOTE_MAX_SIDE:
        raise InputError(f"size {size}: a video note is at most {VIDEO_NOTE_MAX_SIDE} pixels wide")
    return size


def _write_frames(
    encoder: VideoEncoder, frames: Iterator[np.ndarray], progress: Callable[[int], None] | None
) -> np.ndarray | None:
    """Scale and encode ``frames``; returns the last frame at library size (for what follows)."""
    last = None
    for frame in frames:
        last = frame
        if frame.shape[1] != encoder.size:
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
            interpolation = cv2.INTER_AREA if encoder.size < frame.shape[1] else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (encoder.size, encoder.size), interpolation=interpolation)
        encoder.write(frame)
        if progress:
            progress(1)
    return last


def render(
    character: Library | str | os.PathLike,
    audio_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
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
        Side of the square output; default: the library's (at most 512 for a video note).
    video_note
        A Telegram round video note: square, side at most 512, at most 60 s of audio.
    progress
        Called with the number of frames just written, for a progress bar.

    Raises
    ------
    GramophoneError
        Unreadable or empty audio, an unreadable library, an unwritable output, a video note
        over 60 s; the message says which.
    """
    started = time.perf_counter()
    with _opened(character) as library:
        size = _output_size(library, size, video_note)
        audio = read_audio(audio_path)
        duration = len(audio) / ANALYSIS_SAMPLE_RATE
        if len(audio) < ANALYSIS_SAMPLE_RATE // feat.FPS:
            raise InputError(f"{audio_path}: the audio is empty")
        if video_note and duration > VIDEO_NOTE_MAX_SECONDS + 0.5 / feat.FPS:
            raise InputError(
                f"{audio_path}: {duration:.1f} s is too long for a video note (at most "
                f"{VIDEO_NOTE_MAX_SECONDS:.0f} s)"
            )
        timeline = plan_audio(library, audio, ANALYSIS_SAMPLE_RATE, config=config)
        with VideoEncoder(out_path, size=size, audio_path=audio_path, settings=config.encode) as encoder:
            _write_frames(encoder, render_frames(library, timeline, config), progress)
    result = RenderResult.of(out_path, duration, size, started, timeline)
    log.info(
        "rendered %s: %.1f s, %d frames, %d joins, %.1fx real time",
        out_path,
        duration,
        result.frames,
        result.joins,
        duration / max(result.seconds, 1e-9),
    )
    return result


def render_stream(
    character: Library | str | os.PathLike,
    parts: Iterable[np.ndarray | SpokenAudio],
    sample_rate: int,
    out_path: str | os.PathLike,
    *,
    config: RenderConfig = RenderConfig(),
    size: int | None = None,
    video_note: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RenderResult:
    """Render audio that arrives in parts (speech synthesised sentence by sentence).

    Each part is planned and rendered as soon as it arrives, continuing from the frame shown last,
    and its samples are streamed to the encoder beside the frames, so a long story is being
    encoded before the rest of it is spoken. Give parts of a few seconds: features are normalised
    per part. A :class:`SpokenAudio` part brings its phonemes.

    Raises
    ------
    GramophoneError
        No audio at all, more than 60 s of it for a video note, an unreadable library or an
        unwritable output; nothing is left behind.
    """
    started = time.perf_counter()
    timelines: list[Timeline] = []
    total_samples = 0
    max_seconds = VIDEO_NOTE_MAX_SECONDS if video_note else None
    with _opened(character) as library:
        size = _output_size(library, size, video_note)
        with VideoEncoder(out_path, size=size, settings=config.encode, audio_rate=sample_rate) as encoder:
            previous_frame: int | None = None
            previous_image: np.ndarray | None = None
            frames_done = 0
            for given in parts:
                spoken = given if isinstance(given, SpokenAudio) else SpokenAudio(given)
                part = np.asarray(spoken.samples, dtype=np.float32)
                if not len(part):
                    continue
                # The part's first output frame is not exactly its first sample: phoneme times
                # are moved onto the frames this part is planned on.
                shift = frames_done / feat.FPS - total_samples / sample_rate
                phonemes = tuple((time_s - shift, name) for time_s, name in spoken.phonemes)
                total_samples += len(part)
                if max_seconds is not None and total_samples / sample_rate > max_seconds + 0.5 / feat.FPS:
                    raise InputError(
                        f"the speech is too long for a video note (more than {max_seconds:.0f} s)"
                    )
                encoder.write_audio(part)
                n_frames = feat.frame_count(total_samples, sample_rate) - frames_done
                if n_frames <= 0:
                    continue
                analysis_audio = (
                    soxr.resample(part, sample_rate, ANALYSIS_SAMPLE_RATE)
                    if sample_rate != ANALYSIS_SAMPLE_RATE
                    else part
                )
                timeline = plan_audio(
                    library,
                    analysis_audio,
                    ANALYSIS_SAMPLE_RATE,
                    config=config,
                    n_frames=n_frames,
                    previous_frame=previous_frame,
                    phonemes=phonemes,
                )
                last = _write_frames(
                    encoder,
                    render_frames(library, timeline, config, previous_image, previous_frame=previous_frame),
                    progress,
                )
                # A part always ends on a real library frame: morphs never take a piece's last frame.
                previous_image = None if last is None else last.copy()
                previous_frame = int(timeline.frame_source[-1])
                frames_done += timeline.n_frames
                timelines.append(timeline)
            if not total_samples:
                raise InputError("the speech is empty")
    result = RenderResult.of(out_path, total_samples / sample_rate, size, started, _joined(timelines))
    log.info(
        "rendered %s from %d parts: %.1f s, %d frames",
        out_path,
        len(timelines),
        result.duration_s,
        result.frames,
    )
    return result
