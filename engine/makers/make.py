"""Picture in, character out: the one entry point of the "new character from one picture" job.

:func:`make_character` takes the admin's picture and writes a complete character folder --
portrait, ``character.toml``, the two performance videos and the built library -- which loads
with :func:`engine.characters.load_character` and renders like any filmed character. Two ways:

* **FLP** (a GPU with FasterLivePortrait, :mod:`engine.makers.flp`): a reference performance
  (a real person reading the passages, and sitting quietly) drives the picture; the animated
  takes are re-timed onto the reference audio.
* **puppet** (CPU, :mod:`engine.makers.puppet`): the character's own TTS voice reads the
  passages (exactly as the drawn fox does, :func:`engine.makers.drawn.performance_audio`) and the
  picture is warped to it.

It writes INTO ``folder``; publishing is the caller's (build in a temp folder, rename). On any
failure, cancellation included, the files it wrote are removed again, and ``character.toml``
is written last, so a folder never looks like a character before it is one.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from ..build import BuildSettings, build_library
from ..character_spec import CHARACTER_FILE, ID_PATTERN, CharacterSpec
from ..characters import LIBRARY_FILE, Character, load_character
from ..errors import GramophoneError, InputError, MediaError
from ..library import LibraryInfo
from ..media import IDLE_TAKE, PERFORMED_IDLE_S, SPEECH_TAKE, iter_frames, probe
from ..speech import VoiceSettings
from . import flp as flp_maker
from .drawn import performance_audio
from .face_rig import FaceRig, find_rig, rig_from_points
from .flp import FlpConfig, animate, retime, validate_reference
from .picture import PictureInfo, check_picture, estimate_landmarks, read_picture
from .puppet import FPS, puppet_performance

log = logging.getLogger(__name__)

STAGE_GPU = "animating on GPU"
STAGE_CPU = "animating on CPU"
STAGE_BUILD = "building library"
STAGE_JOIN = "joining the recorded takes"
STAGE_READY = "ready"
SPEECH_VIDEO, IDLE_VIDEO = SPEECH_TAKE, IDLE_TAKE
_EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp"}
_GREETINGS = {"en": "Hello! I am {name}.", "ru": "Привет! Я {name}."}
_POLL_S = 0.2  # cancelled() and progress() at most this often inside frame loops
# Shares of the whole job (progress fractions) at which each stage ends.
_ANIMATED, _BUILT = 0.55, 0.98


class CancelledError(GramophoneError):
    """Making the character was cancelled: ``cancelled()`` returned True."""


@dataclass(frozen=True)
class MadeCharacter:
    """A finished character folder and how it was made."""

    folder: Path
    path: str  # "flp" or "puppet"
    info: LibraryInfo
    seconds: float
    face: str = "flp"
    """How the puppet found the face: "landmarks", "manual" or "detector" ("flp" on the GPU path)."""


class _Tracker:
    """Progress reports (never going backwards) and cancellation checks, throttled in loops."""

    def __init__(
        self, progress: Callable[[str, float], None] | None, cancelled: Callable[[], bool] | None
    ) -> None:
        self.progress, self.cancelled = progress, cancelled
        self.fraction = 0.0
        self.last_poll = 0.0

    def is_cancelled(self) -> bool:
        return bool(self.cancelled is not None and self.cancelled())

    def check(self) -> None:
        if self.is_cancelled():
            raise CancelledError("making the character was cancelled")

    def report(self, stage: str, fraction: float, check: bool = True) -> None:
        if check:
            self.check()
        self.fraction = max(self.fraction, min(1.0, fraction))
        if self.progress is not None:
            self.progress(stage, self.fraction)

    def frames(self, stage: str, start: float, end: float, total: int) -> Callable[[int], None]:
        """A per-frame callback moving the fraction from ``start`` to ``end`` over ``total`` frames."""
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            now = time.monotonic()
            if now - self.last_poll >= _POLL_S:
                self.last_poll = now
                self.report(stage, start + (end - start) * min(1.0, done / max(total, 1)))

        return advance


def _character_toml(
    *,
    character_id: str,
    name: str,
    description: str,
    language: str,
    voice: VoiceSettings,
    pitch_semitones: float,
    portrait: str,
    maker: str,
    size: int,
    takes: list[int] | None = None,
) -> str:
    voice_table: dict[str, object] = {"language": voice.language, "rate": voice.rate, "pitch": voice.pitch}
    if voice.piper_model:
        voice_table["piper_model"] = voice.piper_model
    elif voice.backend != "espeak":
        voice_table["backend"] = voice.backend
    if voice.voice:
        voice_table["voice"] = voice.voice
    library: dict[str, object] = {
        "source": "video",
        "crop": "centre",  # the puppet's or FLP's videos, or the joined takes, are framed already
        "speech_video": SPEECH_VIDEO,
        "idle_video": IDLE_VIDEO,
        "size": size,
        "maker": maker,
    }
    if takes:
        library["takes"] = [int(count) for count in takes]
    comment = (
        f"Recorded by a person in {len(takes)} takes, joined by engine.makers; the library is a build output."
        if takes
        else f"Made from one picture ({portrait}) by engine.makers ({maker}); the library is a build output."
    )
    greeting = _GREETINGS.get(language.split("-")[0], _GREETINGS["en"]).format(name=name)
    return CharacterSpec(
        id=character_id,
        name=name,
        language=language,
        description=description,
        pitch_semitones=float(pitch_semitones),
        portrait=portrait,
        voice=voice_table,
        greeting={language: greeting},
        library=library,
        comment=comment,
    ).to_toml()


def _check_identity(character_id: str, name: str, language: str, pitch_semitones: float, size: int) -> None:
    if not ID_PATTERN.match(character_id or ""):
        raise InputError(
            f"character id {character_id!r} must be lowercase letters, digits and dashes (at most 40)"
        )
    if not name or not name.strip():
        raise InputError("the character needs a name")
    if not language or not language.strip():
        raise InputError("the character needs a language")
    if not -12 <= float(pitch_semitones) <= 12:
        raise InputError("pitch_semitones must be between -12 and 12")
    if size < 64 or size % 2:
        raise InputError(f"size {size} must be an even number of pixels, at least 64")


def make_character(
    picture: Path,
    folder: Path,
    *,
    character_id: str,
    name: str,
    language: str,
    voice: VoiceSettings,
    description: str = "",
    pitch_semitones: float = 0.0,
    mouth: tuple[float, float] | None = None,
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None,
    mouth_width: float | None = None,
    open_mouth: tuple[tuple[float, float], tuple[float, float]] | None = None,
    flp: FlpConfig | None = None,
    reference: tuple[Path, Path] | None = None,
    progress: Callable[[str, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    size: int = 512,
) -> MadeCharacter:
    """Make a character from one picture, into ``folder``.

    Parameters
    ----------
    picture
        The admin's picture (checked by :func:`engine.makers.picture.check_picture`).
    folder
        Created if missing; gets ``portrait.<ext>``, ``character.toml``, ``speech.mp4``,
        ``idle.mp4`` and ``library.gchar``.
    character_id, name, language, voice, description, pitch_semitones
        Who the character is and how it speaks (see :mod:`engine.characters`). The voice speaks
        ``language``: a voice set for another language is switched to it.
    mouth, eyes, mouth_width
        Manual positions in picture pixels, for the CPU puppet when no face is detected (animals,
        drawn characters, or no landmark model installed); they win over the landmarks. The
        width (corner to corner) defaults to face proportions. Unused on the FLP path.
    open_mouth
        With ``mouth``: the middle of the upper and the lower lip's edge when the mouth is open in
        the picture, so the puppet closes and opens that mouth (see
        :func:`engine.makers.face_rig.rig_from_points`).
    flp, reference
        FLP configuration and the reference performance ``(speech video, idle video)``: both
        given, the picture is animated on the GPU; ``flp`` alone is an error; neither, the CPU
        puppet animates it.
    progress
        ``progress(stage, fraction)``: stage is ``"animating on GPU"`` or ``"animating on CPU"``,
        then ``"building library"``, then ``"ready"``; fraction is the share of the whole job
        done, in [0, 1], never decreasing. Called at most about five times a second.
    cancelled
        Polled between stages and, throttled, between frames (and while FLP runs); when it
        returns True, :class:`CancelledError` is raised and the files written are removed.
    size
        Side of the character's frames (512; smaller in tests).

    Returns
    -------
    MadeCharacter
        The folder, ``"flp"`` or ``"puppet"``, the library's info and the seconds it took.

    Raises
    ------
    InputError
        A bad picture, identity, positions or reference; FLP found no face.
    MediaError
        FLP failed or lost too many frames; a video could not be read or written.
    CancelledError
        ``cancelled()`` returned True.
    """
    started = time.perf_counter()
    picture, folder = Path(picture), Path(folder)
    _check_identity(character_id, name, language, pitch_semitones, size)
    if flp is not None and reference is None:
        raise InputError(
            "animating on the GPU needs a reference performance: a speech video and an idle video"
        )
    base = language.split("-")[0].lower()
    if voice.language.split("-")[0].lower() != base:
        log.warning(
            "voice language %s differs from the character's %s: speaking %s",
            voice.language,
            language,
            language,
        )
        voice = dataclasses.replace(voice, language=language)
    tracker = _Tracker(progress, cancelled)
    found_by = "flp"
    maker = "flp" if flp is not None else "puppet"
    stage = STAGE_GPU if flp is not None else STAGE_CPU
    tracker.report(stage, 0.0)
    info = check_picture(picture)
    folder.mkdir(parents=True, exist_ok=True)
    portrait = folder / f"portrait{_EXTENSIONS[info.format]}"
    partial = folder / f".{CHARACTER_FILE}.part"
    written = [
        portrait,
        folder / SPEECH_VIDEO,
        folder / IDLE_VIDEO,
        folder / LIBRARY_FILE,
        partial,
        folder / CHARACTER_FILE,
    ]
    try:
        shutil.copyfile(picture, portrait)
        if flp is not None:
            assert reference is not None
            _animate_on_gpu(portrait, folder, flp, (Path(reference[0]), Path(reference[1])), tracker)
        else:
            face = puppet_rig(info, mouth=mouth, eyes=eyes, mouth_width=mouth_width, open_mouth=open_mouth)
            found_by = face.method
            character = Character(
                id=character_id,
                name=name,
                description=description,
                language=language,
                folder=folder,
                voices={language: voice},
                source={"passages": [language]},
            )
            audio, sample_rate = performance_audio(character)
            tracker.report(stage, 0.05)
            frames = int(round(len(audio) / sample_rate * FPS)) + int(round(PERFORMED_IDLE_S * FPS))
            puppet_performance(
                portrait,
                face,
                audio,
                sample_rate,
                folder,
                size=size,
                seed=0,
                idle_s=PERFORMED_IDLE_S,
                progress=tracker.frames(stage, 0.05, _ANIMATED, frames),
            )
        tracker.report(STAGE_BUILD, _ANIMATED)
        speech, idle = folder / SPEECH_VIDEO, folder / IDLE_VIDEO
        frames = _frame_estimate(speech, idle)
        # The puppet's mouth is drawn by us, its inside dark: the pixel measure reads it, and the
        # landmark model (20 s of a 3-minute build) has nothing to add.
        settings = BuildSettings(size=size, crop="centre", mouth_landmarks=flp is not None)
        library = build_library(
            speech,
            folder / LIBRARY_FILE,
            idle,
            settings,
            progress=tracker.frames(STAGE_BUILD, _ANIMATED, _BUILT, frames),
        )
        tracker.check()
        toml = _character_toml(
            character_id=character_id,
            name=name,
            description=description,
            language=language,
            voice=voice,
            pitch_semitones=pitch_semitones,
            portrait=portrait.name,
            maker=maker,
            size=size,
        )
        _write_character_file(folder, partial, toml)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    tracker.report(STAGE_READY, 1.0, check=False)
    log.info("made character %s (%s) in %s by %s in %.1f s", character_id, name, folder, maker, seconds)
    return MadeCharacter(folder=folder, path=maker, info=library, seconds=seconds, face=found_by)


def _write_character_file(folder: Path, partial: Path, toml: str) -> None:
    """``character.toml`` last, through a temp file, then loaded as every reader will load it:
    a folder never looks like a character before it is one, and a bad one fails here."""
    partial.write_text(toml, encoding="utf-8")
    partial.replace(folder / CHARACTER_FILE)
    load_character(folder)


def make_character_from_person(
    takes: list[Path],
    idle_take: Path,
    folder: Path,
    *,
    character_id: str,
    name: str,
    language: str,
    voice: VoiceSettings,
    description: str = "",
    pitch_semitones: float = 0.0,
    progress: Callable[[str, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    size: int = 512,
) -> MadeCharacter:
    """Make a character from a person who recorded the passage in takes (Telegram video notes,
    each checked by :func:`engine.makers.takes.check_take` when it arrived) and one silent take.

    The speech takes are joined into one recording at ``size`` (video notes of 384-640 px are
    scaled to it, bicubic: the library has one size), the idle take likewise, and the library
    is built with no segment across two takes. Video notes are square on the face already, so
    the crop is the centred square. A still of the idle take is the portrait. Into ``folder``,
    removed again on any failure, as :func:`make_character`.
    """
    from .takes import join_takes

    started = time.perf_counter()
    folder = Path(folder)
    _check_identity(character_id, name, language, pitch_semitones, size)
    if not takes:
        raise InputError("a character from a person needs at least one recorded take")
    tracker = _Tracker(progress, cancelled)
    tracker.report(STAGE_JOIN, 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    portrait = folder / "portrait.jpg"
    partial = folder / f".{CHARACTER_FILE}.part"
    written = [
        portrait,
        folder / SPEECH_VIDEO,
        folder / IDLE_VIDEO,
        folder / LIBRARY_FILE,
        partial,
        folder / CHARACTER_FILE,
    ]
    try:
        counts = join_takes([Path(take) for take in takes], folder / SPEECH_VIDEO, size=size)
        tracker.report(STAGE_JOIN, 0.15)
        join_takes([Path(idle_take)], folder / IDLE_VIDEO, size=size)
        still = next(iter_frames(folder / IDLE_VIDEO, size), None)
        if still is None or not cv2.imwrite(str(portrait), still):
            raise MediaError("the silent take has no frame to make a portrait of")
        tracker.report(STAGE_BUILD, 0.2)
        speech, idle = folder / SPEECH_VIDEO, folder / IDLE_VIDEO
        library = build_library(
            speech,
            folder / LIBRARY_FILE,
            idle,
            BuildSettings(size=size, crop="centre"),
            progress=tracker.frames(STAGE_BUILD, 0.2, _BUILT, _frame_estimate(speech, idle)),
            take_frames=counts,
        )
        tracker.check()
        toml = _character_toml(
            character_id=character_id,
            name=name,
            description=description,
            language=language,
            voice=voice,
            pitch_semitones=pitch_semitones,
            portrait=portrait.name,
            maker="person",
            size=size,
            takes=counts,
        )
        _write_character_file(folder, partial, toml)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    tracker.report(STAGE_READY, 1.0, check=False)
    log.info(
        "made character %s (%s) from %d recorded takes in %.1f s", character_id, name, len(takes), seconds
    )
    return MadeCharacter(folder=folder, path="person", info=library, seconds=seconds, face="recorded")


def puppet_rig(
    info: PictureInfo,
    *,
    mouth: tuple[float, float] | None = None,
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None,
    mouth_width: float | None = None,
    open_mouth: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> FaceRig:
    """Where the puppet's lips, jaw and eyes are: the admin's points when given (they know their
    animal or drawing better than any model), else the landmark model's, else a face box's
    proportions. ``open_mouth`` (the top and bottom of a mouth open in the picture) needs
    ``mouth``.

    Raises
    ------
    InputError
        No face found and no points given, or points that make no face.
    """
    if mouth is None and eyes is None:
        rig = find_rig(read_picture(info.path))
        if rig is not None:
            log.info("%s: lips, jaw and eyes from the face landmarks", info.path.name)
            return rig
    landmarks = estimate_landmarks(info, mouth, eyes)
    width = float(mouth_width) if mouth_width is not None else landmarks.mouth_width
    if not width > 0:
        raise InputError("the mouth width must be a positive number of pixels")
    method = "manual" if (mouth is not None or eyes is not None) else "detector"
    if open_mouth is not None and mouth is None:
        raise InputError("an open mouth's top and bottom need the mouth's position too (--mouth)")
    rig = rig_from_points(landmarks.mouth, width, landmarks.eyes, open_mouth=open_mouth, method=method)
    rig.check()
    return rig


def _frame_estimate(speech: Path, idle: Path) -> int:
    """Frames the build will decode (for progress only): both takes at 25 fps."""
    return sum(int(round((probe(path).duration or 0.0) * FPS)) for path in (speech, idle))


def _animate_on_gpu(
    portrait: Path, folder: Path, config: FlpConfig, reference: tuple[Path, Path], tracker: _Tracker
) -> None:
    """Animate both reference takes on FLP and re-time them into ``folder``."""
    speech_reference, idle_reference = reference
    validate_reference(speech_reference, idle_reference)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".flp-") as work:
        try:
            for take, driving, end in (
                (SPEECH_VIDEO, speech_reference, 0.4),
                (IDLE_VIDEO, idle_reference, _ANIMATED),
            ):
                tracker.check()
                animated = animate(portrait, driving, config, Path(work), cancelled=tracker.is_cancelled)
                retime(animated, driving, folder / take, config.max_lost_fraction)
                tracker.report(STAGE_GPU, end)
        except flp_maker._Cancelled:
            raise CancelledError("making the character was cancelled") from None
