"""ffmpeg in and out: probe, decode frames and audio, encode H.264 + AAC, all streamed.

ffmpeg is a separate process fed through pipes, so memory stays flat however long the media.
The binary is the system's ``ffmpeg`` when there is one (or ``GRAMOPHONE_FFMPEG``), else the one
shipped in the ``imageio-ffmpeg`` wheel, so ``pip install`` alone is the whole set-up.
Command lines are built with ffmpeg-python, which keeps filter graphs readable.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import ffmpeg  # ffmpeg-python: command-line builder only
import numpy as np
import soundfile

from .errors import InputError, MediaError, StorageError
from .files import default_file_mode

log = logging.getLogger(__name__)

ANALYSIS_SAMPLE_RATE = 16_000
"""Audio is analysed at 16 kHz mono: enough for MFCCs of speech, cheap to compute."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``GRAMOPHONE_FFMPEG``, the system's, or the wheel's."""
    configured = os.environ.get("GRAMOPHONE_FFMPEG")
    if configured:
        return configured
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says a file holds. ``duration`` is None when the container does not say."""

    path: Path
    duration: float | None
    width: int | None
    height: int | None
    fps: float | None
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    pixel_format: str | None = None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no details from ffmpeg"


PROBE_TIMEOUT_S = 30.0
"""Longest a probe may take: reading a header is milliseconds, a hang is an attack or a bug."""

_STORAGE_FAILURES = {
    "No space left on device": errno.ENOSPC,
    "Input/output error": errno.EIO,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
}


def ffmpeg_failure(path: str | os.PathLike, what: str, message: str) -> OSError | MediaError:
    """The exception for a failed ffmpeg run: :class:`StorageError` when the machine failed
    (the disk is full: worth retrying, and nothing the user can fix), else :class:`MediaError`."""
    for text, code in _STORAGE_FAILURES.items():
        if text in message:
            return StorageError(code, f"{path}: {what}: {message}")
    return MediaError(f"{path}: {what} ({message})")


@dataclass(frozen=True)
class BoundedRun:
    """What a bounded ffmpeg run left: exit code, its stderr's last line, the bytes it printed."""

    returncode: int
    message: str
    stdout_bytes: int
    stdout: bytes | None


