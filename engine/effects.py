"""Audio effects applied before rendering: the character's voice on a child's voice note.

Pitch shifting keeps the timing (so the video still follows the words) and is done by ffmpeg:
its ``rubberband`` filter where the binary has it (the imageio-ffmpeg wheel does), else the
classic resample-and-stretch (``asetrate`` + ``atempo``), which sounds a little rougher.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from .errors import InputError, MediaError
from .media import (
    PROBE_TIMEOUT_S,
    UNTRUSTED_TIMEOUT_S,
    ffmpeg_exe,
    ffmpeg_failure,
    probe,
    run_bounded,
    untrusted_input_args,
)


@functools.lru_cache(maxsize=1)
def _has_rubberband() -> bool:
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
    )
    return " rubberband " in result.stdout


def pitch_filter(semitones: float, sample_rate: int = 48_000) -> str:
    """The ffmpeg audio filter that shifts pitch by ``semitones`` and keeps the duration."""
    ratio = 2.0 ** (semitones / 12.0)
    if _has_rubberband():
        return f"rubberband=pitch={ratio:.6f}"
    return f"asetrate={sample_rate * ratio:.0f},aresample={sample_rate},atempo={1 / ratio:.6f}"


def shift_pitch(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    semitones: float,
    *,
    container: str | None = None,
    max_seconds: float | None = None,
    timeout_s: float = UNTRUSTED_TIMEOUT_S,
) -> Path:
    """Write ``source``'s audio, pitch-shifted by ``semitones``, as 48 kHz mono WAV.

    A user's file names its ``container`` (from :func:`engine.media.sniff_container`): ffmpeg
    then opens it with that one demuxer, local files only, and reads at most ``max_seconds``.
    The output is ours, so everything after this step may trust it.

    Raises
    ------
    MediaError
        ``source`` has no readable audio, or ffmpeg took longer than ``timeout_s``.
    StorageError
        The disk failed (full, I/O error) while writing ``destination``.
    """
    if not -12 <= semitones <= 12:
        raise InputError(f"pitch shift {semitones} semitones: must be between -12 and 12")
    source, destination = Path(source), Path(destination)
    if container is not None:
        inputs = untrusted_input_args(source, container, max_seconds=max_seconds)
    else:
        if not probe(source).has_audio:
            raise MediaError(f"{source}: has no audio track")
        inputs = [*(["-t", f"{max_seconds:.3f}"] if max_seconds is not None else []), "-i", str(source)]
    filters = ["aresample=48000"]
    if abs(semitones) > 1e-3:
        filters.append(pitch_filter(semitones))
    tmp = destination.with_name(f".{destination.name}.part.wav")
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        *inputs,
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-af",
        ",".join(filters),
        "-ar",
        "48000",
        "-c:a",
        "pcm_s16le",
        str(tmp),
    ]
    try:
        run = run_bounded(cmd, timeout_s=timeout_s)
        if run.returncode != 0:
            if "matches no streams" in run.message:
                raise MediaError(f"{source}: has no audio track")
            raise ffmpeg_failure(source, "cannot shift pitch", run.message)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, destination)
    return destination
