"""New characters from one picture: picture checks, the CPU puppet, the FLP adapters, make_character.

FLP itself needs a GPU and weights; ``tests/flp_standin/`` honours its ``run.py`` and ``api.py``
contracts on a CPU, animating the picture from the synthetic rig's driving video, so lip sync can
be measured end to end. Pictures are the rig drawn with a closed mouth (so
:func:`engine.synthetic.measure_mouth` reads the puppet's mouth); sizes are small for speed.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import synthetic
from engine.characters import Catalogue
from engine.errors import InputError, MediaError
from engine.makers import picture as picture_module
from engine.makers.flp import FlpConfig, animate, retime, validate_reference
from engine.makers.make import STAGE_BUILD, STAGE_CPU, STAGE_GPU, STAGE_READY, CancelledError, make_character
from engine.makers.picture import Face, PictureInfo, check_picture, estimate_landmarks, face_detector
from engine.makers.puppet import Puppet, puppet_performance
from engine.media import iter_frames, probe, read_audio, write_wav
from engine.render import render
from engine.speech import VoiceSettings

STANDIN = Path(__file__).resolve().parent / "flp_standin"
SIDE = 256
# the rig's test face at 256 px: lips meet at (128, 184), eyes at (98, 114) and (158, 114)
MOUTH = (128.0, 184.0)
EYES = ((98.0, 114.0), (158.0, 114.0))


@pytest.fixture(scope="module")
def rig_picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "rig.png"
    cv2.imwrite(str(path), synthetic.draw_face(synthetic.FaceParams(), SIDE))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """A reference performance: the rig reading 6 s of synthetic speech, and 2.5 s of idle."""
    return synthetic.write_character_videos(
        tmp_path_factory.mktemp("reference"), seed=3, duration_s=6.0, size=SIDE, idle_s=2.5
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """An "FLP checkout" whose run.py is the stand-in."""
    folder = tmp_path_factory.mktemp("flp")
    (folder / "run.py").symlink_to(STANDIN / "run.py")
    (folder / "configs").mkdir()
    (folder / "configs" / "trt_infer.yaml").write_text("# the stand-in reads no config\n")
    return folder


@pytest.fixture(scope="module")
def flp_server(tmp_path_factory):
    """The stand-in API server, as its own process on a free port."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    home = tmp_path_factory.mktemp("flp-home")
    env = {**os.environ, "FLIP_PORT": str(port), "FLP_STANDIN_HOME": str(home)}
    env.pop("FLP_STANDIN_DROP", None)
    server = subprocess.Popen(
        [sys.executable, str(STANDIN / "api.py")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the stand-in FLP server did not start: {server.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


def lip_sync(video: Path, size: int) -> tuple[float, float, int]:
    """(r opening, r width, frames) of a rig video against the mouth its own audio implies."""
    audio = read_audio(video)
    measured = np.array([synthetic.measure_mouth(frame) for frame in iter_frames(video, size)])
    truth = synthetic.mouth_track(audio, 16_000, len(measured))
    return pearson(measured[:, 0], truth.opening), pearson(measured[:, 1], truth.width), len(measured)


# ---- check_picture ------------------------------------------------------------------------------


def test_good_pictures_are_accepted_in_every_format(tmp_path):
    face = synthetic.draw_face(synthetic.FaceParams(), SIDE)
    for name, image in [
        ("f.jpg", face),
        ("f.png", face),
        ("f.webp", face),
        ("alpha.png", cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)),
        ("grey.png", cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)),
    ]:
        cv2.imwrite(str(tmp_path / name), image)
        info = check_picture(tmp_path / name)
        assert (info.width, info.height) == (SIDE, SIDE)
        assert info.format == {"jpg": "jpeg"}.get(name.rsplit(".", 1)[1], name.rsplit(".", 1)[1])
    wide = np.full((300, 500, 3), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "wide.jpg"), wide)
    assert (check_picture(tmp_path / "wide.jpg").width, check_picture(tmp_path / "wide.jpg").height) == (
        500,
        300,
    )


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_bad_pictures_are_refused_with_one_friendly_line(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), synthetic.draw_face(synthetic.FaceParams(), SIDE))
    cases = {
        "text.jpg": (b"hello, this is not a picture at all" * 10, "not a picture"),
        "empty.png": (b"", "empty"),
        "gif.gif": (b"GIF89a" + b"\x00" * 100, "not a picture"),
        "damaged.png": (good.read_bytes()[:200] + b"\x00" * 300, "damaged"),
        "tiny.png": (cv2.imencode(".png", np.zeros((32, 32, 3), np.uint8))[1].tobytes(), "at least 64"),
    }
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=needle) as caught:
            check_picture(tmp_path / name)
        assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="too big; send one under"):
        check_picture(good, max_bytes=1000)
    with pytest.raises(InputError, match="missing"):
        check_picture(tmp_path / "nowhere.png")


