"""FasterLivePortrait (FLP) on a GPU: the admin's picture animated by a reference performance.

FLP (github.com/warmshao/FasterLivePortrait) moves a source picture the way the face in a
driving video moves. A *reference performance* -- a real person, face centred in a square video,
reading the passages (speech) and sitting quietly (idle) -- drives the picture; the animated
videos, re-timed onto the reference's audio, are built into a library like any filmed character.

Two ways to reach FLP, both honouring its own contracts (read from its ``run.py`` and ``api.py``):

* ``cli``: ``python run.py --src_image PIC --dri_video DRIVING --cfg CFG`` in the FLP checkout
  (no ``--paste_back``: its picture-sized ``...-org.mp4`` is never used). It writes
  ``results/<YYYY-mm-dd-HHMMSS>/<pic>-<driving>-crop.mp4`` (1024 x 512: the driving frame LEFT,
  the animated 512 x 512 crop RIGHT, mp4v, at ``int(fps)``), ``...-org.mp4``, ``-audio`` copies
  when the driving video has sound (so it is sent silent), and a motion ``.pkl``. Files are
  named after the inputs, so each run gets uniquely named inputs. A config with
  ``flag_crop_driving_video: true`` is refused (see below).
* ``http``: ``POST {url}/predict/`` (FLP's ``api.py``, port 9871 by default) with the multipart
  files ``source_image`` and ``driving_video`` and *every* form flag it declares (all are
  required there); the reply is a zip of that run's results folder. An empty zip means FLP
  found no face in the picture (``api.py`` logs it and returns what it has: nothing). Uploads
  carry this run's unique names (FLP saves them in a folder named to the second). FLP's port
  opens only after it has loaded every model, minutes after its start: until then the worker
  waits and tries again (up to ``start_wait_s``) instead of failing the job.

What both have in common, and why :func:`retime` exists: FLP *skips* driving frames in which it
finds no face, so its output can be shorter than the driving video, and it writes at the
driving rate truncated to an integer. Lost frames shift everything after them, which would
ruin lip sync. The left half of the crop video is the driving frame itself (FLP resizes the
whole frame when ``flag_crop_driving_video`` is off, which is the config default and what we
ask for over HTTP), so :func:`animate` finds which driving frame each output frame came from by
a monotone alignment of thumbnails, and stores that beside the animated video
(``<video>.frames.json``). :func:`retime` then puts every frame back at its driving time, at
25 fps, under the driving audio -- or refuses when too many were lost.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from ..errors import InputError, MediaError
from ..features import FPS
from ..media import EncodeSettings, VideoEncoder, ffmpeg_exe, ffmpeg_failure, probe, run_bounded
from .picture import detect_face, face_detector

log = logging.getLogger(__name__)

FLP_SIZE = 512
NOT_UP_YET = (TimeoutError, ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected)
"""What a FasterLivePortrait server still starting answers a connection with."""
"""FLP's animated crop is always 512 x 512."""
REFERENCE_MIN_SIDE = 128
REFERENCE_SPEECH_S = (4.0, 1200.0)
REFERENCE_IDLE_S = (2.0, 600.0)
CROP_SUFFIX = "-crop.mp4"
HTTP_FORM = {
    # FLP api.py declares every one of these as a required Form field. Values are its own
    # LivePortraitParams defaults except: human model (flag_is_animal false), and the driving
    # frame used whole (flag_crop_driving_video_input false): the reference is already a
    # face-centred square, and the crop video's left half must stay the driving frame.
    "flag_is_animal": "false",
    "flag_pickle": "false",
    "flag_relative_input": "true",
    "flag_do_crop_input": "true",
    "flag_remap_input": "true",
    "driving_multiplier": "1.0",
    "flag_stitching": "true",
    "flag_crop_driving_video_input": "false",
    "flag_video_editing_head_rotation": "false",
    "scale": "2.3",
    "vx_ratio": "0.0",
    "vy_ratio": "-0.125",
    "scale_crop_driving_video": "2.2",
    "vx_ratio_crop_driving_video": "0.0",
    "vy_ratio_crop_driving_video": "-0.1",
    "driving_smooth_observation_variance": "1e-7",
}
_THUMB = 24
MAX_REPLY_BYTES = 1 << 30
"""The most of FLP's HTTP reply we read: minutes of 512 px video are tens of MB."""
MAX_ZIP_MEMBER_BYTES = 1 << 30
MAX_ZIP_RATIO = 20
"""An mp4 does not compress: a member that inflates 20-fold is a zip bomb, not a video."""


