"""A person recorded in takes (Telegram video notes, or one ordinary video): each take checked
the moment it arrives, and the takes joined into one recording.

A family member reads the passage in parts of about 40 s, one round video note each, then sits
still for one silent take. Every take is judged at once, so the person can record it again
while they are still holding the phone, with one friendly reason:

* the face is found in at least 95 % of the frames (the landmark model, or OpenCV's cascade);
* the mouth is visible: inside the circle a video note shows, and of a width a mouth has (the
  landmark model guesses lips under a hand too, so this catches a mouth cut off or turned
  away, not every covered one);
* speech takes have speech (voiced at least a third of the time), are not clipped and not too
  quiet; the silent take is silent;
* the length is right for the part;
* the picture is not too dark.

:func:`join_takes` then re-encodes the speech takes to one square 25 fps recording at a common
size, and says where each take starts, so that the library is built with no segment across a
take boundary (:func:`engine.build.build_library`, ``take_frames``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import features as feat
from .. import landmarks
from ..errors import InputError, MediaError
from ..framing import face_crop
from ..media import (
    ANALYSIS_SAMPLE_RATE,
    Crop,
    VideoEncoder,
    ffmpeg_exe,
    ffmpeg_failure,
    iter_frames,
    probe,
    read_audio,
    run_bounded,
    write_wav,
)
from .picture import detect_face

log = logging.getLogger(__name__)

CHECK_SIZE = 256
"""Frames are checked at this size: a face in a video note is large."""
CHECK_EVERY = 5
"""Every fifth frame is looked at (5 a second)."""


@dataclass(frozen=True)
class TakeLimits:
    """What a usable take is; defaults for Telegram video notes."""

    min_face_share: float = 0.95
    min_voiced_share: float = 0.33
    max_idle_voiced_share: float = 0.10
    max_clipped_share: float = 0.001
    min_peak_dbfs: float = -30.0
    min_brightness: float = 45.0
    min_mouth_width: float = 0.25
    """Outer mouth width over eye-corner distance below which the mouth is turned away or covered
    (a rounded "o" is about 0.35, a smile 0.6)."""


@dataclass(frozen=True)
class TakeReport:
    """What :func:`check_take` found: ``problems`` is empty for a good take. Each problem is one
    line a person can act on ("the face is out of the picture for a third of the time")."""

    seconds: float
    face_share: float
    mouth_share: float
    voiced_share: float
    clipped_share: float
    peak_dbfs: float
    brightness: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _audio_measures(path: Path, seconds: float) -> tuple[float, float, float]:
    """(voiced share, clipped share, peak dBFS) of a take's sound; a take with no sound is silent."""
    if not probe(path).has_audio:
        return 0.0, 0.0, -120.0
    audio = read_audio(path, ANALYSIS_SAMPLE_RATE)
    if len(audio) == 0:
        return 0.0, 0.0, -120.0
    peak = float(np.max(np.abs(audio)))
    clipped = float(np.mean(np.abs(audio) >= 0.995))
    frames = max(1, int(round(seconds * feat.FPS)))
    levels = feat.frame_levels_db(audio, ANALYSIS_SAMPLE_RATE, frames)
    voiced = float(np.mean(levels > max(levels.max() - 30.0, -55.0))) if peak > 1e-4 else 0.0
    return voiced, clipped, 20 * np.log10(max(peak, 1e-6))


def _mouth_visible(face: landmarks.Face, side: int, limits: TakeLimits) -> bool:
    """The lips inside the circle a video note shows (its corners are cut away), and of a width a
    mouth has (a squashed one is turned away or covered)."""
    lips = face.points[[landmarks.MOUTH_CORNERS[0], landmarks.MOUTH_CORNERS[1], *landmarks.OUTER_LIPS]]
    inside = np.hypot(lips[:, 0] - side / 2, lips[:, 1] - side / 2) <= 0.48 * side
    return bool(inside.all()) and face.mouth_width >= limits.min_mouth_width


def check_take(
    path: str | os.PathLike,
    *,
    kind: str = "speech",
    seconds: tuple[float, float] = (5.0, 61.0),
    limits: TakeLimits = TakeLimits(),
) -> TakeReport:
    """Judge one take: face, mouth, sound, length, light.

    Parameters
    ----------
    path
        The take (any video ffmpeg reads; square or not).
    kind
        ``"speech"`` (reading a part of the passage) or ``"idle"`` (sitting still, silent).
    seconds
        The shortest and longest the take may be.

    Raises
    ------
    MediaError
        Not a video at all.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path.name}: not a video")
    if kind not in ("speech", "idle"):
        raise InputError(f"unknown take kind {kind!r}")
    seen = _look(path, limits)
    duration = seen.frames / feat.FPS
    voiced, clipped, peak = _audio_measures(path, duration)
    report = TakeReport(
        seconds=duration,
        face_share=seen.faces / max(seen.looked, 1),
        mouth_share=seen.mouths / max(seen.faces, 1),
        voiced_share=voiced,
        clipped_share=clipped,
        peak_dbfs=peak,
        brightness=float(np.median(seen.brightness)) if seen.brightness else 0.0,
    )
    report.problems.extend(_problems(report, kind=kind, seconds=seconds, limits=limits))
    problems = report.problems
    log.info("take %s (%s): %s", path.name, kind, "ok" if report.ok else "; ".join(problems))
    return report


@dataclass
class _Seen:
    """What the frames of a take showed: how many, how many looked at, faces, visible mouths."""

    frames: int = 0
    looked: int = 0
    faces: int = 0
    mouths: int = 0
    brightness: list[float] = field(default_factory=list)


def _look(path: Path, limits: TakeLimits) -> _Seen:
    """Every :data:`CHECK_EVERY`-th frame looked at: its light, its face, the face's mouth."""
    seen = _Seen()
    tracker = landmarks.FaceTracker() if landmarks.available() else None
    try:
        for index, frame in enumerate(iter_frames(path, CHECK_SIZE, feat.FPS)):
            seen.frames += 1
            if index % CHECK_EVERY:
                continue
            seen.looked += 1
            seen.brightness.append(float(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).mean()))
            if tracker is not None:
                face = tracker.find(frame)
                if face is not None:
                    seen.faces += 1
                    seen.mouths += _mouth_visible(face, frame.shape[0], limits)
            elif detect_face(frame) is not None:
                seen.faces += 1
                seen.mouths += 1  # no landmarks: a found face is all we can say
    finally:
        if tracker is not None:
            tracker.close()
    return seen


