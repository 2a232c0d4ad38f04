"""Video (plus an optional idle video) -> character library.

One pass over each video: ffmpeg decodes, converts to 25 fps, crops and scales; we JPEG-encode
each frame straight into the library and keep a 64x64 grey thumbnail. The audio is analysed on
the same frame grid (:mod:`engine.features`), cut into overlapping segments, and the idle
library is chosen: the idle video when there is one, else the speech video's pauses, else (a
speech video without a single pause) its quietest, stillest segments.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from . import features as feat
from . import landmarks
from .errors import InputError, MediaError
from .framing import face_crop
from .library import IDLE_SOURCE, SPEECH_SOURCE, THUMB_SIZE, LibraryInfo, LibraryWriter, open_library
from .media import ANALYSIS_SAMPLE_RATE, Crop, iter_frames, probe, read_audio
from .mouth import MouthMeter, fit_mouth_model

log = logging.getLogger(__name__)

MIN_SPEECH_SECONDS = 2.0
"""A speech video shorter than this gives too few segments to say anything with."""

MIN_IDLE_SEGMENTS = 3

Progress = Callable[[int], None]
"""Called with the number of frames just processed (a tqdm ``update`` fits)."""


@dataclass(frozen=True)
class BuildSettings:
    """How a library is built. Stored in the library, shown by ``gramophone info``."""

    size: int = 512
    crop: Crop | str = "face"
    """``"face"``: a square around the face found in the first seconds (:mod:`engine.framing`);
    ``"centre"``: the centred square (drawn characters, made characters); or a :class:`Crop`."""
    jpeg_quality: int = 85
    embedding_dims: int = 24
    vad: feat.VadSettings = feat.VadSettings()
    mouth_landmarks: bool = True
    """Measure mouths with the landmark model when it is installed (else from pixels)."""

    def __post_init__(self) -> None:
        if isinstance(self.crop, str) and self.crop not in ("face", "centre"):
            raise InputError(f"crop {self.crop!r}: use 'face', 'centre' or x,y,w,h")

    def as_meta(self) -> dict:
        crop = self.crop
        return {
            "size": self.size,
            "crop": f"{crop.x},{crop.y},{crop.side},{crop.side}" if isinstance(crop, Crop) else crop,
            "jpeg_quality": self.jpeg_quality,
            "embedding_dims": self.embedding_dims,
            **{f"vad_{key}": value for key, value in dataclasses.asdict(self.vad).items()},
        }


def _encode_frames(
    frames: Iterator[np.ndarray],
    quality: int,
    thumbs: list[np.ndarray],
    meter: MouthMeter,
    progress: Progress | None,
) -> Iterator[bytes]:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for frame in frames:
        meter.add(frame)
        ok, jpeg = cv2.imencode(".jpg", frame, params)
        if not ok:
            raise MediaError("JPEG encoding failed")
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        thumbs.append(cv2.resize(grey, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA))
        if progress:
            progress(1)
        yield jpeg.tobytes()


def _store_video(
    writer: LibraryWriter,
    source: int,
    path: Path,
    settings: BuildSettings,
    crop: Crop | None,
    thumbs: list[np.ndarray],
    meter: MouthMeter,
    progress: Progress | None,
) -> int:
    """Decode ``path`` into the library in chunks; returns how many frames it added."""
    frames = iter_frames(path, settings.size, feat.FPS, crop)
    meter.new_source()
    encoded = _encode_frames(frames, settings.jpeg_quality, thumbs, meter, progress)
    added = 0
    while True:
        chunk = [jpeg for _, jpeg in zip(range(256), encoded)]
        if not chunk:
            return added
        writer.add_frames(source, chunk)
        added += len(chunk)


def _principal_embeddings(thumbs: np.ndarray, dims: int, rng: np.random.Generator) -> np.ndarray:
    """Project thumbnails on their main principal components.

    Euclidean distance between embeddings approximates the pixel distance between thumbnails
    at a tiny fraction of the cost, which the global planner needs for thousands of pairs.
    """
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    mean = flat.mean(axis=0)
    sample = flat[rng.choice(len(flat), size=min(len(flat), 800), replace=False)] - mean
    gram = sample @ sample.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:dims]
    values, vectors = np.maximum(values[order], 1e-6), vectors[:, order]
    components = (sample.T @ vectors) / np.sqrt(values)  # (pixels, dims), orthonormal columns
    embeddings = (flat - mean) @ components
    if embeddings.shape[1] < dims:
        embeddings = np.pad(embeddings, ((0, 0), (0, dims - embeddings.shape[1])))
    return embeddings.astype(np.float32)


def _motion(thumbs: np.ndarray) -> np.ndarray:
    """Mean absolute change of each frame's thumbnail from the previous frame's."""
    diffs = np.abs(np.diff(thumbs.astype(np.int16), axis=0)).mean(axis=(1, 2))
    return np.concatenate([[0.0], diffs]).astype(np.float32)


def _crops(speech_video: Path, idle_video: Path | None, crop: Crop | str) -> tuple[Crop | None, Crop | None]:
    """The crop of each video (None: the centred square). ``"face"`` frames the speech video on
    its face, and the idle video the same way when it has the same size (one camera, one take
    apart), else on its own face."""
    if isinstance(crop, Crop):
        return crop, crop
    if crop == "centre":
        return None, None
    speech_crop = face_crop(speech_video)
    if idle_video is None:
        return speech_crop, None
    same = (probe(speech_video).width, probe(speech_video).height) == (
        probe(idle_video).width,
        probe(idle_video).height,
    )
    return speech_crop, speech_crop if same else face_crop(idle_video)


def _within_takes(starts: np.ndarray, take_frames: Sequence[int] | None, speech_frames: int) -> np.ndarray:
    """The segment starts whose segment lies inside one take."""
    if not take_frames:
        return starts
    if sum(take_frames) != speech_frames or min(take_frames) < feat.SEGMENT_FRAMES:
        raise InputError(
            f"the takes' {sum(take_frames)} frames do not make the speech video's {speech_frames}"
        )
    boundaries = np.cumsum(take_frames)[:-1]
    crossing = np.zeros(len(starts), bool)
    for boundary in boundaries:
        crossing |= (starts < boundary) & (starts + feat.SEGMENT_FRAMES > boundary)
    return starts[~crossing]


def _describe_crop(asked: Crop | str, used: Crop | None) -> str:
    if used is None:
        return "centre"
    where = f"{used.x},{used.y},{used.side},{used.side}"
    return f"face {where}" if asked == "face" else where


@dataclass(frozen=True)
class _Recording:
    """A library's per-frame arrays and its segments, as an idle strategy leaves them."""

    features: np.ndarray  # (frames, FEATURE_DIM)
    levels: np.ndarray  # (frames,) dB
    speech: np.ndarray  # (frames,) bool: the voice activity
    idle: np.ndarray  # (frames,) bool: playable in a pause
    starts: np.ndarray  # segment start frames
    kinds: tuple[str, ...]  # "speech" or "idle", one per start
    idle_source: str  # which strategy found the idle segments