class _TooBig(Exception):
    pass


def copy_capped(source, out, limit: int) -> int:  # noqa: ANN001 -- any readable and writable file
    """Copy at most ``limit`` bytes; raises :class:`_TooBig` instead of copying more."""
    total = 0
    while chunk := source.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise _TooBig(f"more than {limit} bytes")
        out.write(chunk)
    return total


_NO_FACE = "FasterLivePortrait found no face in the picture; send a picture with a clear, frontal face"


@dataclass(frozen=True)
class FlpConfig:
    """How to reach FasterLivePortrait.

    Parameters
    ----------
    mode
        ``"cli"`` (run ``run.py`` in ``checkout``) or ``"http"`` (its ``api.py`` at ``url``).
    checkout
        The FLP repository (cli), where ``run.py``, ``configs/`` and ``results/`` are.
    python
        The interpreter of FLP's environment (cli).
    cfg
        FLP's inference config, relative to the checkout (cli).
    url
        Base URL of the FLP API server (http), e.g. ``http://flp:9871``.
    timeout_s
        Longest one animation may take.
    max_lost_fraction
        Most driving frames FLP may lose (no face found) before the result is refused.
    start_wait_s
        http: how long to wait for FLP's port to open (it loads its models first).
    """

    mode: str
    checkout: Path | None = None
    python: str = "python"
    cfg: str = "configs/trt_infer.yaml"
    url: str | None = None
    timeout_s: float = 3600
    max_lost_fraction: float = 0.05
    start_wait_s: float = 900
    """http: how long to wait for FLP's port to open (it loads its models first)."""

    def __post_init__(self) -> None:
        if self.mode not in ("cli", "http"):
            raise InputError(f"FLP mode {self.mode!r} must be 'cli' or 'http'")
        if self.mode == "cli" and (self.checkout is None or not (Path(self.checkout) / "run.py").is_file()):
            raise InputError(
                f"FLP checkout {self.checkout} has no run.py; set it to the FasterLivePortrait repository"
            )
        if self.mode == "cli":
            assert self.checkout is not None  # checked just above
            _check_cli_config(Path(self.checkout) / self.cfg)
        parts = urlsplit(self.url or "")
        if self.mode == "http" and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise InputError(f"FLP url {self.url!r} must be an http(s) URL such as http://flp:9871")
        if not self.timeout_s > 0 or not 0 <= self.max_lost_fraction < 1:
            raise InputError("FLP timeout must be positive and max_lost_fraction between 0 and 1")


_CROP_DRIVING = re.compile(r"^\s*flag_crop_driving_video\s*:\s*(\S+)", re.MULTILINE)