def run_bounded(
    cmd: list[str], *, timeout_s: float, keep_stdout: bool = False, stdout_limit: int | None = None
) -> BoundedRun:
    """Run ``cmd`` with a wall-clock limit, in a process group of its own, killed whole on timeout.

    Standard output is read in chunks and only counted unless ``keep_stdout``; past
    ``stdout_limit`` bytes the run is stopped (the caller asked for no more).

    Raises
    ------
    MediaError
        The run outlived ``timeout_s`` (a live stream, a decoder stuck on a crafted file).
    """
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, start_new_session=True
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(timeout_s, kill)
        timer.daemon = True
        timer.start()
        chunks: list[bytes] = []
        count = 0
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(1 << 16):
                count += len(chunk)
                if keep_stdout:
                    chunks.append(chunk)
                if stdout_limit is not None and count >= stdout_limit:
                    _kill_group(proc)
                    break
        finally:
            proc.stdout.close()
            returncode = proc.wait()
            timer.cancel()
        errors.seek(0)
        message = _last_line(errors.read().decode(errors="replace"))
    if timed_out.is_set():
        raise MediaError(f"ffmpeg took longer than {timeout_s:.0f} s and was stopped")
    return BoundedRun(returncode, message, count, b"".join(chunks) if keep_stdout else None)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started (ffmpeg may have helpers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read a file's streams from ``ffmpeg -i`` (the wheel ships no ffprobe).

    For files we made or an operator chose: the duration is what the container claims, which
    metadata can forge. A user's file goes through :func:`inspect_untrusted_audio` instead.

    Raises
    ------
    MediaError
        The file is missing or ffmpeg cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    try:
        result = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PROBE_TIMEOUT_S,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise MediaError(f"{path}: ffmpeg took longer than {PROBE_TIMEOUT_S:.0f} s to read it") from None
    text = result.stderr
    if "Stream #" not in text:
        raise MediaError(f"{path}: not a media file ffmpeg can read ({_last_line(text)})")
    duration = None
    match = _DURATION.search(text)
    if match:
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    width = height = fps = None
    video_codec = audio_codec = pixel_format = None
    has_video = False
    for line in _VIDEO.findall(text):
        if "attached pic" in line:  # cover art in an mp3 or m4a is not a video
            continue
        has_video = True
        video_codec = line.split()[0].rstrip(",")
        pix = re.search(r"\b(yuv\w+|rgb\w+|bgr\w+|gray\w*|nv12)\b", line)
        pixel_format = pix.group(1) if pix else None
        size = _SIZE.search(line)
        if size:
            width, height = int(size.group(1)), int(size.group(2))
        rate = _FPS.search(line)
        if rate:
            fps = float(rate.group(1))
        break
    audio = re.search(r"Stream #\d+:\d+.*?: Audio: (\w+)", text)
    has_audio = audio is not None
    audio_codec = audio.group(1) if audio else None
    return MediaInfo(
        path, duration, width, height, fps, has_video, has_audio, video_codec, audio_codec, pixel_format
    )


def read_audio(path: str | os.PathLike, sample_rate: int = ANALYSIS_SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio track of any file ffmpeg reads to mono float32 at ``sample_rate``.

    Raises
    ------
    MediaError
        Not readable, or no audio track.
    """
    path = Path(path)
    audio = _read_plain_wav(path, sample_rate)
    if audio is None:
        audio = _decode_audio(path, sample_rate)
    if not np.all(np.isfinite(audio)):
        raise MediaError(f"{path}: audio decodes to invalid samples")
    return audio


def _decode_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Any file's first audio track through ffmpeg, as mono float32 at ``sample_rate``."""
    if not probe(path).has_audio:
        raise MediaError(f"{path}: has no audio track")
    cmd = (
        ffmpeg.input(str(path))
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate, vn=None)
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd=ffmpeg_exe())
    )
    # Read the samples straight into one buffer (capture_output would hold them twice).
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        data = proc.stdout.read()
        returncode = proc.wait()
        errors.seek(0)
        message = _last_line(errors.read().decode(errors="replace"))
    if returncode != 0:
        if "does not contain any stream" in message or "matches no streams" in message:
            raise MediaError(f"{path}: has no audio track")
        raise ffmpeg_failure(path, "cannot decode audio", message)
    return np.frombuffer(data, dtype="<f4")


_PLAIN_SUBTYPES = {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}


def _read_plain_wav(path: Path, sample_rate: int) -> np.ndarray | None:
    """Samples of a mono PCM WAV already at ``sample_rate``, read directly; else None.

    Such files (our own TTS output, test audio) need no decoding, downmix or resampling, so the
    result equals ffmpeg's, without starting two processes (about 0.1 s per render).
    """
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError):
        return None
    if (
        info.format != "WAV"
        or info.subtype not in _PLAIN_SUBTYPES
        or info.channels != 1
        or info.samplerate != sample_rate
    ):
        return None
    try:
        audio, _ = soundfile.read(str(path), dtype="float32")
    except (RuntimeError, soundfile.LibsndfileError):
        return None  # let ffmpeg try, and name the problem if it fails too
    return audio


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio as 16-bit PCM WAV (the lingua franca every tool reads)."""
    path = Path(path)
    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path


# ---- untrusted audio: what a user sends ------------------------------------------------------

USER_AUDIO_CONTAINERS = {
    "ogg": "ogg",  # voice notes (Opus), Vorbis
    "mp3": "mp3",
    "mp4": "mov",  # m4a, mp4, mov, 3gp: one demuxer
    "mkv": "matroska",  # and webm
    "wav": "wav",
    "flac": "flac",
    "aac": "aac",  # raw ADTS
    "amr": "amr",
}
"""The containers a user's audio may be in (our name, also the inbox suffix -> ffmpeg's demuxer).

No playlist (hls), concat script, image sequence or anything else that can name another file:
a "song" that is an HLS playlist naming another chat's voice note must find nothing to open."""

UNTRUSTED_PROTOCOLS = "file,pipe"
DECODE_MARGIN_S = 2.0
"""Decoding a user's audio stops this far past the limit: enough to tell "too long" for sure."""
UNTRUSTED_TIMEOUT_S = 60.0
"""Longest one ffmpeg run on a user's file may take (decoding 5 minutes of Opus takes ~1 s)."""
_MEASURE_RATE = 8000
"""Samples per second when decoding only to measure: cheap, and exact to 1/8000 s."""


