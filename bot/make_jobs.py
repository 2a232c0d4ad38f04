"""What a worker does with one make job: picture -> character folder, engine calls only.

The job is a plain dict that carries everything the maker needs: the picture's bytes, the name,
id, language and voice, and any mouth/eye positions the admin gave; so a ``gramophone worker
--gpu`` on a GPU machine needs neither the bot's state nor its disk, exactly like a render
worker. The result carries the finished character folder back as tar bytes (portrait,
``character.toml``, performance videos, library), through the queue's result store, the way a
render's mp4 comes back; the bot unpacks it next to the catalogue and publishes it with one
rename. One path for every set-up (embedded, Redis, a GPU machine across the internet) rather
than a shared-disk shortcut that only works on one machine. A 512 px character is well over
100 MB (mostly its library), so the task stores the tar in parts of a few MB under keys of its
own (:mod:`bot.tasks`) and the result dict only says how many: no single huge value in Redis,
and neither side holds more than one part in memory.

Plain dicts rather than classes, as in :mod:`bot.jobs`: a bot and workers of slightly different
versions still understand each other through pickle.

Errors an admin can fix (no face, a picture that is not one, a cancel) come back as ``{"ok":
False, ...}`` and are not retried; anything else raises, and the bot tries again.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from engine.errors import GramophoneError

from .payloads import MakeJobPayload, MakeOutcome

log = logging.getLogger(__name__)

PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def make_make_job(
    *,
    job_id: int,
    character_id: str,
    name: str,
    language: str,
    voice: dict[str, Any],
    picture: bytes,
    picture_suffix: str = ".jpg",
    description: str = "",
    pitch_semitones: float = 0.0,
    mouth: tuple[float, float] | None = None,
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None,
    mouth_width: float | None = None,
    open_mouth: tuple[tuple[float, float], tuple[float, float]] | None = None,
    takes: list[bytes] | None = None,
    idle_take: bytes | None = None,
    route: str = "cpu",
    size: int = 512,
) -> MakeJobPayload:
    """A make job dict, checked here so that a malformed one fails in the bot, not in a worker."""
    if size < 64 or size % 2:
        raise ValueError(f"size {size} must be even and at least 64")
    if not picture and not takes:
        raise ValueError("a make job needs the picture bytes, or a person's takes")
    if takes and not idle_take:
        raise ValueError("a person's make job needs the silent take too")
    if route not in ("cpu", "gpu"):
        raise ValueError(f"unknown route {route!r}")
    suffix = picture_suffix.lower() if picture_suffix.startswith(".") else f".{picture_suffix.lower()}"
    return {
        "version": 1,
        "job_id": int(job_id),
        "character_id": character_id,
        "name": name,
        "language": language,
        "voice": dict(voice),
        "picture": bytes(picture),
        "picture_suffix": suffix if suffix in PICTURE_SUFFIXES else ".img",
        "description": description,
        "pitch_semitones": float(pitch_semitones),
        "mouth": (float(mouth[0]), float(mouth[1])) if mouth is not None else None,
        "eyes": _pairs(eyes) if eyes is not None else None,
        "mouth_width": float(mouth_width) if mouth_width is not None else None,
        "open_mouth": _pairs(open_mouth) if open_mouth is not None else None,
        "takes": [bytes(take) for take in takes] if takes else None,
        "idle_take": bytes(idle_take) if idle_take else None,
        "route": route,
        "size": int(size),
    }


def _pairs(eyes: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two eye centres, as floats."""
    (lx, ly), (rx, ry) = eyes
    return (float(lx), float(ly)), (float(rx), float(ry))


def tar_folder(folder: Path, out: Path | None = None) -> bytes | Path:
    """The folder's regular files as an uncompressed tar (videos and the library are
    compressed already), names relative to the folder: bytes, or written to ``out``."""
    target: Any = io.BytesIO() if out is None else open(out, "wb")
    try:
        with tarfile.open(fileobj=target, mode="w") as tar:
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                    tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        return target.getvalue() if out is None else out
    finally:
        target.close()


def _tar_bytes(path: Path) -> dict[str, Any]:
    return {"tar": path.read_bytes()}