def test_decompression_bombs_are_refused_from_the_header_without_decoding(tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a picture that should have been refused from its header")

    monkeypatch.setattr(picture_module.cv2, "imdecode", no_decoding)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(30000, 30000))
    with pytest.raises(InputError, match="30000x30000 pixels, too large"):
        check_picture(bomb)
    # a JPEG claiming the same, its frame header behind an APP segment the parser must skip
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 30000, 30000, 1) + b"\x01\x11\x00"
    (tmp_path / "bomb.jpg").write_bytes(b"\xff\xd8" + app0 + sof0 + b"\xff\xd9")
    with pytest.raises(InputError, match="30000x30000"):
        check_picture(tmp_path / "bomb.jpg")


def test_a_face_is_found_on_the_rig_when_this_opencv_has_a_detector(tmp_path):
    if face_detector() is None:
        pytest.skip(
            "no face detector: OpenCV 5 wheels ship no Haar cascades and no YuNet model "
            "(set GRAMOPHONE_FACE_MODEL to a YuNet .onnx); manual landmarks are tested below"
        )
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), synthetic.draw_face(synthetic.FaceParams(), 512))
    face = check_picture(path).face
    assert face is not None
    assert face.x < 196 < 316 < face.x + face.w and face.y < 228 < 368 < face.y + face.h


def test_landmarks_by_hand_or_from_a_face_box():
    info = PictureInfo(Path("p.png"), SIDE, SIDE, "png", None)
    both = estimate_landmarks(info, mouth=MOUTH, eyes=(EYES[1], EYES[0]))
    assert both.mouth == MOUTH and both.eyes == EYES and both.mouth_width == pytest.approx(0.78 * 60)
    eyes_only = estimate_landmarks(info, eyes=EYES)
    assert eyes_only.mouth == pytest.approx((128.0, 114.0 + 66.0))
    mouth_only = estimate_landmarks(info, mouth=MOUTH)
    assert all(eye[1] < MOUTH[1] for eye in mouth_only.eyes)
    boxed = estimate_landmarks(PictureInfo(Path("p.png"), SIDE, SIDE, "png", Face(60, 60, 136, 150)))
    assert boxed.eyes[0][1] < boxed.mouth[1] < 60 + 150 and 60 < boxed.mouth[0] < 196
    for kwargs, needle in [
        ({}, "no face found"),
        ({"mouth": (300.0, 10.0), "eyes": EYES}, "outside"),
        ({"mouth": (128.0, 50.0), "eyes": EYES}, "below the eyes"),
        ({"eyes": ((10.0, 10.0), (11.0, 10.0))}, "apart"),
    ]:
        with pytest.raises(InputError, match=needle):
            estimate_landmarks(info, **kwargs)


# ---- the puppet ---------------------------------------------------------------------------------


def test_the_puppet_mouth_follows_the_audio_and_the_idle_take_blinks(rig_picture, tmp_path):
    audio = synthetic.synth_speech(8.0, seed=21, sample_rate=16_000)
    landmarks = estimate_landmarks(check_picture(rig_picture), mouth=MOUTH, eyes=EYES)
    speech, idle = puppet_performance(
        rig_picture,
        landmarks,
        audio,
        16_000,
        tmp_path,
        size=SIDE,
        seed=4,
        idle_s=6.0,
        gap_bgr=synthetic.MOUTH_INTERIOR_BGR,
    )
    assert probe(speech).has_audio and not probe(idle).has_audio
    r_opening, r_width, frames = lip_sync(speech, SIDE)
    assert frames == 200
    assert r_opening > 0.9 and r_width > 0.6, (r_opening, r_width)
    idle_frames = np.array([frame for frame in iter_frames(idle, SIDE)])
    assert max(synthetic.measure_mouth(frame)[0] for frame in idle_frames) < 0.05  # the mouth stays closed
    whites = (idle_frames[:, 100:128, 84:112].min(axis=3) > 215).mean(axis=(1, 2))  # the white of the eye
    assert whites.max() > 0.1 and whites.min() < 0.2 * whites.max(), (
        whites.min(),
        whites.max(),
    )  # a blink covers it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idle.mp4", "speech.mp4"]


