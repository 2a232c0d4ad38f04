"""Text to speech: eSpeak NG in-process by default, Piper when a neural voice model is configured.

eSpeak NG comes from the ``espeakng-loader`` wheel, which ships ``libespeak-ng`` and its data, so
``pip install`` is the whole set-up: no apt package, no ``espeak-ng`` binary, no subprocess. The
library is driven through ctypes in its synchronous mode: ``espeak_Synth`` returns only when the
text is spoken, and meanwhile a callback receives the 16-bit samples and the events (word,
sentence, phoneme) with their times. Those events are what lets the renderer line the mouth up
with the words without analysing the audio again.

libespeak-ng keeps its state in process globals (one voice, one callback, one set of
parameters), so it is initialised once, lazily, and every call into it holds one lock.

Piper (``pip install piper-tts``, not a dependency) gives a more natural voice at a higher CPU
cost; it is used when ``VoiceSettings.piper_model`` names an ``.onnx`` voice file. It reports no
word or phoneme timings, only sentence starts and ends.

Long texts are spoken sentence by sentence by :func:`speak_sentences`, a generator, so a
five-minute story starts rendering while the rest is still being synthesised.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GramophoneError, InputError

log = logging.getLogger(__name__)

BACKENDS = ("espeak", "piper")
RATE_MIN, RATE_MAX = 80, 450
"""eSpeak's own bounds on the speaking rate, in words per minute."""
DEFAULT_RATE = 160
"""Words per minute: a little slower than eSpeak's 175, easier for children to follow."""
DEFAULT_VOICES = {"en": "en-us", "ru": "ru"}
"""Voice used when a language is given without one; other languages get eSpeak's best match."""
EVENT_KINDS = ("word", "sentence", "phoneme", "end")
PAUSE_PHONEME = "_"
"""Name given to phoneme events eSpeak reports with no IPA symbol: pauses, mostly."""


class SpeechError(GramophoneError):
    """The speech backend failed or is missing: eSpeak NG cannot load, Piper or its voice is absent."""


@dataclass(frozen=True)
class VoiceSettings:
    """How to speak: backend, language, voice, rate and pitch.

    Parameters
    ----------
    backend
        ``"espeak"`` (default, fast, robotic) or ``"piper"`` (natural, slower, optional). Setting
        ``piper_model`` selects Piper whatever this says, so one field is enough to switch.
    language
        Language code such as ``"en"``, ``"ru"`` or ``"en-gb"`` (eSpeak only; a Piper voice
        speaks its own language).
    voice
        eSpeak voice from :func:`available_voices` (``"en-us"``, ``"en-gb"``, ``"ru"``, ...),
        optionally with a variant that changes its timbre: ``"en-us+f3"``, ``"ru+Alicia"``.
        None picks the language's default (``en-us`` for English).
    rate
        Speaking rate in words per minute, 80 to 450. For Piper it scales the phoneme lengths
        (160 is the model's own pace).
    pitch
        Base pitch, 0 to 100, 50 being the voice's normal one (eSpeak only; Piper ignores it).
    piper_model
        Path of a Piper ``.onnx`` voice; its ``.onnx.json`` config must sit beside it.

    Raises
    ------
    InputError
        An unknown backend, or a rate or pitch out of range. Language and voice are checked when
        speaking, since that needs the voice list of the library.
    """

    backend: str = "espeak"
    language: str = "en"
    voice: str | None = None
    rate: int = DEFAULT_RATE
    pitch: int = 50
    piper_model: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"unknown speech backend {self.backend!r}; use one of: {', '.join(BACKENDS)}")
        if self.backend == "piper" and not self.piper_model:
            raise InputError("the piper backend needs piper_model, the path of a .onnx voice file")
        if (
            isinstance(self.rate, bool)
            or not isinstance(self.rate, int)
            or not RATE_MIN <= self.rate <= RATE_MAX
        ):
            raise InputError(
                f"speech rate {self.rate!r} is out of range; use {RATE_MIN} to {RATE_MAX} words per minute"
            )
        if isinstance(self.pitch, bool) or not isinstance(self.pitch, int) or not 0 <= self.pitch <= 100:
            raise InputError(f"speech pitch {self.pitch!r} is out of range; use 0 to 100 (50 is normal)")

    @property
    def effective_backend(self) -> str:
        """The backend actually used: Piper whenever a model is configured."""
        return "piper" if self.piper_model else self.backend