def _check_cli_config(path: Path) -> None:
    """Refuse an FLP config that crops the driving video: the crop video's left half must be the
    whole driving frame, which is how its frames are matched to the reference (:func:`align`).
    One flag of a YAML file, so one pattern, not a YAML parser."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read FLP's config {path}: {error.strerror or error}") from None
    match = _CROP_DRIVING.search(text)
    if match and match.group(1).strip("'\"").lower() in ("true", "yes", "on", "1"):
        raise InputError(
            f"FLP's config {path} sets flag_crop_driving_video: true; set it to false "
            "(the reference is framed already, and its frames are matched whole)"
        )


class _Cancelled(Exception):
    """Raised inside this module when ``cancelled()`` says so; make.py turns it into its error."""


# ---- reference performance ------------------------------------------------------------------


def _read_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video as stored, decoded by OpenCV: the same decoder and count FLP uses."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise MediaError(f"{path.name}: cannot open the video")
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def _fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    if not math.isfinite(fps) or fps <= 0:
        info = probe(path)
        fps = info.fps or 0.0
    if fps <= 0:
        raise MediaError(f"{path.name}: the video does not say its frame rate")
    return fps


def validate_reference(speech_video: Path, idle_video: Path) -> None:
    """Check a reference performance before a GPU spends minutes on it.

    Both videos must be square (FLP animates a square crop and the alignment reads the whole
    driving frame), at least 128 px, of sane length (speech 4 s .. 20 min, idle 2 s .. 10 min);
    the speech video must carry the voice. Where this OpenCV has a face detector (see
    :mod:`engine.makers.picture`), a frame of each must show a face near the centre.

    Raises
    ------
    InputError
        Naming the video and the problem.
    MediaError
        A file ffmpeg cannot read.
    """
    for role, path, (shortest, longest) in (
        ("speech", Path(speech_video), REFERENCE_SPEECH_S),
        ("idle", Path(idle_video), REFERENCE_IDLE_S),
    ):
        info = probe(path)
        name = f"the {role} reference {path.name}"
        if not info.has_video or not info.width or not info.height:
            raise InputError(f"{name} has no video")
        if abs(info.width - info.height) > 0.02 * max(info.width, info.height):
            raise InputError(f"{name} is {info.width}x{info.height}; it must be square with the face centred")
        if info.width < REFERENCE_MIN_SIDE:
            raise InputError(f"{name} is only {info.width} px; it must be at least {REFERENCE_MIN_SIDE} px")
        if role == "speech" and not info.has_audio:
            raise InputError(f"{name} has no sound; it must carry the voice it shows")
        if info.duration is None or not shortest <= info.duration <= longest:
            raise InputError(
                f"{name} lasts {info.duration or 0:.1f} s; it must last {shortest:.0f} s to "
                f"{longest / 60:.0f} min"
            )
        if face_detector() is None:
            continue
        capture = cv2.VideoCapture(str(path))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) // 3))
            ok, frame = capture.read()
        finally:
            capture.release()
        face = detect_face(frame) if ok else None
        if face is None:
            raise InputError(f"{name}: no face found in it")
        side = frame.shape[1]
        offset = math.hypot(face.x + face.w / 2 - side / 2, face.y + face.h / 2 - frame.shape[0] / 2)
        if offset > 0.2 * side or face.w < 0.2 * side:
            raise InputError(f"{name}: the face must be large and centred in the frame")


# ---- running FLP ----------------------------------------------------------------------------


def _link(source: Path, target: Path) -> Path:
    """A uniquely named link to ``source`` (FLP names its outputs after its inputs)."""
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def _silent_copy(source: Path, target: Path) -> Path:
    """The driving video without its sound (the frames copied as they are): given sound, FLP
    writes two more 10 Mbit/s copies with it into every reply, which we never use."""
    run = run_bounded(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(source),
            "-map",
            "0:v:0",
            "-c:v",
            "copy",
            "-an",
            str(target),
        ],
        timeout_s=300,
    )
    if run.returncode != 0:
        raise ffmpeg_failure(source, "copying the driving video", run.message)
    return target


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _run_cli(
    picture: Path, driving: Path, config: FlpConfig, work_dir: Path, cancelled: Callable[[], bool] | None
) -> Path:
    """Run FLP's run.py; returns its crop video, moved into ``work_dir``."""
    assert config.checkout is not None
    checkout = Path(config.checkout).resolve()
    log_path = work_dir / "flp.log"
    command = [
        config.python,
        "run.py",
        "--src_image",
        str(picture),
        "--dri_video",
        str(driving),
        "--cfg",
        config.cfg,
    ]  # no --paste_back: its -org.mp4 is never used
    log.info("running FLP: %s (in %s)", " ".join(command), checkout)
    deadline = time.monotonic() + config.timeout_s
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=checkout,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while True:
                try:
                    code = process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancelled is not None and cancelled():
                    raise _Cancelled()
                if time.monotonic() > deadline:
                    raise MediaError(
                        f"FasterLivePortrait took longer than {config.timeout_s:.0f} s and was stopped"
                    )
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            _collect(checkout, picture, driving, work_dir)
    tail = _tail(log_path)
    crop = work_dir / f"{picture.name}-{driving.name}{CROP_SUFFIX}"
    if code == 0 and crop.exists():
        return crop
    if any(line.startswith("no face in") and "driving frame" not in line for line in tail.splitlines()):
        raise InputError(_NO_FACE)  # run.py: "no face in <picture>! exit!", exit code 1
    last = tail.splitlines()[-1] if tail else "no output"
    raise MediaError(f"FasterLivePortrait failed (exit {code}): {last}")