def _idle_from_video(recording: _Recording, idle_frames: int) -> _Recording:
    """An idle take was given: its frames follow the speech frames, silent, all of them idle."""
    speech_frames = len(recording.speech)
    silent = np.zeros((idle_frames, feat.FEATURE_DIM), np.float32)
    silent[:, feat.LOUDNESS] = -6.0
    idle_starts = speech_frames + feat.segment_starts(idle_frames)
    return _Recording(
        features=np.vstack([recording.features, silent]),
        levels=np.concatenate([recording.levels, np.full(idle_frames, -100.0, np.float32)]),
        speech=np.concatenate([recording.speech, np.zeros(idle_frames, bool)]),
        idle=np.concatenate([np.zeros(speech_frames, bool), np.ones(idle_frames, bool)]),
        starts=np.concatenate([recording.starts, idle_starts]),
        kinds=recording.kinds + ("idle",) * len(idle_starts),
        idle_source="idle-video",
    )


def _idle_from_pauses(recording: _Recording) -> _Recording | None:
    """No idle take: the segments wholly inside the recording's own pauses, when there are enough."""
    in_pause = np.array(
        [recording.idle[s : s + feat.SEGMENT_FRAMES].all() for s in recording.starts], dtype=bool
    )
    if in_pause.sum() < MIN_IDLE_SEGMENTS:
        return None
    return replace(
        recording,
        kinds=tuple("idle" if pause else "speech" for pause in in_pause),
        idle_source="speech-pauses",
    )