def test_the_puppet_is_fast_enough_for_long_passages():
    puppet = Puppet(
        synthetic.draw_face(synthetic.FaceParams(), 512),
        estimate_landmarks(
            PictureInfo(Path("p.png"), 512, 512, "png", None),
            mouth=(256.0, 368.0),
            eyes=((196.0, 228.0), (316.0, 228.0)),
        ),
        512,
    )
    poses = synthetic.performance_params(synthetic.synth_speech(4.0, seed=5), 16_000, seed=1)
    started = time.process_time()
    for pose in poses:
        puppet.frame(pose)
    per_frame = (time.process_time() - started) / len(poses)
    assert per_frame < 0.02  # about 7 ms on an idle core (benchmarks/make_character.py); loose for shared CI


# ---- make_character on the CPU ------------------------------------------------------------------


def test_make_character_on_the_cpu_loads_and_renders(rig_picture, tmp_path):
    reports: list[tuple[str, float]] = []
    folder = tmp_path / "characters" / "owl"
    made = make_character(
        rig_picture,
        folder,
        character_id="owl",
        name="Сова Owl",
        language="en",
        voice=VoiceSettings(voice="en-us+f3", rate=170),
        description='A wise "owl"',
        pitch_semitones=3.0,
        mouth=MOUTH,
        eyes=EYES,
        size=128,
        progress=lambda stage, fraction: reports.append((stage, fraction)),
    )
    assert made.path == "puppet" and made.folder == folder and made.info.size == 128
    assert made.info.idle_source == "idle-video" and made.info.speech_seconds > 30
    assert sorted(p.name for p in folder.iterdir()) == [
        "character.toml",
        "idle.mp4",
        "library.gchar",
        "portrait.png",
        "speech.mp4",
    ]
    catalogue = Catalogue(tmp_path / "characters")
    assert catalogue.problems == []
    owl = catalogue.get("owl")
    assert (owl.name, owl.description, owl.pitch_semitones) == ("Сова Owl", 'A wise "owl"', 3.0)
    assert owl.voice_for("en").voice == "en-us+f3" and owl.is_built and "Сова Owl" in owl.greeting_for("en")
    stages = [stage for stage, _ in reports]
    assert stages[0] == STAGE_CPU and STAGE_BUILD in stages and stages[-1] == STAGE_READY
    fractions = [fraction for _, fraction in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    audio = synthetic.synth_speech(3.0, seed=8, sample_rate=16_000)
    wav = write_wav(tmp_path / "hello.wav", audio, 16_000)
    result = render(owl.library_path, wav, tmp_path / "hello.mp4")
    assert result.frames == 75 and probe(result.path).has_audio


def test_cancelling_leaves_no_character_behind(rig_picture, tmp_path):
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3  # during the puppet's frames

    folder = tmp_path / "owl"
    with pytest.raises(CancelledError, match="cancelled"):
        make_character(
            rig_picture,
            folder,
            character_id="owl",
            name="Owl",
            language="en",
            voice=VoiceSettings(),
            mouth=MOUTH,
            eyes=EYES,
            size=128,
            cancelled=cancelled,
        )
    assert calls == 3 and list(folder.iterdir()) == []
    with pytest.raises(InputError, match="reference performance"):
        make_character(
            rig_picture,
            folder,
            character_id="owl",
            name="Owl",
            language="en",
            voice=VoiceSettings(),
            flp=FlpConfig("http", url="http://127.0.0.1:9"),
        )
    with pytest.raises(InputError, match="lowercase"):
        make_character(
            rig_picture, folder, character_id="Owl!", name="Owl", language="en", voice=VoiceSettings()
        )


# ---- FLP, against the stand-in -------------------------------------------------------------------


def test_reference_performances_are_validated(reference, tmp_path):
    speech, idle = reference
    validate_reference(speech, idle)
    with pytest.raises(InputError, match="no sound"):
        validate_reference(idle, idle)
    wide = tmp_path / "wide.mp4"
    writer = cv2.VideoWriter(str(wide), cv2.VideoWriter_fourcc(*"mp4v"), 25, (192, 144))
    for _ in range(100):
        writer.write(np.full((144, 192, 3), 128, np.uint8))
    writer.release()
    with pytest.raises(InputError, match="192x144; it must be square"):
        validate_reference(speech, wide)


def test_flp_cli_keeps_the_right_half_aligns_lost_frames_and_retimes(
    rig_picture, reference, checkout, tmp_path, monkeypatch
):
    speech, _ = reference
    dropped = {0, 1, 2, 60, 61}
    monkeypatch.setenv("FLP_STANDIN_DROP", "0-2,60-61")
    config = FlpConfig("cli", checkout=checkout, python=sys.executable)
    animated = animate(rig_picture, speech, config, tmp_path)
    media = probe(animated)
    assert (media.width, media.height, media.has_audio) == (512, 512, False)
    frames = json.loads(Path(str(animated) + ".frames.json").read_text())
    assert frames["kept"] == [i for i in range(150) if i not in dropped] and frames["driving_frames"] == 150
    assert list((checkout / "results").glob("*/*")) == []  # FLP's own copies are cleaned up
    out = retime(animated, speech, tmp_path / "speech.mp4")
    r_opening, r_width, count = lip_sync(out, SIDE)
    assert count == 150 and probe(out).has_audio
    assert r_opening > 0.9 and r_width > 0.8, (r_opening, r_width)


def test_flp_cli_gets_a_silent_driving_video_no_paste_back_and_a_config_that_keeps_frames_whole(
    rig_picture, reference, checkout, tmp_path, monkeypatch
):
    speech, _ = reference
    assert probe(speech).has_audio
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("FLP_STANDIN_RECORD", str(record))
    animate(rig_picture, speech, FlpConfig("cli", checkout=checkout, python=sys.executable), tmp_path / "run")
    (run,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert (
        run["driving_has_audio"] is False and run["paste_back"] is False and "--paste_back" not in run["argv"]
    )
    cropping = checkout / "configs" / "cropping.yaml"
    cropping.write_text(
        "infer_params:\n  flag_pasteback: true\n  flag_crop_driving_video: True  # FLP's own flag\n"
    )
    with pytest.raises(InputError, match="flag_crop_driving_video: true; set it to false"):
        FlpConfig("cli", checkout=checkout, python=sys.executable, cfg="configs/cropping.yaml")
    with pytest.raises(InputError, match="cannot read FLP's config"):
        FlpConfig("cli", checkout=checkout, python=sys.executable, cfg="configs/missing.yaml")


def test_flp_http_waits_for_a_late_server_one_run_at_a_time_with_unique_uploads(
    rig_picture, reference, tmp_path
):
    """FLP opens its port only after loading its models, and runs one request at a time."""
    speech, idle = reference
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    record = tmp_path / "record.jsonl"
    env = {
        **os.environ,
        "FLIP_PORT": str(port),
        "FLP_STANDIN_HOME": str(tmp_path / "home"),
        "FLP_STANDIN_START_S": "3",
        "FLP_STANDIN_RECORD": str(record),
    }
    env.pop("FLP_STANDIN_DROP", None)
    server = subprocess.Popen(
        [sys.executable, str(STANDIN / "api.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        config = FlpConfig("http", url=f"http://127.0.0.1:{port}", start_wait_s=60)
        results: dict[str, Path] = {}
        errors: list[BaseException] = []

        def run(name: str, driving: Path) -> None:
            try:
                results[name] = animate(rig_picture, driving, config, tmp_path / name)
            except BaseException as error:  # noqa: BLE001 -- reported below
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(name, driving))
            for name, driving in (("a", speech), ("b", idle))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        assert sorted(results) == ["a", "b"] and all(probe(path).width == 512 for path in results.values())
    finally:
        server.terminate()
        server.wait(timeout=10)
    runs = sorted(
        (json.loads(line) for line in record.read_text().splitlines()), key=lambda run: run["started"]
    )
    assert len(runs) == 2 and runs[0]["ended"] <= runs[1]["started"]  # one at a time
    names = [name for run in runs for name in run["uploads"].values()]
    assert len(set(names)) == 4 and not {"driving.mp4", "source.png"} & set(names)  # unique per run
    assert all(run["driving_has_audio"] is False for run in runs)


def test_flp_refuses_when_too_many_frames_are_lost_or_there_is_no_face(
    rig_picture, reference, checkout, tmp_path, monkeypatch
):
    speech, _ = reference
    config = FlpConfig("cli", checkout=checkout, python=sys.executable)
    monkeypatch.setenv("FLP_STANDIN_DROP", "0-39")
    animated = animate(rig_picture, speech, config, tmp_path)
    with pytest.raises(MediaError, match="lost 40 of 150 frames"):
        retime(animated, speech, tmp_path / "speech.mp4", max_lost_fraction=0.05)
    assert not (tmp_path / "speech.mp4").exists()
    monkeypatch.delenv("FLP_STANDIN_DROP")
    monkeypatch.setenv("FLP_STANDIN_NO_FACE", "1")
    with pytest.raises(InputError, match="no face in the picture"):
        animate(rig_picture, speech, config, tmp_path / "again")


class _EmptyZip(http.server.BaseHTTPRequestHandler):
    """What FLP's api.py answers when the picture has no face: HTTP 200 and an empty zip."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        buffer = io.BytesIO()
        zipfile.ZipFile(buffer, "w").close()
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(buffer.getvalue())))
        self.end_headers()
        self.wfile.write(buffer.getvalue())

    def log_message(self, *args) -> None:
        pass


def test_flp_http_errors_are_one_line_messages(rig_picture, reference, tmp_path):
    speech, _ = reference
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EmptyZip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(InputError, match="no face in the picture"):
            animate(
                rig_picture, speech, FlpConfig("http", url=f"http://127.0.0.1:{server.server_port}"), tmp_path
            )
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(MediaError, match="did not come up in 0 s"):  # nobody listens: waited, then told
        animate(
            rig_picture,
            speech,
            FlpConfig("http", url=f"http://127.0.0.1:{server.server_port}", start_wait_s=0),
            tmp_path,
        )


def test_make_character_over_flp_http_loads_and_renders(rig_picture, reference, flp_server, tmp_path):
    reports: list[tuple[str, float]] = []
    folder = tmp_path / "characters" / "robin"
    made = make_character(
        rig_picture,
        folder,
        character_id="robin",
        name="Robin",
        language="en",
        voice=VoiceSettings(),
        flp=FlpConfig("http", url=flp_server),
        reference=reference,
        size=128,
        progress=lambda stage, fraction: reports.append((stage, fraction)),
    )
    assert made.path == "flp" and made.info.speech_frames == 150 and made.info.idle_source == "idle-video"
    assert [stage for stage, _ in reports][0] == STAGE_GPU and reports[-1] == (STAGE_READY, 1.0)
    robin = Catalogue(tmp_path / "characters").get("robin")
    audio = synthetic.synth_speech(3.0, seed=9, sample_rate=16_000)
    result = render(robin.library_path, write_wav(tmp_path / "hi.wav", audio, 16_000), tmp_path / "hi.mp4")
    assert result.frames == 75
    r_opening, _, _ = lip_sync(folder / "speech.mp4", 128)
    assert r_opening > 0.85


def test_an_flp_url_without_a_host_is_refused_when_configured():
    """``http://:9871`` passes a scheme check but has nowhere to connect: said at once, in a line."""
    from engine.errors import InputError
    from engine.makers.flp import FlpConfig

    for url in ("http://:9871", "http:flp", "ftp://flp:9871", ""):
        with pytest.raises(InputError, match="must be an http"):
            FlpConfig("http", url=url)
    assert FlpConfig("http", url="http://flp:9871").url == "http://flp:9871"