def _collect(checkout: Path, picture: Path, driving: Path, work_dir: Path) -> None:
    """Move this run's crop video out of FLP's results folder and delete the rest of its files.

    FLP names every output after its inputs (``<pic>-<video>-crop.mp4``, ``-org.mp4``, the
    ``-audio`` copies, ``<video>.pkl``), and our inputs have unique names, so this run's files are
    told apart from any other's, even after a killed run.
    """
    stem = f"{picture.name}-{driving.name}"
    for path in sorted((checkout / "results").glob(f"*/{stem}*")) + sorted(
        (checkout / "results").glob(f"*/{driving.name}.pkl")
    ):
        if path.name == f"{stem}{CROP_SUFFIX}":
            shutil.move(str(path), work_dir / path.name)
        else:
            path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # not empty: another run's files


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, str, Path]], body: Path) -> str:
    """Write a multipart/form-data body to a file (videos can be large); returns its boundary."""
    boundary = uuid.uuid4().hex
    with open(body, "wb") as out:
        for name, value in fields.items():
            out.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for name, (filename, content_type, path) in files.items():
            out.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n".encode()
            )
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
            out.write(b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
    return boundary


READY_POLL_S = 5.0


def _wait_until_up(config: FlpConfig, cancelled: Callable[[], bool] | None) -> None:
    """Wait for FLP's server to answer ``GET /openapi.json`` (FastAPI's own page): a server
    still loading its models refuses connections, which is not a failure of this job."""
    assert config.url is not None
    url = urlsplit(config.url)
    connection_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    deadline = time.monotonic() + config.start_wait_s
    while True:
        assert url.hostname, "FlpConfig checks the URL has a host"
        connection = connection_type(url.hostname, url.port, timeout=10)
        try:
            connection.request("GET", url.path.rstrip("/") + "/openapi.json")
            connection.getresponse().read()
            return
        except NOT_UP_YET as error:
            if time.monotonic() > deadline:
                raise MediaError(
                    f"FasterLivePortrait at {config.url} did not come up in {config.start_wait_s:.0f} s: "
                    f"{error}"
                ) from None
            log.info("FLP at %s is not up yet (%s): waiting", config.url, error)
        except OSError:
            return  # something else (a DNS failure...): let the request say what it is
        finally:
            connection.close()
        for _ in range(int(READY_POLL_S / 0.5)):
            if cancelled is not None and cancelled():
                raise _Cancelled()
            time.sleep(0.5)


def _run_http(
    picture: Path, driving: Path, config: FlpConfig, work_dir: Path, cancelled: Callable[[], bool] | None
) -> Path:
    """POST to FLP's /predict/; returns the crop video taken out of the reply's zip."""
    assert config.url is not None
    url = urlsplit(config.url)
    connection_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    assert url.hostname, "FlpConfig checks the URL has a host"
    connection = connection_type(url.hostname, url.port, timeout=config.timeout_s)
    body = work_dir / "request.body"
    boundary = _multipart(
        HTTP_FORM,
        {
            # unique names: FLP saves uploads in a folder named to the second, by their file names
            "source_image": (picture.name, "application/octet-stream", picture),
            "driving_video": (driving.name, "video/mp4", driving),
        },
        body,
    )
    reply = work_dir / "reply.zip"
    outcome: dict[str, object] = {}

    def post() -> None:
        try:
            with open(body, "rb") as payload:
                connection.request(
                    "POST",
                    url.path.rstrip("/") + "/predict/",
                    body=payload,
                    headers={
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(body.stat().st_size),
                    },
                )
                response = connection.getresponse()
                outcome["status"] = response.status
                with open(reply, "wb") as out:
                    copy_capped(response, out, MAX_REPLY_BYTES)
        except BaseException as error:  # reported by the waiting thread
            outcome["error"] = error

    _wait_until_up(config, cancelled)
    log.info("posting to FLP at %s", config.url)
    thread = threading.Thread(target=post, name="flp-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + config.timeout_s
    try:
        while thread.is_alive():
            thread.join(0.5)
            if cancelled is not None and cancelled():
                raise _Cancelled()
            if time.monotonic() > deadline:
                raise MediaError(
                    f"FasterLivePortrait at {config.url} took longer than {config.timeout_s:.0f} s"
                )
    finally:
        if thread.is_alive() and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)  # unblocks the request thread
            except OSError:
                pass
        connection.close()
        body.unlink(missing_ok=True)
    _check_reply(outcome, reply, config)
    return _crop_from_zip(reply, work_dir, config)


# ---- alignment and re-timing ----------------------------------------------------------------


def _check_reply(outcome: dict[str, object], reply: Path, config: FlpConfig) -> None:
    """Refuse a reply that failed, was too big, or was not HTTP 200 (what FLP said, in a line)."""
    if isinstance(outcome.get("error"), _TooBig):
        reply.unlink(missing_ok=True)
        raise MediaError(
            f"FasterLivePortrait at {config.url} answered with {MAX_REPLY_BYTES >> 20} MB or more: refused"
        )
    if "error" in outcome:
        error = outcome["error"]
        reply.unlink(missing_ok=True)
        raise MediaError(f"cannot reach FasterLivePortrait at {config.url}: {error}") from None
    status = outcome.get("status")
    if status != 200:
        detail = reply.read_bytes()[:200].decode(errors="replace").strip() if reply.exists() else ""
        raise MediaError(f"FasterLivePortrait at {config.url} answered HTTP {status}: {detail}")


def _crop_from_zip(reply: Path, work_dir: Path, config: FlpConfig) -> Path:
    """The crop video out of FLP's zip reply, every size checked before it is written."""
    try:
        with zipfile.ZipFile(reply) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(CROP_SUFFIX)]
            if not members:
                raise InputError(_NO_FACE)
            member = members[0]
            if member.file_size > MAX_ZIP_MEMBER_BYTES or member.file_size > MAX_ZIP_RATIO * max(
                member.compress_size, 1 << 16
            ):
                raise MediaError("FasterLivePortrait's reply holds an implausibly large video")
            crop = work_dir / f"http{CROP_SUFFIX}"
            with archive.open(member) as source, open(crop, "wb") as out:
                copy_capped(source, out, min(MAX_ZIP_MEMBER_BYTES, member.file_size))
    except zipfile.BadZipFile:
        raise MediaError(f"FasterLivePortrait at {config.url} did not answer with a zip") from None
    except _TooBig:
        raise MediaError("FasterLivePortrait's reply holds a video larger than it says") from None
    finally:
        reply.unlink(missing_ok=True)
    return crop