@dataclass(frozen=True)
class SpeechEvent:
    """A moment in the speech, for lining the mouth up with it.

    Attributes
    ----------
    kind
        ``"word"`` (a word starts), ``"sentence"`` (a sentence starts), ``"phoneme"`` (a sound
        starts) or ``"end"`` (a clause or sentence ends).
    time_s
        Seconds from the start of the :class:`Speech` it belongs to.
    text_start, text_length
        Span in ``Speech.text``, in characters (``str`` indices). A number spoken as several words
        gives several word events over the same digits. Zero length for sentence, end and
        phoneme events, whose ``text_start`` is where eSpeak was reading.
    phoneme
        IPA name of the sound for phoneme events (stress marks included, ``"_"`` for pauses and
        sounds with no IPA symbol), None for the other kinds.
    """

    kind: str
    time_s: float
    text_start: int
    text_length: int
    phoneme: str | None = None


@dataclass
class Speech:
    """Synthesised speech: mono float32 samples in [-1, 1], their rate, timed events, the text."""

    audio: np.ndarray
    sample_rate: int
    events: list[SpeechEvent] = field(default_factory=list)
    text: str = ""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sample_rate if self.sample_rate else 0.0

    def phonemes(self) -> tuple[tuple[float, str], ...]:
        """(time, IPA phoneme) for each phoneme event: what :mod:`engine.visemes` shapes the mouth by."""
        return tuple(
            (e.time_s, e.phoneme) for e in self.events if e.kind == "phoneme" and e.phoneme is not None
        )

    def words(self) -> list[tuple[float, str]]:
        """(time, word) for each word event: handy for subtitles and for checking timings."""
        return [
            (e.time_s, self.text[e.text_start : e.text_start + e.text_length])
            for e in self.events
            if e.kind == "word"
        ]


# --------------------------------------------------------------------------------------------
# Public functions


def speak(text: str, voice: VoiceSettings = VoiceSettings(), max_chars: int = 10_000) -> Speech:
    """Synthesise ``text`` in one go.

    Use it for short replies; for long ones :func:`speak_sentences` lets rendering start sooner.

    Parameters
    ----------
    text
        What to say, plain text (no SSML: ``<`` is read as it is).
    voice
        Backend, language, voice, rate and pitch.
    max_chars
        Longest text accepted: a guard against a runaway message costing minutes of CPU.

    Returns
    -------
    Speech
        The audio with word, sentence, phoneme and end events (eSpeak), or sentence and end
        events (Piper).

    Raises
    ------
    InputError
        Empty or too long text, unknown language or voice, or text with nothing to pronounce.
    SpeechError
        The backend is missing or failed.
    """
    text = _check_text(text, max_chars)
    return _synthesise(text, voice, _resolve_voice(voice))


def speak_sentences(
    text: str, voice: VoiceSettings = VoiceSettings(), max_chars: int = 10_000
) -> Iterator[Speech]:
    """Synthesise ``text`` sentence by sentence, yielding one :class:`Speech` per sentence.

    A five-minute story then starts rendering after its first sentence instead of after all of
    it. Each part's ``text`` is its sentence and its event times start at 0; join the parts with
    :func:`concatenate`. Each part ends with eSpeak's sentence pause, so the join sounds like
    :func:`speak` on the whole text. Sentences with nothing to pronounce are skipped.

    Arguments are checked at the call, not at the first ``next()``, so mistakes surface where
    they are made.

    Raises
    ------
    InputError
        Empty or too long text, unknown language or voice.
    SpeechError
        The backend is missing or failed (raised while iterating).
    """
    text = _check_text(text, max_chars)
    resolved = _resolve_voice(voice)
    sentences = split_sentences(text)
    if not sentences:
        raise InputError("text has nothing to pronounce; send some words")
    return _speak_each(sentences, voice, resolved)


def _speak_each(
    sentences: list[str], voice: VoiceSettings, resolved: _ResolvedVoice | None
) -> Iterator[Speech]:
    for sentence in sentences:
        try:
            yield _synthesise(sentence, voice, resolved)
        except _NothingSpoken:
            log.debug("skipped a sentence with nothing to pronounce: %r", sentence)


