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
from .media import _last_line, ffmpeg_exe, probe


@functools.lru_cache(maxsize=1)
def _has_rubberband() -> bool:
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True)
    return " rubberband " in result.stdout


def pitch_filter(semitones: float, sample_rate: int = 48_000) -> str:
    """The ffmpeg audio filter that shifts pitch by ``semitones`` and keeps the duration."""
    ratio = 2.0 ** (semitones / 12.0)
    if _has_rubberband():
        return f"rubberband=pitch={ratio:.6f}"
    return f"asetrate={sample_rate * ratio:.0f},aresample={sample_rate},atempo={1 / ratio:.6f}"


def shift_pitch(source: str | os.PathLike, destination: str | os.PathLike, semitones: float) -> Path:
    """Write ``source``'s audio, pitch-shifted by ``semitones``, as 48 kHz mono WAV.

    Raises
    ------
    MediaError
        ``source`` has no readable audio.
    """
    if not -12 <= semitones <= 12:
        raise InputError(f"pitch shift {semitones} semitones: must be between -12 and 12")
    source, destination = Path(source), Path(destination)
    if not probe(source).has_audio:
        raise MediaError(f"{source}: has no audio track")
    filters = ["aresample=48000"]
    if abs(semitones) > 1e-3:
        filters.append(pitch_filter(semitones))
    tmp = destination.with_name(f".{destination.name}.part.wav")
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-vn", "-ac", "1", "-af", ",".join(filters), "-ar", "48000", "-c:a", "pcm_s16le", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{source}: cannot shift pitch ({_last_line(result.stderr)})")
    os.replace(tmp, destination)
    return destination