def sniff_container(head: bytes) -> str | None:
    """The container of a file from its first bytes (a key of :data:`USER_AUDIO_CONTAINERS`),
    or None. The sender's file name and MIME type are never asked: both are the sender's words."""
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "mkv"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 are ADTS (AAC), anything else MPEG layer 1-3
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    return None


def untrusted_input_args(
    path: str | os.PathLike, container: str, *, max_seconds: float | None = None
) -> list[str]:
    """ffmpeg's input options for a user's file: the one demuxer its bytes showed, local files
    only, and at most ``max_seconds`` read from it.

    Raises
    ------
    MediaError
        ``container`` is not one of :data:`USER_AUDIO_CONTAINERS`.
    """
    demuxer = USER_AUDIO_CONTAINERS.get(container)
    if demuxer is None:
        raise MediaError(f"{path}: {container!r} is not an audio container accepted from users")
    args = ["-protocol_whitelist", UNTRUSTED_PROTOCOLS, "-format_whitelist", demuxer, "-f", demuxer]
    if max_seconds is not None:
        args += ["-t", f"{max_seconds:.3f}"]
    return [*args, "-i", str(path)]


USER_VIDEO_CONTAINERS = {"mp4": "mov", "mkv": "matroska"}
"""The containers a user's video may be in: Telegram's video notes and videos are MP4; WebM too."""


def remux_untrusted_video(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_seconds: float,
    timeout_s: float = UNTRUSTED_TIMEOUT_S,
) -> Path:
    """A user's video copied (not re-encoded) into a plain MP4 we made, through the one demuxer its
    bytes showed, local files only, at most ``max_seconds`` of it: everything after reads our
    copy, never the user's file (which could be a playlist naming other files or URLs).

    Raises
    ------
    MediaError
        Not MP4 or Matroska/WebM, no video track, unreadable, or ffmpeg took too long.
    """
    path, out = Path(path), Path(out)
    with open(path, "rb") as handle:
        container = sniff_container(handle.read(64))
    demuxer = USER_VIDEO_CONTAINERS.get(container or "")
    if demuxer is None:
        raise MediaError(f"{path.name}: not a video I accept (send an MP4 video or a round video message)")
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-protocol_whitelist",
        UNTRUSTED_PROTOCOLS,
        "-format_whitelist",
        demuxer,
        "-f",
        demuxer,
        "-t",
        f"{max_seconds:.3f}",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-c",
        "copy",
        "-f",
        "mp4",
        str(out),
    ]
    run = run_bounded(cmd, timeout_s=timeout_s)
    if run.returncode != 0 or not out.exists():
        out.unlink(missing_ok=True)
        raise ffmpeg_failure(path, "reading the video", run.message or "no video track")
    return out


@dataclass(frozen=True)
class UntrustedAudio:
    """A user's audio file as measured by decoding it (never from what its metadata says)."""

    container: str
    duration_s: float
    """Decoded length; when ``too_long``, only a lower bound (decoding stopped at the limit)."""
    too_long: bool