def concatenate(parts: Iterable[Speech], gap_s: float = 0.0) -> Speech:
    """Join speeches end to end, with ``gap_s`` seconds of silence between them.

    Event times are shifted by where each part starts, text spans by where its text starts in
    the joined text (the parts' texts joined with single spaces).

    Raises
    ------
    InputError
        No parts, a negative gap, or parts with different sample rates.
    """
    parts = list(parts)
    if not parts:
        raise InputError("nothing to concatenate: no speech parts given")
    if gap_s < 0:
        raise InputError(f"gap between speech parts must not be negative, got {gap_s}")
    rate = parts[0].sample_rate
    if any(p.sample_rate != rate for p in parts):
        rates = sorted({p.sample_rate for p in parts})
        raise InputError(f"cannot join speech of different sample rates {rates}; resample first")
    gap = np.zeros(int(round(gap_s * rate)), np.float32)
    chunks: list[np.ndarray] = []
    events: list[SpeechEvent] = []
    texts: list[str] = []
    samples = 0
    text_offset = 0
    for i, part in enumerate(parts):
        if i and len(gap):
            chunks.append(gap)
            samples += len(gap)
        offset_s = samples / rate
        events.extend(
            SpeechEvent(e.kind, e.time_s + offset_s, e.text_start + text_offset, e.text_length, e.phoneme)
            for e in part.events
        )
        chunks.append(np.asarray(part.audio, np.float32))
        samples += len(part.audio)
        texts.append(part.text)
        text_offset += len(part.text) + 1
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Speech(audio=audio, sample_rate=rate, events=events, text=" ".join(texts))


def available_voices(language: str | None = None) -> list[str]:
    """eSpeak voices, all or those for ``language`` (``"en"`` gives en-us, en-gb, en-gb-scotland...).

    Variants (``+f3``, ``+Alicia``...) can be appended to any of them; :func:`available_variants`
    lists them.

    Raises
    ------
    InputError
        Unknown language.
    SpeechError
        eSpeak NG cannot be loaded.
    """
    catalogue = _engine().catalogue
    if language is None:
        return sorted(catalogue.voices)
    lang = _normalise_language(language)
    if lang not in catalogue.languages:
        raise InputError(
            f"unknown speech language {language!r}; available: {_brief(sorted(catalogue.base_languages))}"
        )
    return catalogue.voices_for(lang)


def available_variants() -> list[str]:
    """eSpeak voice variants, appended to a voice with ``+``: ``en-us+f3``, ``ru+Alicia``."""
    return sorted(_engine().catalogue.variants.values(), key=str.lower)


# --------------------------------------------------------------------------------------------
# Sentence splitting