def _thumb(frame: np.ndarray) -> np.ndarray:
    """A tiny grey copy, normalised: robust to FLP's resizing and to two rounds of compression."""
    grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32).ravel()
    return (grey - grey.mean()) / (grey.std() + 1.0)


def align(kept: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """Which driving frame each kept frame is: the cheapest strictly increasing assignment.

    Parameters
    ----------
    kept
        ``(M, D)`` thumbnails of FLP's driving crops (the frames it did not skip).
    driving
        ``(N, D)`` thumbnails of the driving video, ``N >= M``.

    Returns
    -------
    numpy.ndarray
        ``M`` increasing driving frame indices.

    Notes
    -----
    Kept frame ``j`` can only be driving frame ``j + s`` where ``s`` (frames skipped so far) runs
    from 0 to ``N - M`` and never decreases, so dynamic programming over ``(j, s)`` costs
    ``O(M (N - M + 1))``; the cost of a pair is the squared thumbnail difference.
    """
    m, n = len(kept), len(driving)
    lost = n - m
    if lost == 0:
        return np.arange(m)
    cost = np.empty((m, lost + 1), np.float32)
    for skip in range(lost + 1):
        cost[:, skip] = np.sum((kept - driving[skip : skip + m]) ** 2, axis=1)
    total = cost[0].copy()
    choices = np.empty((m, lost + 1), np.int32)
    choices[0] = np.arange(lost + 1)
    for j in range(1, m):
        best = np.minimum.accumulate(total)
        where = np.arange(lost + 1)
        # index of the running minimum (the last place it was reached)
        arg = np.maximum.accumulate(np.where(total <= best, where, 0))
        total = best + cost[j]
        choices[j] = arg
    skips = np.empty(m, np.int64)
    skips[-1] = int(np.argmin(total))
    for j in range(m - 1, 0, -1):
        skips[j - 1] = choices[j][skips[j]]
    return np.arange(m) + skips


def _frames_path(animated: Path) -> Path:
    return animated.with_name(animated.name + ".frames.json")


def _split_crop(crop: Path, driving: Path, animated: Path) -> Path:
    """Keep the crop video's right half; find each frame's driving index from its left half."""
    driving_thumbs = np.array([_thumb(frame) for frame in _read_frames(driving)])
    if len(driving_thumbs) == 0:
        raise MediaError(f"{driving.name}: no frames")
    kept_thumbs = []
    with VideoEncoder(animated, FLP_SIZE, FPS, settings=EncodeSettings(crf=16)) as encoder:
        for frame in _read_frames(crop):
            height, width = frame.shape[:2]
            if width != 2 * height:
                raise MediaError(
                    f"FasterLivePortrait's crop video is {width}x{height}, not two squares side by side"
                )
            kept_thumbs.append(_thumb(frame[:, :height]))
            right = frame[:, height:]
            if height != FLP_SIZE:
                right = cv2.resize(right, (FLP_SIZE, FLP_SIZE), interpolation=cv2.INTER_AREA)
            encoder.write(right)
        if not kept_thumbs:
            raise InputError("FasterLivePortrait found no face in any frame of the reference video")
    if len(kept_thumbs) > len(driving_thumbs):
        raise MediaError(
            f"FasterLivePortrait returned {len(kept_thumbs)} frames for {len(driving_thumbs)} driving frames"
        )
    indices = align(np.array(kept_thumbs), driving_thumbs)
    _frames_path(animated).write_text(
        json.dumps(
            {
                "driving_frames": len(driving_thumbs),
                "driving_fps": _fps(driving),
                "kept": indices.tolist(),
            }
        )
    )
    log.info("FLP animated %d of %d driving frames of %s", len(indices), len(driving_thumbs), driving.name)
    return animated


def animate(
    picture: Path,
    driving_video: Path,
    config: FlpConfig,
    work_dir: Path,
    *,
    cancelled: Callable[[], bool] | None = None,
) -> Path:
    """Animate ``picture`` with the motion of ``driving_video`` on FLP.

    Parameters
    ----------
    picture
        The character's picture.
    driving_video
        A reference performance (see :func:`validate_reference`).
    config
        How to reach FLP.
    work_dir
        Scratch folder; the result is written here.
    cancelled
        Polled about twice a second while FLP runs; when it returns True the run is stopped
        (the CLI process is killed, the HTTP connection shut) and ``_Cancelled`` is raised.

    Returns
    -------
    Path
        ``<work_dir>/<driving stem>-animated.mp4``: 512 x 512, no audio, one frame per frame FLP
        kept, with ``.frames.json`` beside it saying which driving frame each one is.

    Raises
    ------
    InputError
        FLP found no face in the picture (or in any driving frame).
    MediaError
        FLP failed, timed out, is unreachable, or answered nonsense.
    """
    picture, driving_video, work_dir = Path(picture), Path(driving_video), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".flp-") as scratch:
        scratch_dir = Path(scratch)
        source = _link(picture, scratch_dir / f"g{token}{picture.suffix.lower()}")
        driving = _silent_copy(driving_video, scratch_dir / f"g{token}-{driving_video.stem}.mp4")
        runner = _run_cli if config.mode == "cli" else _run_http
        crop = runner(source, driving, config, scratch_dir, cancelled)
        animated = work_dir / f"{driving_video.stem}-animated.mp4"
        return _split_crop(crop, driving_video, animated)