def inspect_untrusted_audio(
    path: str | os.PathLike, *, max_seconds: float, timeout_s: float = UNTRUSTED_TIMEOUT_S
) -> UntrustedAudio:
    """Check a user's audio file: its container from its bytes, its length by decoding it.

    Decoding stops at ``max_seconds`` plus :data:`DECODE_MARGIN_S` and the samples are counted,
    not kept, so an hour of FLAC silence costs a second and no memory.

    Raises
    ------
    MediaError
        Not an accepted container, no audio track, undecodable, or ffmpeg took too long.
    StorageError
        The machine failed while reading it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    container = sniff_container(head)
    if container is None:
        raise MediaError(
            f"{path}: not an audio file I accept (ogg, mp3, m4a/mp4, webm/mkv, wav, flac, aac, amr)"
        )
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        *untrusted_input_args(path, container, max_seconds=max_seconds + DECODE_MARGIN_S),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
        "-ar",
        str(_MEASURE_RATE),
        "-f",
        "s16le",
        "pipe:",
    ]
    run = run_bounded(cmd, timeout_s=timeout_s)
    if run.returncode != 0:
        if "matches no streams" in run.message or "does not contain any stream" in run.message:
            raise MediaError(f"{path}: has no audio track")
        raise ffmpeg_failure(path, "cannot decode audio", run.message)
    duration = run.stdout_bytes / 2 / _MEASURE_RATE
    return UntrustedAudio(container, duration, duration > max_seconds)


@dataclass(frozen=True)
class Crop:
    """A square region of the source frame, in source pixels."""

    x: int
    y: int
    side: int

    @classmethod
    def parse(cls, text: str) -> Crop:
        """Parse ``x,y,w,h`` (w must equal h: characters are square)."""
        try:
            x, y, w, h = (int(part) for part in text.split(","))
        except ValueError:
            raise InputError(f"crop {text!r}: expected four integers x,y,w,h") from None
        if w != h or w <= 0 or x < 0 or y < 0:
            raise InputError(f"crop {text!r}: must be a square (w == h > 0) at x, y >= 0")
        return cls(x, y, w)


def iter_frames(
    path: str | os.PathLike,
    size: int,
    fps: int = 25,
    crop: Crop | None = None,
) -> Iterator[np.ndarray]:
    """Yield the video's frames as ``size`` x ``size`` BGR uint8 arrays at a constant ``fps``.

    The picture is cropped to ``crop`` (default: the centred square) and scaled; ffmpeg does the
    rate conversion, cropping and scaling in one pass so Python only sees final frames.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: has no video track")
    stream = ffmpeg.input(str(path)).video.filter("fps", fps=fps)
    if crop is None:
        stream = stream.filter("crop", "min(iw,ih)", "min(iw,ih)")
    else:
        if (
            info.width
            and info.height
            and (crop.x + crop.side > info.width or crop.y + crop.side > info.height)
        ):
            raise InputError(
                f"crop {crop.x},{crop.y},{crop.side},{crop.side} lies outside the "
                f"{info.width}x{info.height} video"
            )
        stream = stream.filter("crop", crop.side, crop.side, crop.x, crop.y)
    stream = stream.filter("scale", size, size, flags="bicubic")
    cmd = (
        stream.output("pipe:", format="rawvideo", pix_fmt="bgr24")
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd=ffmpeg_exe())
    )
    frame_bytes = size * size * 3
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, bufsize=frame_bytes * 4)
        assert proc.stdout is not None
        try:
            while True:
                buffer = proc.stdout.read(frame_bytes)
                if len(buffer) < frame_bytes:
                    break
                yield np.frombuffer(buffer, dtype=np.uint8).reshape(size, size, 3)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            returncode = proc.wait()
        if returncode not in (0, -9):
            errors.seek(0)
            raise ffmpeg_failure(
                path, "cannot decode video", _last_line(errors.read().decode(errors="replace"))
            )