_TERMINATORS = ".!?…。！？"
_CJK_TERMINATORS = "。！？"
_CLOSERS = "\"'»”’)]}"
_OPENERS = "\"'«“„‘([{—–-‒ "
_ABBREVIATIONS = frozenset(
    # Words that precede a name or number and whose period ends no sentence.
    "mr mrs ms mx dr prof st sr jr mt capt col gen lt sgt rev hon fig "
    "ул пр им св проф акад гр тов д кв стр рис г-н г-жа".split()
)
_BOUNDARY = re.compile(rf"[{re.escape(_TERMINATORS)}]+[{re.escape(_CLOSERS)}]*")
_WORD_BEFORE = re.compile(r"([\w-]+)\.$")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences for :func:`speak_sentences`.

    Ends a sentence at a newline, or at ``.``, ``!``, ``?``, ``…`` (and runs of them such as
    ``?!`` or ``...``), together with closing quotes or brackets after them, when whitespace
    follows. It does not split where the next word starts in lower case (``"Hi!" she said``,
    ``«Привет!» — сказал он``), after titles such as ``Mr.``, ``Dr.``, ``ул.`` or after an
    initial (``J. K. Rowling``, ``А. С. Пушкин``), nor inside numbers (``3.14``).
    Pieces with nothing to pronounce (bare punctuation) are dropped.

    Returns
    -------
    list of str
        Stripped sentences in order.
    """
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _BOUNDARY.finditer(line):
            end = match.end()
            if _is_boundary(line, match.start(), end, match.group()):
                sentences.append(line[start:end])
                start = end
        sentences.append(line[start:])
    return [s.strip() for s in sentences if _pronounceable(s)]


def _is_boundary(line: str, start: int, end: int, mark: str) -> bool:
    rest = line[end:]
    if rest and not rest[0].isspace() and mark[0] not in _CJK_TERMINATORS:
        return False  # 3.14, www.example.com, "Hello.World"
    if mark.rstrip(_CLOSERS) == ".":
        word = _WORD_BEFORE.search(line[: start + 1])
        if word:
            token = word.group(1)
            if token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isupper()):
                return False
    following = rest.lstrip(_OPENERS)
    if following and following[0].islower():
        return False
    return True


def _pronounceable(text: str) -> bool:
    """Whether text has anything but punctuation, spaces and controls (emoji count: eSpeak names them)."""
    return any(unicodedata.category(c)[0] not in "PZC" for c in text)


# --------------------------------------------------------------------------------------------
# Validation


def _check_text(text: str, max_chars: int) -> str:
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("text is empty")
    if len(text) > max_chars:
        raise InputError(
            f"text is {len(text)} characters long, the limit is {max_chars}; shorten it or split it"
        )
    return text


def _normalise_language(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def _brief(items: list[str], limit: int = 24) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


@dataclass(frozen=True)
class _ResolvedVoice:
    identifier: str  # what espeak_SetVoiceByName accepts: "gmw/en-US", "gmw/en-US+f3"
    name: str  # ours: "en-us", "en-us+f3"


def _resolve_voice(voice: VoiceSettings) -> _ResolvedVoice | None:
    """Check language and voice against eSpeak's list; None for Piper, whose model decides."""
    if not isinstance(voice, VoiceSettings):
        raise InputError(f"voice must be VoiceSettings, got {type(voice).__name__}")
    if voice.effective_backend == "piper":
        return None
    catalogue = _engine().catalogue
    lang = _normalise_language(voice.language)
    if lang not in catalogue.languages:
        raise InputError(
            f"unknown speech language {voice.language!r}; available: "
            f"{_brief(sorted(catalogue.base_languages))}"
        )
    candidates = catalogue.voices_for(lang)
    if voice.voice is None:
        name = DEFAULT_VOICES.get(lang) or catalogue.best_voice(lang)
        variant = None
    else:
        name, _, variant = voice.voice.strip().lower().partition("+")
        if name not in candidates:
            raise InputError(f"unknown {lang} voice {voice.voice!r}; available: {_brief(candidates)}")
    identifier = catalogue.voices[name]
    if variant:
        file_name = catalogue.variants.get(variant)
        if file_name is None:
            raise InputError(
                f"unknown voice variant {variant!r} in {voice.voice!r}; "
                f"available: {_brief(sorted(catalogue.variants.values(), key=str.lower))}"
            )
        return _ResolvedVoice(f"{identifier}+{file_name}", f"{name}+{file_name}")
    return _ResolvedVoice(identifier, name)


class _NothingSpoken(InputError):
    """The backend produced no sound for the text (bare punctuation, say)."""


def _synthesise(text: str, voice: VoiceSettings, resolved: _ResolvedVoice | None) -> Speech:
    if resolved is None:
        speech = _speak_piper(text, voice)
    else:
        speech = _engine().synthesise(text, resolved.identifier, voice.rate, voice.pitch)
    if not len(speech.audio) or not np.any(speech.audio):
        raise _NothingSpoken(f"text has nothing to pronounce: {text[:40]!r}; send some words")
    return speech


# --------------------------------------------------------------------------------------------
# eSpeak NG through ctypes. Layouts and constants follow espeak-ng's speak_lib.h (API revision 12).

AUDIO_OUTPUT_SYNCHRONOUS = 2
espeakINITIALIZE_PHONEME_EVENTS = 0x0001
espeakINITIALIZE_PHONEME_IPA = 0x0002
espeakINITIALIZE_DONT_EXIT = 0x8000  # without it a missing data folder calls exit() in the library
espeakCHARS_UTF8 = 1
espeakENDPAUSE = 0x1000
POS_CHARACTER = 1
espeakRATE, espeakPITCH = 1, 3
EE_OK = 0