def _problems(
    report: TakeReport, *, kind: str, seconds: tuple[float, float], limits: TakeLimits
) -> list[str]:
    """What is wrong with a take, each as one friendly sentence saying how to record it again."""
    problems: list[str] = []
    duration = report.seconds
    shortest, longest = seconds
    if duration < shortest:
        problems.append(f"it is only {duration:.0f} s long; this part needs at least {shortest:.0f} s")
    elif duration > longest:
        problems.append(f"it is {duration:.0f} s long; this part needs at most {longest:.0f} s")
    if report.brightness < limits.min_brightness:
        problems.append("it is too dark to see the face; record it again facing a window or a lamp")
    if report.face_share < limits.min_face_share:
        missing = 1 - report.face_share
        problems.append(
            f"the face is out of the picture {missing:.0%} of the time; keep it in the circle, looking at "
            "the camera"
        )
    elif report.mouth_share < limits.min_face_share:
        problems.append("the mouth is hidden part of the time; keep hands and the phone's edge away from it")
    if kind == "speech":
        if report.voiced_share < limits.min_voiced_share or report.peak_dbfs < limits.min_peak_dbfs:
            problems.append(
                "I can hardly hear any reading; read the text aloud, a little closer to the phone"
            )
        elif report.clipped_share > limits.max_clipped_share:
            problems.append("the sound is distorted (too loud); hold the phone a little further away")
    elif report.voiced_share > limits.max_idle_voiced_share and report.peak_dbfs > limits.min_peak_dbfs:
        problems.append("this one should be silent: look at the camera and smile, without talking")
    return problems


def _framing(take: Path) -> Crop | None:
    """A video note is square on the face already (None: as it is); an ordinary video (a phone's
    tall one) is framed on the face, as ``gramophone build`` frames one."""
    info = probe(take)
    if info.width == info.height:
        return None
    try:
        return face_crop(take)
    except InputError:
        return None  # no face found in its first seconds: the centred square (checked already)


def join_takes(takes: list[Path], out: str | os.PathLike, *, size: int = 512) -> list[int]:
    """Re-encode the speech takes, in order, to one square ``size`` x ``size`` 25 fps recording
    with their sound, centre-cropped (video notes are square already); returns each take's frame
    count, so the build keeps segments within takes.

    Video notes are 384-640 px and are scaled, up or down, to ``size`` (bicubic, as every
    video the engine reads), so the library has one size. An ordinary video of the whole passage
    (a phone's, 1080 x 1920) is framed on the face first."""
    out = Path(out)
    if not takes:
        raise InputError("no takes to join")
    counts: list[int] = []
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".takes-") as work:
        audio_parts: list[np.ndarray] = []
        silent_video = Path(work) / "video.mp4"
        with VideoEncoder(silent_video, size, feat.FPS) as encoder:
            for take in takes:
                frames = 0
                for frame in iter_frames(take, size, feat.FPS, _framing(Path(take))):
                    encoder.write(frame)
                    frames += 1
                if frames < feat.SEGMENT_FRAMES:
                    raise InputError(f"{Path(take).name}: shorter than one segment")
                samples = int(round(frames / feat.FPS * ANALYSIS_SAMPLE_RATE))
                audio = (
                    read_audio(take, ANALYSIS_SAMPLE_RATE)
                    if probe(take).has_audio
                    else np.zeros(samples, np.float32)
                )
                audio = np.pad(
                    audio[:samples], (0, max(0, samples - len(audio)))
                )  # the take's sound, frame-exact
                audio_parts.append(audio.astype(np.float32))
                counts.append(frames)
        wav = write_wav(Path(work) / "audio.wav", np.concatenate(audio_parts), ANALYSIS_SAMPLE_RATE)
        joined = Path(work) / "joined.mp4"
        run = run_bounded(
            [
                ffmpeg_exe(),
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(silent_video),
                "-i",
                str(wav),
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-c:v",
                "copy",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                str(joined),
            ],
            timeout_s=600,
        )
        if run.returncode != 0:
            raise ffmpeg_failure(out, "joining the takes", run.message)
        os.replace(joined, out)
    log.info("joined %d takes into %s: %s frames", len(takes), out.name, counts)
    return counts