def retime(animated: Path, driving_video: Path, out: Path, max_lost_fraction: float = 0.05) -> Path:
    """Put FLP's frames back on the driving video's timeline, at 25 fps, under its audio.

    Each output frame at time ``t`` shows the animated frame made from the driving frame shown
    at ``t``; a driving frame FLP skipped is stood in for by the nearest kept one. Which driving
    frame each animated frame is comes from ``<animated>.frames.json`` (written by
    :func:`animate`); without it, the animated video is taken to be the driving video's last
    frames (FLP skips frames only until it first finds a face).

    Parameters
    ----------
    animated
        FLP's animated video (from :func:`animate`).
    driving_video
        The driving video it was made from: gives the timeline and the audio (if it has any).
    out
        The re-timed mp4, written atomically.
    max_lost_fraction
        Refuse when FLP lost more than this share of the driving frames.

    Raises
    ------
    MediaError
        Too many frames lost, or unreadable videos.
    """
    animated, driving_video, out = Path(animated), Path(driving_video), Path(out)
    sidecar = _frames_path(animated)
    if sidecar.is_file():
        frames = json.loads(sidecar.read_text())
        total, driving_fps, kept = (
            int(frames["driving_frames"]),
            float(frames["driving_fps"]),
            np.array(frames["kept"], np.int64),
        )
    else:
        total = sum(1 for _ in _read_frames(driving_video))
        driving_fps = _fps(driving_video)
        count = sum(1 for _ in _read_frames(animated))
        kept = np.arange(total - count, total)
    if total == 0 or len(kept) == 0:
        raise MediaError(f"{animated.name}: no frames to re-time")
    lost = total - len(kept)
    if lost > max_lost_fraction * total:
        raise MediaError(
            f"FasterLivePortrait lost {lost} of {total} frames ({lost / total:.0%}) where it found no face; "
            f"at most {max_lost_fraction:.0%} may be lost: use a reference where the face is always clearly "
            "visible"
        )
    n_out = max(1, int(round(total / driving_fps * FPS)))
    wanted = np.minimum(total - 1, np.round(np.arange(n_out) * driving_fps / FPS).astype(np.int64))
    # nearest kept driving frame for each wanted one
    right = np.clip(np.searchsorted(kept, wanted), 0, len(kept) - 1)
    left = np.clip(right - 1, 0, len(kept) - 1)
    pick = np.where(np.abs(kept[left] - wanted) <= np.abs(kept[right] - wanted), left, right)
    has_audio = probe(driving_video).has_audio
    frames = _read_frames(animated)
    current: np.ndarray | None = None
    position = -1
    with VideoEncoder(out, FLP_SIZE, FPS, audio_path=driving_video if has_audio else None) as encoder:
        for index in pick:
            while position < index:
                current = next(frames, None)
                if current is None:
                    raise MediaError(f"{animated.name} has fewer frames than {sidecar.name} says")
                position += 1
            assert current is not None  # pick starts at 0 or later: a frame was read above
            encoder.write(current)
    log.info(
        "re-timed %s onto %s: %d frames at %d fps, %d lost",
        animated.name,
        driving_video.name,
        n_out,
        FPS,
        lost,
    )
    return out