def run_make_job(
    job: MakeJobPayload,
    *,
    flp: Any = None,
    reference: tuple[Path, Path] | None = None,
    progress: Callable[[str, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    deliver: Callable[[Path], dict[str, Any]] = _tar_bytes,
) -> MakeOutcome:
    """Make one character; returns the result dict (see the module docstring).

    ``flp`` (an :class:`engine.makers.flp.FlpConfig`) is the worker's own: a GPU worker passes
    its FLP settings, the CPU maker None (the puppet path). ``deliver`` gets the finished tar
    file (removed afterwards) and returns what the result carries instead of it: by default
    its bytes under ``"tar"``; the queue task stores it in parts."""
    from engine.makers.make import CancelledError, make_character, make_character_from_person
    from engine.speech import VoiceSettings

    started = time.perf_counter()
    label = f"make job {job.get('job_id')} ({job.get('character_id')}, {job.get('route')})"
    try:
        with tempfile.TemporaryDirectory(prefix="gramophone-make-") as scratch:
            folder = Path(scratch) / job["character_id"]
            folder.mkdir()
            recorded, idle_take = job["takes"], job["idle_take"]
            if recorded:  # a person who recorded themselves
                assert idle_take is not None, "make_make_job checks a person's job has the silent take"
                takes = []
                for index, data in enumerate(recorded):
                    takes.append(Path(scratch) / f"take-{index}.mp4")
                    takes[-1].write_bytes(data)
                idle = Path(scratch) / "take-idle.mp4"
                idle.write_bytes(idle_take)
                made = make_character_from_person(
                    takes,
                    idle,
                    folder,
                    character_id=job["character_id"],
                    name=job["name"],
                    language=job["language"],
                    voice=VoiceSettings(**job["voice"]),
                    description=job.get("description", ""),
                    pitch_semitones=job.get("pitch_semitones", 0.0),
                    progress=progress,
                    cancelled=cancelled,
                    size=int(job.get("size", 512)),
                )
                tar = tar_folder(folder, Path(scratch) / "character.tar")
                assert isinstance(tar, Path)
                size = tar.stat().st_size
                delivered = deliver(tar)
                return _success(made, delivered, size, started, label)
            picture = Path(scratch) / f"picture{job['picture_suffix']}"
            picture.write_bytes(job["picture"])
            made = make_character(
                picture,
                folder,
                character_id=job["character_id"],
                name=job["name"],
                language=job["language"],
                voice=VoiceSettings(**job["voice"]),
                description=job.get("description", ""),
                pitch_semitones=job.get("pitch_semitones", 0.0),
                mouth=job.get("mouth"),
                eyes=job.get("eyes"),
                mouth_width=job.get("mouth_width"),
                open_mouth=job.get("open_mouth"),
                flp=flp,
                reference=reference,
                progress=progress,
                cancelled=cancelled,
                size=int(job.get("size", 512)),
            )
            tar = tar_folder(folder, Path(scratch) / "character.tar")
            assert isinstance(tar, Path)
            size = tar.stat().st_size
            delivered = deliver(tar)
    except GramophoneError as error:
        log.warning("%s: cannot make it: %s", label, error)
        return {
            "ok": False,
            "error": str(error),
            "error_kind": type(error).__name__,
            "cancelled": isinstance(error, CancelledError),
        }
    return _success(made, delivered, size, started, label)


def _success(made: Any, delivered: dict[str, Any], size: int, started: float, label: str) -> MakeOutcome:
    seconds = time.perf_counter() - started
    log.info("%s: made by %s in %.0f s (%.1f MB)", label, made.path, seconds, size / 1e6)
    outcome = {
        "ok": True,
        **delivered,
        "bytes": size,
        "path_used": made.path,
        "seconds": seconds,
        "info": _describe(made.info),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    return cast(MakeOutcome, outcome)  # delivered adds "tar" or "parts"


def _describe(info: Any) -> str:
    """A one-line summary of the maker's info object for the logs and /jobs (whatever it is)."""
    if info is None:
        return ""
    text = str(info)
    return text if len(text) <= 300 else text[:299] + "…"