espeakEVENT_LIST_TERMINATED = 0
espeakEVENT_WORD = 1
espeakEVENT_SENTENCE = 2
espeakEVENT_END = 5
espeakEVENT_MSG_TERMINATED = 6
espeakEVENT_PHONEME = 7
_EVENT_KIND = {
    espeakEVENT_WORD: "word",
    espeakEVENT_SENTENCE: "sentence",
    espeakEVENT_END: "end",
    espeakEVENT_PHONEME: "phoneme",
}

_BUFFER_MS = 200
"""Audio handed to the callback per call: larger buffers mean fewer Python callbacks."""


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),  # WORD and SENTENCE: running count
        ("name", ctypes.c_char_p),  # MARK and PLAY: UTF-8 string
        ("string", ctypes.c_char * 8),  # PHONEME: UTF-8 name, zero-terminated unless all 8 bytes used
    ]


class _Event(ctypes.Structure):
    # espeak_EVENT; ctypes adds the same padding as the C compiler (40 bytes on 64-bit).
    _fields_ = [
        ("type", ctypes.c_int),  # espeak_EVENT_TYPE (a C enum: int)
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, 1-based
        ("length", ctypes.c_int),  # word length in characters
        ("audio_position", ctypes.c_int),  # milliseconds into this synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    # espeak_VOICE. ``languages`` is a list of (priority byte, zero-terminated name) pairs ended
    # by an empty name, so it is read as a raw pointer, not as c_char_p (which stops at the first 0).
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class _Catalogue:
    """eSpeak's voices keyed by their main language tag (``en-us``), and the variants."""

    voices: dict[str, str]  # "en-us" -> "gmw/en-US"
    languages_of: dict[str, list[tuple[int, str]]]  # "en-us" -> [(2, "en-us"), (3, "en")]
    variants: dict[str, str]  # "f3" -> "f3", "alicia" -> "Alicia" (file names under voices/!v)

    @functools.cached_property
    def languages(self) -> set[str]:
        tags = {tag for entries in self.languages_of.values() for _, tag in entries}
        return tags | {tag.split("-")[0] for tag in tags}

    @functools.cached_property
    def base_languages(self) -> set[str]:
        return {tag.split("-")[0] for tag in self.languages}

    def _matches(self, name: str, language: str) -> list[int]:
        return [p for p, tag in self.languages_of[name] if tag == language or tag.startswith(language + "-")]

    def voices_for(self, language: str) -> list[str]:
        return sorted(name for name in self.voices if self._matches(name, language))

    def best_voice(self, language: str) -> str:
        """The voice eSpeak prefers for a language: an exact tag first, then the lowest priority."""

        def rank(name: str) -> tuple[int, int, str]:
            exact = [p for p, tag in self.languages_of[name] if tag == language]
            return (0, min(exact), name) if exact else (1, min(self._matches(name, language)), name)

        return min(self.voices_for(language), key=rank)


class _ESpeak:
    """libespeak-ng, loaded and initialised once; every call into it holds ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._lib: Any = None
        self.sample_rate = 0
        self._catalogue: _Catalogue | None = None
        self._samples: list[bytes] = []
        self._events: list[tuple[int, int, int, int, bytes | None]] = []
        self._callback_error: BaseException | None = None
        self._callback = _SynthCallback(self._on_synth)  # kept referenced: C holds only the pointer

    # Called from inside espeak_Synth, on the calling thread, with the lock held.
    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        try:
            if wav and count > 0:
                self._samples.append(ctypes.string_at(wav, count * 2))
            if events:
                i = 0
                while True:
                    event = events[i]
                    kind = event.type
                    if kind == espeakEVENT_LIST_TERMINATED:
                        break
                    if kind in _EVENT_KIND:
                        name = event.id.string if kind == espeakEVENT_PHONEME else None
                        self._events.append(
                            (kind, event.text_position, event.length, event.audio_position, name)
                        )
                    i += 1
            return 0
        except BaseException as exc:  # an exception must not unwind through C
            self._callback_error = exc
            return 1  # abort synthesis

    def _load(self) -> Any:
        """Load and initialise the library (caller holds the lock)."""
        if self._lib is not None:
            return self._lib
        try:
            import espeakng_loader
        except ImportError as exc:
            raise SpeechError("eSpeak NG is not installed; run: pip install espeakng-loader") from exc
        try:
            lib_path = espeakng_loader.get_library_path()
            data_path = Path(espeakng_loader.get_data_path())
            lib = ctypes.CDLL(lib_path)
        except (OSError, RuntimeError) as exc:
            raise SpeechError(
                f"cannot load eSpeak NG ({_one_line(exc)}); reinstall it: pip install --force-reinstall "
                "espeakng-loader"
            ) from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,  # text
            ctypes.c_size_t,  # size in bytes
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.POINTER(ctypes.c_uint),  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        options = espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA | espeakINITIALIZE_DONT_EXIT
        # ``path`` is the folder that contains espeak-ng-data.
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(data_path.parent).encode(), options
        )
        if rate <= 0:
            raise SpeechError(
                f"eSpeak NG failed to initialise with data in {data_path}; reinstall espeakng-loader"
            )
        self.sample_rate = rate
        self._lib = lib
        self._catalogue = self._read_catalogue(lib)
        if not self._catalogue.voices:
            self._lib = None
            raise SpeechError(f"eSpeak NG finds no voices in {data_path}; reinstall espeakng-loader")
        log.debug("eSpeak NG %s loaded: %d Hz, %d voices", lib_path, rate, len(self._catalogue.voices))
        return lib

    @staticmethod
    def _voice_list(lib: Any, spec: _Voice | None) -> list[_Voice]:
        array = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
        voices = []
        i = 0
        while array[i]:
            voices.append(array[i].contents)
            i += 1
        return voices

    @staticmethod
    def _languages(pointer: int | None) -> list[tuple[int, str]]:
        entries: list[tuple[int, str]] = []
        while pointer:
            priority = ctypes.string_at(pointer, 1)[0]
            if priority == 0:
                break
            tag = ctypes.string_at(pointer + 1)
            entries.append((priority, tag.decode("utf-8", "replace").lower()))
            pointer += 2 + len(tag)
        return entries

    def _read_catalogue(self, lib: Any) -> _Catalogue:
        voices: dict[str, str] = {}
        languages_of: dict[str, list[tuple[int, str]]] = {}
        for v in self._voice_list(lib, None):
            identifier = (v.identifier or b"").decode("utf-8", "replace")
            entries = self._languages(v.languages)
            if not identifier or not entries or identifier.startswith("mb/"):
                continue  # mbrola voices need the separate mbrola program
            name = entries[0][1]
            if name in voices:
                name = identifier.rsplit("/", 1)[-1].lower()
            voices[name] = identifier
            languages_of[name] = entries
        keep = ctypes.c_char_p(b"variant")
        spec = _Voice()
        spec.languages = ctypes.cast(keep, ctypes.c_void_p)
        variants: dict[str, str] = {}
        for v in self._voice_list(lib, spec):
            identifier = (v.identifier or b"").decode("utf-8", "replace")
            if identifier.startswith("!v/") and " " not in identifier:
                variants[identifier[3:].lower()] = identifier[3:]
        return _Catalogue(voices, languages_of, variants)

    @property
    def catalogue(self) -> _Catalogue:
        with self.lock:
            self._load()
            assert self._catalogue is not None
            return self._catalogue

    def synthesise(self, text: str, identifier: str, rate: int, pitch: int) -> Speech:
        # A NUL would end the C string early and a lone surrogate cannot be encoded: both are
        # replaced one for one, which keeps eSpeak's character positions equal to ours.
        data = text.replace("\x00", " ").encode("utf-8", "replace")
        with self.lock:
            lib = self._load()
            # Set everything on each call: the state is process-global and anything else loading
            # the same library (a phonemizer, say) may have changed it.
            lib.espeak_SetSynthCallback(self._callback)
            if lib.espeak_SetVoiceByName(identifier.encode()) != EE_OK:
                raise SpeechError(f"eSpeak NG cannot load voice {identifier!r}; reinstall espeakng-loader")
            lib.espeak_SetParameter(espeakRATE, rate, 0)
            lib.espeak_SetParameter(espeakPITCH, pitch, 0)
            self._samples, self._events, self._callback_error = [], [], None
            try:
                status = lib.espeak_Synth(
                    data, len(data) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8 | espeakENDPAUSE, None, None
                )
                samples, raw_events, error = self._samples, self._events, self._callback_error
            finally:
                self._samples, self._events, self._callback_error = [], [], None
        if error is not None:
            raise SpeechError(f"eSpeak NG callback failed: {_one_line(error)}") from error
        if status != EE_OK:
            raise SpeechError(
                f"eSpeak NG failed to synthesise (error {status}); try a shorter or plainer text"
            )
        audio = np.frombuffer(b"".join(samples), dtype="<i2").astype(np.float32) / 32768.0
        return Speech(audio, self.sample_rate, self._convert_events(raw_events, text, len(audio)), text)

    def _convert_events(self, raw: list, text: str, n_samples: int) -> list[SpeechEvent]:
        duration = n_samples / self.sample_rate
        text_length = len(text)
        events = []
        for kind, position, length, audio_ms, name in raw:
            start = min(max(position - 1, 0), text_length)
            span = 0
            if kind == espeakEVENT_WORD:
                # eSpeak's spans for the words of a spelled-out number can run past it: trim spaces.
                span = min(max(length, 0), text_length - start)
                while span and text[start + span - 1].isspace():
                    span -= 1
            phoneme = None
            if kind == espeakEVENT_PHONEME:
                phoneme = name.decode("utf-8", "replace") if name else PAUSE_PHONEME
            time_s = min(max(audio_ms / 1000.0, 0.0), duration)
            events.append(SpeechEvent(_EVENT_KIND[kind], time_s, start, span, phoneme))
        return events


_ENGINE = _ESpeak()


def _engine() -> _ESpeak:
    return _ENGINE


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# Piper, imported only when a model is configured.

_PIPER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _piper_voice(model: str, config: str) -> Any:
    from piper import PiperVoice

    return PiperVoice.load(model, config_path=config)


def _speak_piper(text: str, voice: VoiceSettings) -> Speech:
    assert voice.piper_model
    model = Path(voice.piper_model).expanduser()
    if not model.is_file():
        raise SpeechError(
            f"Piper voice model {model} does not exist; put the .onnx voice there or unset piper_model"
        )
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise SpeechError(
            f"Piper voice config {config} does not exist; put the voice's .onnx.json beside the model"
        )
    try:
        import piper
    except ImportError as exc:
        raise SpeechError("Piper is not installed; run: pip install piper-tts") from exc
    length_scale = DEFAULT_RATE / voice.rate
    if voice.pitch != 50:
        log.debug("Piper has no pitch control; pitch %d ignored", voice.pitch)
    chunks: list[np.ndarray] = []
    events: list[SpeechEvent] = []
    try:
        with _PIPER_LOCK:
            pv = _piper_voice(str(model), str(config))
            rate = 0
            if hasattr(piper, "SynthesisConfig"):  # piper-tts >= 1.3: AudioChunk per sentence
                stream = (
                    (c.audio_float_array, c.sample_rate)
                    for c in pv.synthesize(text, syn_config=piper.SynthesisConfig(length_scale=length_scale))
                )
            elif hasattr(pv, "synthesize_stream_raw"):  # piper-tts 1.2: int16 bytes per sentence
                rate = int(pv.config.sample_rate)
                stream = (
                    (np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, rate)
                    for raw in pv.synthesize_stream_raw(text, length_scale=length_scale)
                )
            else:
                raise SpeechError(
                    f"unsupported piper-tts version {getattr(piper, '__version__', '?')}; run: pip install "
                    "-U piper-tts"
                )
            done = 0
            for samples, chunk_rate in stream:
                samples = np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0)
                rate = int(chunk_rate)
                events.append(SpeechEvent("sentence", done / rate, 0, 0))
                done += len(samples)
                events.append(SpeechEvent("end", done / rate, 0, 0))
                chunks.append(samples)
    except GramophoneError:
        raise
    except Exception as exc:  # onnxruntime and piper raise anything
        raise SpeechError(f"Piper failed on voice {model.name}: {_one_line(exc)}") from exc
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Speech(audio, rate or 22050, events, text)