def _idle_from_quietest(recording: _Recording, thumbs: np.ndarray) -> _Recording:
    """No pauses to speak of: the quietest, stillest segments stand in as idle ones, and stay
    speech segments too (they are real speech)."""
    starts = recording.starts
    motion = _motion(thumbs)
    loudness = feat.segment_fingerprints(recording.features, starts)[:, feat.LOUDNESS]
    stillness = np.array([motion[s + 1 : s + feat.SEGMENT_FRAMES].mean() for s in starts])
    score = np.argsort(np.argsort(loudness)) + np.argsort(np.argsort(stillness))
    chosen = np.sort(np.argsort(score)[: max(MIN_IDLE_SEGMENTS, len(starts) // 10)])
    idle = np.zeros(len(recording.speech), bool)
    for start in starts[chosen]:
        idle[start : start + feat.SEGMENT_FRAMES] = True
    return replace(
        recording,
        idle=idle,
        starts=np.concatenate([starts, starts[chosen]]),
        kinds=recording.kinds + ("idle",) * len(chosen),
        idle_source="quietest-segments",
    )


def _measure_mouths(
    writer: LibraryWriter, meter: MouthMeter, thumbs: np.ndarray, recording: _Recording, speech_frames: int
) -> dict:
    """The mouth of every frame, and the audio -> mouth model learnt from the speech frames,
    into the library; returns their description for its metadata."""
    recorded_speech = np.zeros(len(thumbs), dtype=bool)
    recorded_speech[:speech_frames] = recording.speech[:speech_frames]
    mouth = meter.finish(thumbs, recorded_speech)
    train = np.zeros(len(thumbs), dtype=bool)
    train[:speech_frames] = mouth.found[:speech_frames]
    model = fit_mouth_model(recording.features, mouth.values, train)
    writer.set_array("mouth", mouth.values)
    writer.set_array("mouth_found", mouth.found)
    writer.set_array("mouth_code", mouth.code)
    if mouth.anchors is not None:
        writer.set_array("mouth_anchors", mouth.anchors)
    meta: dict = {
        "measure": mouth.method,
        "landmarks": landmarks.model_name() if mouth.method == "landmarks" else "none",
        "found": round(mouth.found_fraction, 4),
    }
    if model is not None:
        for name, array in model.to_arrays().items():
            writer.set_array(name, array)
        meta["model"] = model.meta()
    return meta


def build_library(
    speech_video: str | os.PathLike,
    out_path: str | os.PathLike,
    idle_video: str | os.PathLike | None = None,
    settings: BuildSettings = BuildSettings(),
    progress: Progress | None = None,
    *,
    take_frames: Sequence[int] | None = None,
) -> LibraryInfo:
    """Build a character library from a speech video (and optionally an idle video).

    Parameters
    ----------
    speech_video
        Any video ffmpeg reads, with the voice on its audio track.
    out_path
        Where the library file goes; written atomically.
    idle_video
        Optional: the character silent (blinks, gaze, mouth closed); played during pauses.
    settings
        Frame size, crop, JPEG quality, voice activity settings.
    progress
        Called with the number of frames processed, for a progress bar.
    take_frames
        When the speech video is several takes joined (:func:`engine.makers.takes.join_takes`),
        each take's frame count: no segment is cut across two takes, whose frames do not follow
        each other.

    Raises
    ------
    MediaError, InputError
        With a one-line message naming the problem; no file is left behind.
    """
    speech_video, out_path = Path(speech_video), Path(out_path)
    if settings.size < 64 or settings.size % 2:
        raise InputError(f"size {settings.size}: must be an even number of pixels, at least 64")
    info = probe(speech_video)
    if not info.has_video:
        raise MediaError(f"{speech_video}: not a video (no video track)")
    if not info.has_audio:
        raise MediaError(
            f"{speech_video}: has no audio track; the speech video must carry the voice it shows"
        )
    if idle_video is not None:
        idle_video = Path(idle_video)
        if not probe(idle_video).has_video:
            raise MediaError(f"{idle_video}: not a video (no video track)")
    speech_crop, idle_crop = _crops(speech_video, idle_video, settings.crop)
    audio = read_audio(speech_video)
    rng = np.random.default_rng(0)

    thumbs: list[np.ndarray] = []
    meter = MouthMeter(use_landmarks=settings.mouth_landmarks)
    with LibraryWriter(out_path) as writer:
        speech_frames = _store_video(
            writer, SPEECH_SOURCE, speech_video, settings, speech_crop, thumbs, meter, progress
        )
        if speech_frames < MIN_SPEECH_SECONDS * feat.FPS:
            raise InputError(
                f"{speech_video}: only {speech_frames / feat.FPS:.2f} s of video; a speech video needs at "
                f"least {MIN_SPEECH_SECONDS:.0f} s"
            )
        analysis = feat.analyse(audio, ANALYSIS_SAMPLE_RATE, speech_frames, settings.vad)
        starts = _within_takes(feat.segment_starts(speech_frames), take_frames, speech_frames)
        recording = _Recording(
            analysis.features,
            analysis.levels_db,
            analysis.speech,
            ~analysis.speech,
            starts,
            ("speech",) * len(starts),
            "",
        )
        idle_frames = 0
        if idle_video is not None:
            idle_frames = _store_video(
                writer, IDLE_SOURCE, idle_video, settings, idle_crop, thumbs, meter, progress
            )
            if idle_frames < feat.SEGMENT_FRAMES:
                raise InputError(f"{idle_video}: shorter than one segment ({feat.SEGMENT_FRAMES} frames)")
            recording = _idle_from_video(recording, idle_frames)
        else:
            recording = _idle_from_pauses(recording) or _idle_from_quietest(recording, np.stack(thumbs))
            if recording.idle_source == "quietest-segments":
                log.info("%s has no pauses: idle segments are its quietest, stillest ones", speech_video)
        thumbs_array = np.stack(thumbs)
        mouth_meta = _measure_mouths(writer, meter, thumbs_array, recording, speech_frames)
        features, idle_source = recording.features, recording.idle_source
        writer.set_array("features", features.astype(np.float32))
        writer.set_array("levels", recording.levels.astype(np.float32))
        writer.set_array("speech", recording.speech.astype(bool))
        writer.set_array("idle", recording.idle.astype(bool))
        if analysis.voice is not None:
            writer.set_array("voice", analysis.voice)
        writer.set_array("thumbnails", thumbs_array)
        writer.set_array("embeddings", _principal_embeddings(thumbs_array, settings.embedding_dims, rng))
        starts = recording.starts
        writer.set_segments(
            starts, list(recording.kinds), feat.segment_fingerprints(features, starts), feat.SEGMENT_FRAMES
        )
        writer.set_meta(
            size=settings.size,
            fps=feat.FPS,
            idle_source=idle_source,
            build={**settings.as_meta(), "crop": _describe_crop(settings.crop, speech_crop)},
            mouth=mouth_meta,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            speech_video=speech_video.name,
            idle_video=idle_video.name if idle_video is not None else "",
        )
        writer.commit()
    log.info(
        "built %s: %d speech frames, %d idle frames (%s)", out_path, speech_frames, idle_frames, idle_source
    )
    with open_library(out_path) as library:
        return library.info()
