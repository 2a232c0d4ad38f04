"""ffmpeg in and out: real encodes and decodes."""

import numpy as np
import pytest

from engine import media
from engine.errors import InputError, MediaError


def test_encode_decode_round_trip(tmp_path):
    sr = 16_000
    audio = (0.2 * np.sin(2 * np.pi * 330 * np.arange(sr * 2) / sr)).astype(np.float32)
    wav = media.write_wav(tmp_path / "a.wav", audio, sr)
    out = tmp_path / "v.mp4"
    with media.VideoEncoder(out, size=128, audio_path=wav) as encoder:
        for i in range(50):
            encoder.write(np.full((128, 128, 3), i * 4, np.uint8))
    info = media.probe(out)
    assert (info.video_codec, info.audio_codec, info.pixel_format) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height, info.fps) == (128, 128, 25.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    frames = list(media.iter_frames(out, size=64))
    assert len(frames) == 50
    assert frames[10].mean() == pytest.approx(40, abs=3)
    decoded = media.read_audio(out)
    assert len(decoded) / sr == pytest.approx(2.0, abs=0.05)


def test_plain_wav_is_read_directly_with_the_samples_ffmpeg_gives(tmp_path, monkeypatch):
    sr = 16_000
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)
    plain = media.write_wav(tmp_path / "plain.wav", audio, sr)
    stereo_44k = tmp_path / "stereo.wav"
    import soundfile

    soundfile.write(str(stereo_44k), np.stack([audio, audio], axis=1), 44_100)
    spawned = []
    real_probe = media.probe
    monkeypatch.setattr(media, "probe", lambda path: spawned.append(path) or real_probe(path))
    direct = media.read_audio(plain)
    assert spawned == []  # no ffmpeg process for a mono wav at the analysis rate
    assert media.read_audio(stereo_44k).size > 0 and spawned == [stereo_44k]  # the rest go through ffmpeg
    monkeypatch.setattr(media, "_read_plain_wav", lambda path, rate: None)
    through_ffmpeg = media.read_audio(plain)
    assert direct.dtype == through_ffmpeg.dtype == np.float32
    np.testing.assert_array_equal(direct, through_ffmpeg)


def test_wav_of_invalid_samples_is_refused_by_either_reader(tmp_path, monkeypatch):
    import soundfile

    broken = tmp_path / "nan.wav"
    soundfile.write(str(broken), np.array([0.1, np.nan, 0.2] * 1000, np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(MediaError, match="invalid samples"):
        media.read_audio(broken)
    monkeypatch.setattr(media, "_read_plain_wav", lambda path, rate: None)
    with pytest.raises(MediaError, match="invalid samples"):
        media.read_audio(broken)


def test_failed_encode_leaves_nothing(tmp_path):
    out = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoEncoder(out, size=64) as encoder:
            encoder.write(np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("crash mid-render")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="cannot write"):
        with media.VideoEncoder(tmp_path / "missing" / "v.mp4", size=64):
            pass


def test_centre_crop_and_explicit_crop(tmp_path):
    out = tmp_path / "wide.mp4"
    # A 4:3 picture, left half black and right half white: the centred square crop keeps both.
    with media.VideoEncoder(out, size=96) as encoder:
        frame = np.zeros((96, 96, 3), np.uint8)
        frame[:, 48:] = 255
        for _ in range(5):
            encoder.write(frame)
    centred = next(media.iter_frames(out, size=32))
    assert centred[:, :10].mean() < 30 and centred[:, -10:].mean() > 220
    right = next(media.iter_frames(out, size=32, crop=media.Crop(56, 0, 40)))
    assert right.mean() > 220
    with pytest.raises(InputError, match="outside"):
        next(media.iter_frames(out, size=32, crop=media.Crop(80, 0, 40)))
    with pytest.raises(InputError, match="square"):
        media.Crop.parse("0,0,10,20")


def test_unreadable_inputs(tmp_path):
    junk = tmp_path / "voice.ogg"
    junk.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(MediaError, match="voice.ogg"):
        media.read_audio(junk)
    with pytest.raises(MediaError, match="no such file"):
        media.read_audio(tmp_path / "missing.wav")
    silent_video = tmp_path / "silent.mp4"
    with media.VideoEncoder(silent_video, size=32) as encoder:
        encoder.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(MediaError, match="no audio track"):
        media.read_audio(silent_video)