def sample_frames(
    path: str | os.PathLike, *, count: int, seconds: float, scale: float = 1.0
) -> list[np.ndarray]:
    """``count`` frames spread over the first ``seconds`` of the video, whole (not cropped),
    scaled by ``scale``: what framing looks at to find the face."""
    path = Path(path)
    info = probe(path)
    if not info.has_video or not info.width or not info.height:
        raise MediaError(f"{path}: has no video track")
    width = max(2, int(info.width * scale) // 2 * 2)
    height = max(2, int(info.height * scale) // 2 * 2)
    span = min(seconds, info.duration or seconds)
    rate = max(count / max(span, 1e-3), 0.1)
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-t",
        f"{span:.3f}",
        "-i",
        str(path),
        "-vf",
        f"fps={rate:.4f},scale={width}:{height}",
        "-frames:v",
        str(count),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "pipe:",
    ]
    run = run_bounded(
        cmd, timeout_s=UNTRUSTED_TIMEOUT_S, keep_stdout=True, stdout_limit=width * height * 3 * count
    )
    if run.returncode not in (0, -9) or run.stdout is None:
        raise ffmpeg_failure(path, "cannot decode video", run.message)
    frame_bytes = width * height * 3
    data = run.stdout
    return [
        np.frombuffer(data[i : i + frame_bytes], np.uint8).reshape(height, width, 3)
        for i in range(0, len(data) - frame_bytes + 1, frame_bytes)
    ]


@dataclass(frozen=True)
class EncodeSettings:
    """H.264 + AAC settings; ``veryfast``/23 is a good size-for-speed trade for faces."""

    preset: str = "veryfast"
    crf: int = 23
    audio_bitrate: str = "96k"
    threads: int = 0  # 0: x264 decides
    # Diamond motion search: faces move little between frames. Measured on a rendered minute (one
    # core, medians of 5): 4.5 % less encoder time, SSIM within 0.05 dB, 0.5 % more bytes.
    # ("subme=1" saves 27 % for 13 % more bytes, but leaves the morphs a share of the render
    # beyond the engine's budget of 1.3x the bare decode + encode floor.)
    x264_params: str = "me=dia"
    aac_coder: str = "fast"  # ffmpeg's cheaper search; its authors find it better than twoloop at 96k+


class VideoEncoder:
    """Stream BGR frames (and one audio file) into an mp4, written atomically.

    Frames go to ffmpeg as raw I420 through a pipe (converting in OpenCV is cheaper than in
    swscale); the result is written to a temporary file beside ``path`` and renamed only after
    ffmpeg succeeded, so a crash or an exception never leaves a partial video behind.

    Use as a context manager::

        with VideoEncoder("out.mp4", size=512, audio_path="voice.ogg") as encoder:
            for frame in frames:
                encoder.write(frame)

    Audio produced on the fly (speech synthesised sentence by sentence) goes in through a second
    pipe instead: pass ``audio_rate`` and call :meth:`write_audio` with mono float samples. A
    thread feeds that pipe, so ffmpeg can take audio and video in whatever order it needs them.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        size: int,
        fps: int = 25,
        audio_path: str | os.PathLike | None = None,
        settings: EncodeSettings = EncodeSettings(),
        audio_rate: int | None = None,
    ) -> None:
        if size % 2:
            raise InputError(f"video size {size} must be even for yuv420p")
        if audio_path is not None and audio_rate is not None:
            raise ValueError("give audio_path or audio_rate, not both")
        self.path = Path(path)
        self.size = size
        self.fps = fps
        self.audio_path = Path(audio_path) if audio_path is not None else None
        self.audio_rate = audio_rate
        self.settings = settings
        self.frames_written = 0
        self.audio_samples_written = 0
        self._proc: subprocess.Popen | None = None
        self._tmp: Path | None = None
        self._errors: IO[bytes] | None = None
        self._audio_queue: queue.Queue[bytes | None] | None = None
        self._audio_thread: threading.Thread | None = None
        self._audio_fd: int | None = None

    def __enter__(self) -> VideoEncoder:
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            handle, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part.mp4", dir=directory)
            os.close(handle)
        except OSError as error:
            raise InputError(f"cannot write {self.path}: {error.strerror}") from None
        self._tmp = Path(tmp)
        os.chmod(self._tmp, default_file_mode())  # mkstemp makes 0600 whatever the umask
        video = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt="yuv420p", s=f"{self.size}x{self.size}", framerate=self.fps
        )
        streams = [video]
        audio_args = {}
        pass_fds: tuple[int, ...] = ()
        if self.audio_path is not None:
            streams.append(ffmpeg.input(str(self.audio_path)).audio)
            audio_args = {
                "acodec": "aac",
                "audio_bitrate": self.settings.audio_bitrate,
                "aac_coder": self.settings.aac_coder,
            }
        elif self.audio_rate is not None:
            read_fd, self._audio_fd = os.pipe()
            pass_fds = (read_fd,)
            streams.append(ffmpeg.input(f"pipe:{read_fd}", format="s16le", ar=self.audio_rate, ac=1))
            audio_args = {
                "acodec": "aac",
                "audio_bitrate": self.settings.audio_bitrate,
                "aac_coder": self.settings.aac_coder,
            }
        video_args = {
            "vcodec": "libx264",
            "preset": self.settings.preset,
            "crf": self.settings.crf,
            "pix_fmt": "yuv420p",
            "movflags": "+faststart",
            "format": "mp4",
        }
        if self.settings.threads:
            video_args["threads"] = self.settings.threads
        if self.settings.x264_params:
            video_args["x264-params"] = self.settings.x264_params
        cmd = (
            ffmpeg.output(*streams, str(self._tmp), **video_args, **audio_args)
            .global_args("-loglevel", "error")
            .overwrite_output()
            .compile(cmd=ffmpeg_exe())
        )
        self._errors = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._errors, pass_fds=pass_fds)
        if pass_fds:
            os.close(pass_fds[0])
            self._audio_queue = queue.Queue(maxsize=64)
            self._audio_thread = threading.Thread(target=self._feed_audio, name="audio-pipe", daemon=True)
            self._audio_thread.start()
        return self

    def _feed_audio(self) -> None:
        assert self._audio_queue is not None and self._audio_fd is not None
        with open(self._audio_fd, "wb", closefd=True) as pipe:
            while (chunk := self._audio_queue.get()) is not None:
                try:
                    pipe.write(chunk)
                except (BrokenPipeError, ValueError):
                    while self._audio_queue.get() is not None:  # ffmpeg is gone: drain and stop
                        pass
                    return

    def write_audio(self, samples: np.ndarray) -> None:
        """Append mono float samples (at ``audio_rate``) to the streamed audio track."""
        assert self._audio_queue is not None, "write_audio needs audio_rate"
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
        self._audio_queue.put(pcm.tobytes())
        self.audio_samples_written += len(pcm)

    def _close_audio(self) -> None:
        if self._audio_queue is not None and self._audio_thread is not None:
            self._audio_queue.put(None)
            self._audio_thread.join()
            self._audio_queue = None

    def write(self, frame: np.ndarray) -> None:
        """Append one frame: BGR uint8 ``(size, size, 3)``, or planar I420 ``(size * 3 / 2, size)``."""
        assert self._proc is not None and self._proc.stdin is not None, (
            "use VideoEncoder as a context manager"
        )
        if frame.ndim == 2:
            if frame.shape != (self.size * 3 // 2, self.size):
                frame = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
        if frame.ndim == 3:
            if frame.shape != (self.size, self.size, 3):
                frame = cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_AREA)
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            raise MediaError(f"ffmpeg stopped while encoding {self.path}: {self._stderr()}") from None
        self.frames_written += 1

    def _stderr(self) -> str:
        if self._errors is None:
            return "no details"
        self._errors.seek(0)
        return _last_line(self._errors.read().decode(errors="replace"))

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._proc is not None and self._tmp is not None
        try:
            if exc_type is None:
                self._close_audio()
                assert self._proc.stdin is not None  # opened with stdin=PIPE
                try:
                    self._proc.stdin.close()
                except BrokenPipeError:
                    pass
                if self._proc.wait() != 0:
                    raise ffmpeg_failure(self.path, "ffmpeg failed to encode", self._stderr())
                if self.frames_written == 0:
                    raise MediaError(f"no frames to encode into {self.path}")
                os.replace(self._tmp, self.path)
                self._tmp = None
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._close_audio()
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            if self._errors is not None:
                self._errors.close()


SPEECH_TAKE, IDLE_TAKE = "speech.mp4", "idle.mp4"
"""What a character's recording is, as files in its folder: the speech take and the silent one."""

PERFORMED_IDLE_S = 12.0
"""The silent take of a performed character (drawn, or a puppet): long enough that pauses rarely
repeat a blink."""


def write_takes(
    folder: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    speech_frames: Iterable[np.ndarray],
    idle_frames: Iterable[np.ndarray],
    *,
    size: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, Path]:
    """Write a performed character's recording: ``speech.mp4`` (the frames with ``audio``) and
    ``idle.mp4`` (silent), as a person's recording would be. The drawn rig, the fox and the
    puppet all perform this way; only their frames differ.

    ``progress`` is called with 1 after each frame; it may raise (a cancellation): the take being
    written is then removed, as :class:`VideoEncoder` removes a take it did not finish.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    speech_path, idle_path = folder / SPEECH_TAKE, folder / IDLE_TAKE
    with tempfile.TemporaryDirectory(dir=folder, prefix=".takes-") as scratch:
        wav = write_wav(Path(scratch) / "speech.wav", audio, sample_rate)
        with VideoEncoder(speech_path, size, audio_path=wav) as encoder:
            for frame in speech_frames:
                encoder.write(frame)
                if progress:
                    progress(1)
    with VideoEncoder(idle_path, size) as encoder:
        for frame in idle_frames:
            encoder.write(frame)
            if progress:
                progress(1)
    return speech_path, idle_path
