"""The pieces of the hostile-input defences, one at a time: the untrusted-media checks, bounded
runs, the admission cap, the per-chat guard, retention, log redaction, file modes, and the caps
on what FasterLivePortrait and a made character's tar may hold."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from bot.character_store import MAX_MEMBERS, CharacterStore, PublishError
from bot.guard import ChatGuard
from bot.logs import RedactSecrets
from bot.retention import forget_old
from bot.settings import Settings
from bot.store import Store
from engine.errors import InputError, MediaError, StorageError
from engine.files import default_file_mode
from engine.media import ffmpeg_exe, ffmpeg_failure, inspect_untrusted_audio, run_bounded, sniff_container
from tests.fake_telegram import make_ogg_opus


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


# -- untrusted media -------------------------------------------------------------------------------


def test_the_container_comes_from_the_bytes() -> None:
    assert sniff_container(make_ogg_opus(0.5)) == "ogg"
    assert sniff_container(b"fLaC\0\0\0\x22") == "flac"
    assert sniff_container(b"RIFF\x24\0\0\0WAVEfmt ") == "wav"
    assert sniff_container(b"\0\0\0\x20ftypM4A ") == "mp4"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x01") == "mkv"
    assert sniff_container(b"ID3\x04\0") == "mp3" and sniff_container(b"\xff\xfb\x90\x64") == "mp3"
    assert sniff_container(b"\xff\xf1\x50\x80") == "aac"
    assert sniff_container(b"#!AMR\n") == "amr"
    for hostile in (b"#EXTM3U\n#EXTINF:1,\na.ogg\n", b"ffconcat version 1.0\n", b"", b"\x89PNG\r\n\x1a\n"):
        assert sniff_container(hostile) is None


def test_untrusted_audio_is_measured_by_decoding_and_opens_no_other_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.ogg"
    secret.write_bytes(make_ogg_opus(3.0))
    forged = tmp_path / "forged.mp3"
    _ffmpeg("-f", "lavfi", "-i", "sine=d=40", "-metadata", "title=Duration: 00:00:02.00, start", str(forged))
    hour = tmp_path / "hour.flac"
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "3600", str(hour))
    started = time.monotonic()
    assert inspect_untrusted_audio(secret, max_seconds=10).duration_s == pytest.approx(3.0, abs=0.05)
    for path in (forged, hour):
        measured = inspect_untrusted_audio(path, max_seconds=10)
        assert measured.too_long and measured.duration_s == pytest.approx(12.0, abs=0.1)
    assert time.monotonic() - started < 10, "decoding must stop at the limit"
    playlist = tmp_path / "song.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{secret}\n#EXT-X-ENDLIST\n")
    disguised = tmp_path / "voice.ogg"  # an OGG's magic, then a playlist: the ogg demuxer finds no audio
    disguised.write_bytes(b"OggS" + playlist.read_bytes())
    for path in (playlist, disguised):
        with pytest.raises(MediaError):
            inspect_untrusted_audio(path, max_seconds=10)


def test_a_bounded_run_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(MediaError, match="longer than"):
        run_bounded(["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"], timeout_s=0.5)
    assert time.monotonic() - started < 5
    child = int(marker.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the background child outlived the timeout"
        time.sleep(0.05)


def test_a_full_disk_is_a_storage_error_not_bad_input() -> None:
    run = run_bounded(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-f",
            "wav",
            "/dev/full",
        ],
        timeout_s=30,
    )
    assert run.returncode != 0
    error = ffmpeg_failure("/dev/full", "cannot write", run.message)
    assert (
        isinstance(error, StorageError) and isinstance(error, OSError) and not isinstance(error, MediaError)
    )
    assert isinstance(
        ffmpeg_failure("x.ogg", "cannot decode", "Invalid data found when processing input"), MediaError
    )


def test_files_keep_to_the_umask() -> None:
    old = os.umask(0o077)
    try:
        assert default_file_mode() == 0o600
        os.umask(0o022)
        assert default_file_mode() == 0o644
    finally:
        os.umask(old)


# -- the bot's pieces ------------------------------------------------------------------------------


def _row(chat: int, message: int, kind: str = "voice") -> dict[str, object]:
    return dict(
        chat_id=chat, kind=kind, input="FILE", incoming_message_id=message, character="tester", language="en"
    )


def test_admission_counts_and_reserves_in_one_step(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    outcomes = [
        store.admit([_row(1, n)], max_per_chat=3, max_total=5, status="fetching").refused for n in range(10)
    ]
    assert outcomes == [None] * 3 + ["chat_full"] * 7
    assert store.admit([_row(1, 0)], max_per_chat=3).refused == "duplicate"
    assert [store.admit([_row(2, n)], max_per_chat=3, max_total=5).refused for n in range(3)] == [
        None,
        None,
        "busy",
    ]
    assert [r.status for r in store.active(1)] == ["fetching"] * 3


def test_the_guard_limits_each_chat_and_refuses_at_most_once_per_interval() -> None:
    now = [1000.0]
    settings = Settings(
        _env_file=None, chat_rate_messages=3, chat_rate_window_s=60, refusal_interval_s=30, admins=[9]
    )
    guard = ChatGuard(settings, clock=lambda: now[0])
    assert [guard.take(1) for _ in range(5)] == [True, True, True, False, False]
    assert guard.take(2), "another chat has its own bucket"
    now[0] += 20  # a third of the window: one message more
    assert [guard.take(1) for _ in range(2)] == [True, False]
    assert guard.may_refuse(1) and not guard.may_refuse(1)
    now[0] += 31
    assert guard.may_refuse(1)
    assert 9 in guard.exempt and not guard.allow_groups


def test_retention_forgets_finished_requests_and_their_files_and_keeps_counts(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", retention_days=7)
    store = Store(settings.state_path)
    settings.inbox_dir.mkdir(parents=True)
    settings.results_dir.mkdir(parents=True)
    voice = settings.inbox_dir / "1-abc.ogg"
    video = settings.results_dir / "1.mp4"
    stray = settings.inbox_dir / "crash-leftover.ogg"
    for path in (voice, video, stray):
        path.write_bytes(b"x")
    old, fresh = store.admit([_row(5, 1)]).requests[0], store.admit([_row(5, 2, "text")]).requests[0]
    _deliver(store, old.id, input_path=str(voice), result_path=str(video))
    store.transition(fresh.id, "received", "failed")
    week = 7 * 86400
    assert forget_old(settings, store, now=time.time() + week / 2) == 0, "nothing is old yet"
    os.utime(stray, (time.time() - week - 60,) * 2)
    assert forget_old(settings, store, now=time.time() + week + 60) == 2
    assert store.active() == [] and store.with_status("sent", "failed") == []
    assert store.kept_counts() == {("voice", "sent"): 1, ("text", "failed"): 1}
    assert not voice.exists() and not video.exists() and not stray.exists()


def test_a_story_is_forgotten_only_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    parts = store.admit([{**_row(6, 1, "story"), "part": n, "parts": 2} for n in range(2)]).requests
    _deliver(store, parts[0].id)
    assert store.purge_finished(before=time.time() + 10) == []  # part 2 still owed
    _deliver(store, parts[1].id)
    assert len(store.purge_finished(before=time.time() + 10)) == 2


def test_the_token_is_redacted_from_messages_arguments_and_tracebacks() -> None:
    token = "123456:ABCdefSecretToken"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([token, "redispassword"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("Set Bot API URL: https://api.telegram.org/bot%s", token)
        try:
            raise RuntimeError(f"GET /bot{token}/getMe failed, redis://:redispassword@host")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert token not in output and "redispassword" not in output
    assert output.count("<redacted>") >= 3 and "RuntimeError" in output


def test_settings_name_their_secrets() -> None:
    settings = Settings(
        _env_file=None, telegram_bot_token="1:tok3n-value", redis_url="redis://:hunter22@r:6379/0"
    )
    assert set(settings.secrets()) == {"1:tok3n-value", "hunter22"}


def test_a_made_characters_tar_may_not_hold_too_many_files(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for n in range(MAX_MEMBERS + 1):
            info = tarfile.TarInfo(f"f{n}")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(PublishError, match="more than"):
        CharacterStore._unpack(buffer.getvalue(), tmp_path)


def test_a_deep_colour_picture_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    from engine.makers.picture import check_picture

    image = np.zeros((5000, 8000, 4), np.uint16)  # 40 MP, 16-bit RGBA: 320 MB decoded
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    del image
    assert path.stat().st_size < 1_000_000
    before = _peak_rss_mb()
    with pytest.raises(InputError, match="8 bytes a pixel"):
        check_picture(path)
    assert _peak_rss_mb() - before < 50


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- FasterLivePortrait's replies ------------------------------------------------------------------


def _serve(body: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Reply(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's name
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Reply)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_flp_replies_that_inflate_are_refused(tmp_path: Path) -> None:
    from engine.makers import flp

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"out/source--driving{flp.CROP_SUFFIX}", bytes(64 << 20))  # 64 MB of zeros in ~64 KB
    server, url = _serve(buffer.getvalue())
    picture, driving = tmp_path / "p.png", tmp_path / "d.mp4"
    picture.write_bytes(b"png")
    driving.write_bytes(b"mp4")
    try:
        config = flp.FlpConfig(mode="http", url=url, timeout_s=30)
        with pytest.raises(MediaError, match="implausibly large"):
            flp._run_http(picture, driving, config, tmp_path, None)
    finally:
        server.shutdown()
    assert not list(tmp_path.glob(f"*{flp.CROP_SUFFIX}")), "nothing of the bomb is written"


def test_flp_replies_are_capped_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.makers import flp

    monkeypatch.setattr(flp, "MAX_REPLY_BYTES", 1 << 20)
    server, url = _serve(bytes(3 << 20))
    picture, driving = tmp_path / "p.png", tmp_path / "d.mp4"
    picture.write_bytes(b"png")
    driving.write_bytes(b"mp4")
    try:
        with pytest.raises(MediaError, match="refused"):
            flp._run_http(picture, driving, flp.FlpConfig(mode="http", url=url, timeout_s=30), tmp_path, None)
    finally:
        server.shutdown()
    assert not (tmp_path / "reply.zip").exists()


def _deliver(store, request_id: int, **values) -> None:  # noqa: ANN001
    """Walk a request through its life to ``sent`` (the store refuses shortcuts)."""
    for source, target in (("received", "queued"), ("queued", "rendering"), ("rendering", "rendered")):
        assert store.transition(request_id, source, target)
    assert store.transition(request_id, "rendered", "sent", **values)
