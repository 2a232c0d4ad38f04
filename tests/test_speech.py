"""engine.speech: eSpeak NG through ctypes (real library from the espeakng-loader wheel), Piper stubs."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

from engine import speech
from engine.errors import InputError
from engine.speech import (
    Speech,
    SpeechError,
    VoiceSettings,
    available_voices,
    concatenate,
    speak,
    speak_sentences,
    split_sentences,
)

EN = "Hello there, my little friend. Would you like to hear a story about a brave small fox?"
RU = "Привет, мой маленький друг. Хочешь послушать сказку про смелого лисёнка?"


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def median_f0(audio: np.ndarray, sr: int, fmin: float = 50.0, fmax: float = 400.0) -> float:
    """Median fundamental over the loud frames, by autocorrelation (no numba warm-up, unlike librosa.yin)."""
    frame, hop = 2048, 512
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    levels = np.sqrt(np.mean(frames**2, axis=1))
    loud = frames[levels > np.percentile(levels, 60)] * np.hanning(frame)
    spectrum = np.fft.rfft(loud, 2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    lo, hi = int(sr / fmax), int(sr / fmin)
    lags = lo + np.argmax(ac[:, lo:hi], axis=1)
    return float(np.median(sr / lags))


def check_speech(s: Speech, text: str) -> None:
    assert s.text == text
    assert s.audio.dtype == np.float32 and s.audio.ndim == 1
    assert np.abs(s.audio).max() <= 1.0
    assert s.sample_rate >= 16_000
    assert rms(s.audio) > 0.02, "audio is (nearly) silent"
    per_char = s.duration / len(text)
    assert 0.03 < per_char < 0.15, f"{s.duration:.2f} s for {len(text)} characters"
    assert {e.kind for e in s.events} <= set(speech.EVENT_KINDS)


def word_events(s: Speech) -> list:
    return [e for e in s.events if e.kind == "word"]


# ----------------------------------------------------------------------------------- eSpeak


def test_english_speech_is_audible_and_plausibly_long():
    s = speak(EN)
    check_speech(s, EN)
    assert [w for _, w in s.words()] == EN.replace(",", "").replace(".", "").replace("?", "").split()


def test_russian_speech_is_audible_and_word_spans_are_character_indices():
    s = speak(RU, VoiceSettings(language="ru"))
    check_speech(s, RU)
    # Text positions are characters, not UTF-8 bytes: each span is exactly a Cyrillic word.
    words = [
        "Привет",
        "мой",
        "маленький",
        "друг",
        "Хочешь",
        "послушать",
        "сказку",
        "про",
        "смелого",
        "лисёнка",
    ]
    assert [w for _, w in s.words()] == words


def test_events_are_monotonic_and_inside_the_audio():
    s = speak(EN, VoiceSettings(voice="en-gb"))
    words = word_events(s)
    assert len(words) == len(EN.split())
    times = [e.time_s for e in s.events]
    assert times == sorted(times)
    assert all(0.0 <= t <= s.duration for t in times)
    assert words[0].time_s < 0.2 and words[-1].time_s < s.duration - 0.2
    assert all(0 <= e.text_start and e.text_start + e.text_length <= len(EN) for e in s.events)
    # Phoneme events come with IPA names and fall between the words.
    phonemes = [e for e in s.events if e.kind == "phoneme"]
    assert len(phonemes) > len(words) * 2
    assert all(e.phoneme for e in phonemes)
    assert any("ˈ" in e.phoneme for e in phonemes)  # IPA stress mark
    assert all(e.phoneme is None for e in s.events if e.kind != "phoneme")
    assert [e.kind for e in s.events].count("sentence") == 2
    assert s.events[-1].kind == "end" and s.events[-1].time_s == pytest.approx(s.duration, abs=0.02)


def test_rate_changes_duration():
    text = "The quick brown fox jumps over the lazy dog."
    slow = speak(text, VoiceSettings(rate=100)).duration
    normal = speak(text).duration
    fast = speak(text, VoiceSettings(rate=300)).duration
    assert slow > normal * 1.3 and normal > fast * 1.5


def test_pitch_changes_fundamental():
    text = "The quick brown fox jumps over the lazy dog, and then it runs away."
    low = speak(text, VoiceSettings(pitch=10))
    high = speak(text, VoiceSettings(pitch=90))
    f_low, f_high = median_f0(low.audio, low.sample_rate), median_f0(high.audio, high.sample_rate)
    assert 50 < f_low < f_high < 400
    assert f_high > f_low * 1.4, (f_low, f_high)


def test_voices_and_variants():
    en = available_voices("en")
    assert {"en-us", "en-gb"} <= set(en) and "ru" not in en
    assert "ru" in available_voices("ru")
    assert set(en) < set(available_voices())
    plain = speak("Good morning.", VoiceSettings(voice="en-us"))
    female = speak("Good morning.", VoiceSettings(voice="en-us+f3"))
    assert median_f0(female.audio, female.sample_rate) > median_f0(plain.audio, plain.sample_rate) * 1.3


def test_speak_sentences_yields_each_sentence_and_joins_like_speak():
    text = "Mr. Brown has a dog. The dog is called Rex!\nDo you like dogs? I do."
    expected = ["Mr. Brown has a dog.", "The dog is called Rex!", "Do you like dogs?", "I do."]
    parts = list(speak_sentences(text))
    assert [p.text for p in parts] == expected
    for part in parts:
        assert rms(part.audio) > 0.02
        assert all(0.0 <= e.time_s <= part.duration for e in part.events)
    whole = speak(text)
    joined = concatenate(parts)
    assert joined.duration == pytest.approx(whole.duration, rel=0.1)
    assert [w for _, w in joined.words()] == [w for _, w in whole.words()]
    times = [e.time_s for e in word_events(joined)]
    assert times == sorted(times) and times[-1] < joined.duration


def test_speak_sentences_russian():
    text = "«Привет!» — сказал ёжик. А. С. Пушкин написал сказку. Ты её читал?"
    parts = list(speak_sentences(text, VoiceSettings(language="ru")))
    assert [p.text for p in parts] == [
        "«Привет!» — сказал ёжик.",
        "А. С. Пушкин написал сказку.",
        "Ты её читал?",
    ]
    assert all(rms(p.audio) > 0.02 for p in parts)


def test_concatenate_shifts_events_and_text_and_inserts_gaps():
    a, b = speak("One two."), speak("Three four.")
    joined = concatenate([a, b], gap_s=0.5)
    assert joined.text == "One two. Three four."
    assert len(joined.audio) == len(a.audio) + len(b.audio) + round(0.5 * a.sample_rate)
    assert joined.words() == [(t, w) for t, w in a.words()] + [
        (t + a.duration + 0.5, w) for t, w in b.words()
    ]
    assert len(joined.events) == len(a.events) + len(b.events)
    with pytest.raises(InputError):
        concatenate([])
    with pytest.raises(InputError):
        concatenate([a, Speech(np.zeros(10, np.float32), 16_000)])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello. How are you?! Fine…\nGreat", ["Hello.", "How are you?!", "Fine…", "Great"]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        (
            '"Wait!" she cried. Dr. Who lives at No 3.14 Baker St. and J. K. Rowling writes.',
            ['"Wait!" she cried.', "Dr. Who lives at No 3.14 Baker St. and J. K. Rowling writes."],
        ),
        ("Well... I think so. e.g. apples", ["Well...", "I think so. e.g. apples"]),
        (
            "Он ушёл. — Куда? — спросила она.\n\nНа ул. Ленина, т.е. домой.",
            ["Он ушёл.", "— Куда? — спросила она.", "На ул. Ленина, т.е. домой."],
        ),
        ("  ...  \n Hi", ["Hi"]),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_concurrent_calls_are_serialised():
    results: list[float] = []
    errors: list[BaseException] = []

    def work(language: str) -> None:
        try:
            for _ in range(3):
                results.append(
                    speak(EN if language == "en" else RU, VoiceSettings(language=language)).duration
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(lang,)) for lang in ("en", "ru", "en", "ru")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    en, ru = speak(EN).duration, speak(RU, VoiceSettings(language="ru")).duration
    assert len(results) == 12
    assert all(min(abs(d - en), abs(d - ru)) < 0.05 for d in results)


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(text):
    with pytest.raises(InputError, match="text is empty"):
        speak(text)
    with pytest.raises(InputError, match="text is empty"):
        speak_sentences(text)  # checked at the call, before any iteration


def test_too_long_text():
    with pytest.raises(InputError, match="limit is 50"):
        speak("word " * 20, max_chars=50)
    with pytest.raises(InputError, match="10000"):
        speak_sentences("a" * 10_001)


def test_nothing_to_pronounce():
    with pytest.raises(InputError, match="nothing to pronounce"):
        speak("?!...")
    with pytest.raises(InputError, match="nothing to pronounce"):
        speak_sentences("... !!!")


def test_unknown_language_and_voice():
    with pytest.raises(InputError, match=r"'klingon'.*available: .*\ben\b"):
        speak("hi", VoiceSettings(language="klingon"))
    with pytest.raises(InputError, match=r"'ru'.*en-gb.*en-us"):
        speak("hi", VoiceSettings(language="en", voice="ru"))
    with pytest.raises(InputError, match="'nosuch'"):
        speak("hi", VoiceSettings(voice="en-us+nosuch"))
    with pytest.raises(InputError, match="'xx'"):
        available_voices("xx")
    with pytest.raises(InputError, match="'klingon'"):
        speak_sentences("hi", VoiceSettings(language="klingon"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rate=20), "rate"),
        (dict(rate=1000), "rate"),
        (dict(pitch=101), "pitch"),
        (dict(pitch=-1), "pitch"),
        (dict(backend="festival"), "festival"),
        (dict(backend="piper"), "piper_model"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        VoiceSettings(**kwargs)


def test_nul_in_text_is_harmless():
    s = speak("Hello\x00world")
    assert [w for _, w in s.words()] == ["Hello", "world"]


# ----------------------------------------------------------------------------------- Piper


@pytest.fixture
def piper_files(tmp_path):
    model = tmp_path / "kid.onnx"
    model.write_bytes(b"not really onnx")
    (tmp_path / "kid.onnx.json").write_text("{}")
    speech._piper_voice.cache_clear()
    yield model
    speech._piper_voice.cache_clear()


def test_piper_missing_model_names_the_file(tmp_path):
    missing = tmp_path / "voices" / "en_US-kid-medium.onnx"
    with pytest.raises(SpeechError, match="en_US-kid-medium.onnx"):
        speak("Hello.", VoiceSettings(piper_model=str(missing)))
    with pytest.raises(SpeechError, match="en_US-kid-medium.onnx"):
        next(speak_sentences("Hello.", VoiceSettings(backend="piper", piper_model=str(missing))))


def test_piper_missing_config_names_the_file(piper_files):
    piper_files.with_name("kid.onnx.json").unlink()
    with pytest.raises(SpeechError, match=r"kid\.onnx\.json"):
        speak("Hello.", VoiceSettings(piper_model=str(piper_files)))


def test_piper_not_installed(piper_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # makes ``import piper`` raise ImportError
    with pytest.raises(SpeechError, match="pip install piper-tts"):
        speak("Hello.", VoiceSettings(piper_model=str(piper_files)))


def _fake_piper(new_api: bool) -> types.ModuleType:
    """A stand-in for piper-tts: 1.3 yields AudioChunk objects, 1.2 yields raw int16 bytes."""
    module = types.ModuleType("piper")
    sr = 16_000

    def sentence_audio(length_scale: float) -> np.ndarray:
        t = np.arange(int(sr * 0.5 * length_scale)) / sr
        return (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)

    class PiperVoice:
        loaded: list = []

        @classmethod
        def load(cls, model_path, config_path=None, use_cuda=False):
            cls.loaded.append((model_path, config_path))
            voice = cls()
            voice.config = types.SimpleNamespace(sample_rate=sr)
            return voice

        if new_api:

            def synthesize(self, text, syn_config=None):
                for _ in text.split("."):
                    audio = sentence_audio(syn_config.length_scale)
                    yield types.SimpleNamespace(audio_float_array=audio, sample_rate=sr)

        else:

            def synthesize_stream_raw(self, text, length_scale=None, **_):
                for _ in text.split("."):
                    yield (sentence_audio(length_scale) * 32767).astype("<i2").tobytes()

    module.PiperVoice = PiperVoice
    if new_api:
        module.SynthesisConfig = lambda length_scale=None: types.SimpleNamespace(length_scale=length_scale)
    return module


@pytest.mark.parametrize("new_api", [True, False])
def test_piper_backend_adapter(piper_files, monkeypatch, new_api):
    fake = _fake_piper(new_api)
    monkeypatch.setitem(sys.modules, "piper", fake)
    s = speak("One. Two", VoiceSettings(piper_model=str(piper_files), rate=80))  # rate 80: twice as long
    assert s.sample_rate == 16_000 and s.text == "One. Two"
    assert s.duration == pytest.approx(2.0, abs=0.01)
    assert [e.kind for e in s.events] == ["sentence", "end", "sentence", "end"]
    assert s.events[2].time_s == pytest.approx(1.0, abs=0.01)
    assert rms(s.audio) > 0.1
    speak("Again.", VoiceSettings(piper_model=str(piper_files)))
    assert len(fake.PiperVoice.loaded) == 1  # the voice is loaded once and cached


def test_piper_failure_is_a_speech_error(piper_files, monkeypatch):
    fake = _fake_piper(True)

    def broken(self, text, syn_config=None):
        raise RuntimeError("onnxruntime says\nno")

    fake.PiperVoice.synthesize = broken
    monkeypatch.setitem(sys.modules, "piper", fake)
    with pytest.raises(SpeechError, match="onnxruntime says no") as info:
        speak("Hello.", VoiceSettings(piper_model=str(piper_files)))
    assert "\n" not in str(info.value)
