"""The catalogue of characters: folders holding ``character.toml`` and, once built, a library.

A character folder looks like this::

    characters/fox/
        character.toml      # who the character is and how it speaks (committed)
        library.gchar       # the built library (a build output, never committed)

``character.toml``::

    id = "fox"                       # lowercase letters, digits and dashes
    name = "Little Fox"
    description = "A curious little fox from the pine forest"
    language = "en"                  # the character's first language
    pitch_semitones = 4.0            # applied to users' voice notes, so the fox sounds like a fox

    [voice]                          # TTS settings (see engine.speech.VoiceSettings)
    voice = "en-us+f3"
    rate = 150
    pitch = 75

    [greeting]                       # one short line per language
    en = "Hello! I am the little fox."
    ru = "Привет! Я лисёнок."

    [voices.ru]                      # per-language voice overrides
    voice = "ru+f3"

    [library]                        # how to build the library when it is missing
    source = "drawn"                 # "drawn": the code-drawn rig (style below) reading the passages
    style = "fox"
    # source = "video": speech_video = "speech.mp4", idle_video = "idle.mp4" (in the folder),
    #   crop = "face" (default: framed on the face), "centre" (drawn or made videos) or "x,y,w,h"

Folders are read one by one; a broken one (bad TOML, missing fields, missing videos) is reported
with a message naming the folder and the others still load.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .character_spec import CHARACTER_FILE, CharacterError, CharacterSpec
from .errors import InputError
from .speech import VoiceSettings

log = logging.getLogger(__name__)

LIBRARY_FILE = "library.gchar"


BUILTIN_DIR_ENV = "GRAMOPHONE_BUILTIN_CHARACTERS_DIR"
_OLD_BUILTIN_DIR_ENV = "GRAMOPHONE_CHARACTERS_DIR"
DATA_DIR_ENV = "GRAMOPHONE_DATA_DIR"
"""The bot's data folder (its state, queue and made characters), ``data`` by default."""


def builtin_characters_dir() -> Path:
    """The characters shipped with Gramophone (``GRAMOPHONE_BUILTIN_CHARACTERS_DIR`` overrides).

    An installed package carries them as the package data ``engine.assets`` (the checkout's
    ``characters/`` folder, mapped there by ``pyproject.toml``), read through
    :mod:`importlib.resources`; a checkout, or an editable install of one, reads the folder."""
    configured = os.environ.get(BUILTIN_DIR_ENV)
    if not configured and os.environ.get(_OLD_BUILTIN_DIR_ENV):
        configured = os.environ[_OLD_BUILTIN_DIR_ENV]
        log.warning(
            "%s is now called %s (the bot's %sS lists every catalogue root)",
            _OLD_BUILTIN_DIR_ENV,
            BUILTIN_DIR_ENV,
            _OLD_BUILTIN_DIR_ENV,
        )
    if configured:
        return Path(configured)
    try:
        return Path(str(resources.files("engine.assets")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "characters"


def library_cache_dir() -> Path:
    """Where libraries go whose character folder is read-only (an installed package):
    ``$XDG_CACHE_HOME/gramophone/libraries`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gramophone" / "libraries"


def made_characters_dir() -> Path:
    """Where characters made from a picture live: ``$GRAMOPHONE_DATA_DIR/characters``.

    The same folder the bot publishes its made characters to (its ``data_dir`` defaults to
    ``data`` too), so a character made on the command line is one the bot offers, and one
    made in the bot is one ``gramophone say`` can use."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data") / "characters"


@dataclass(frozen=True)
class Character:
    """One character: who it is, how it speaks, where its library is."""

    id: str
    name: str
    description: str
    language: str
    folder: Path
    pitch_semitones: float = 0.0
    greetings: dict[str, str] = field(default_factory=dict)
    voices: dict[str, VoiceSettings] = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    @property
    def library_path(self) -> Path:
        """``library.gchar`` in the character's folder, or in the library cache when the folder
        is read-only and holds none (the built-in characters of an installed package)."""
        own = self.folder / LIBRARY_FILE
        if own.is_file() or os.access(self.folder, os.W_OK):
            return own
        return library_cache_dir() / self.id / LIBRARY_FILE

    @property
    def is_built(self) -> bool:
        return self.library_path.is_file()

    def voice_for(self, language: str | None = None) -> VoiceSettings:
        """The TTS voice for ``language`` (the character's own language by default)."""
        language = language or self.language
        if language in self.voices:
            return self.voices[language]
        return VoiceSettings(language=language)

    def greeting_for(self, language: str | None = None) -> str:
        language = language or self.language
        return (
            self.greetings.get(language) or self.greetings.get(self.language) or f"Hello! I am {self.name}."
        )


def _voice(table: dict, language: str, where: Path) -> VoiceSettings:
    allowed = {"backend", "voice", "rate", "pitch", "piper_model"}
    unknown = set(table) - allowed - {"language"}
    if unknown:
        raise CharacterError(f"{where}: unknown voice setting(s) {', '.join(sorted(unknown))}")
    settings = {key: table[key] for key in allowed if key in table}
    if "piper_model" in settings:
        settings["piper_model"] = str(where.parent / settings["piper_model"])
    try:
        return VoiceSettings(language=table.get("language", language), **settings)
    except (InputError, TypeError) as error:
        raise CharacterError(f"{where}: bad voice settings: {error}") from None


def load_character(folder: str | os.PathLike) -> Character:
    """Read and validate one character folder.

    Raises
    ------
    CharacterError
        Naming the folder and what is wrong with it.
    """
    folder = Path(folder)
    toml_path = folder / CHARACTER_FILE
    if not toml_path.is_file():
        raise CharacterError(f"{folder}: no {CHARACTER_FILE}")
    try:
        text = toml_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CharacterError(f"{toml_path}: not valid TOML ({error})") from None
    spec = CharacterSpec.from_toml(text, where=toml_path)
    language = spec.language
    voices = {language: _voice(dict(spec.voice), language, toml_path)}
    for other, table in spec.voices.items():
        voices[other] = _voice(
            {**spec.voice, **table, "language": table.get("language", other)}, other, toml_path
        )
    source = dict(spec.library)
    kind = source["source"]
    if kind == "video" and not (folder / LIBRARY_FILE).is_file():
        video = folder / source.get("speech_video", "speech.mp4")
        if not video.is_file():
            raise CharacterError(
                f"{folder}: no {LIBRARY_FILE} and no speech video {video.name} to build it from"
            )
    return Character(
        id=spec.id,
        name=spec.name,
        description=spec.description,
        language=language,
        folder=folder,
        pitch_semitones=spec.pitch_semitones,
        greetings=dict(spec.greeting),
        voices=voices,
        source=source,
    )


class Catalogue:
    """All characters under one or more root folders (later roots win on equal ids): by default
    the built-in ones and the made ones (:func:`made_characters_dir`).

    ``problems`` lists the folders that failed to load, each with its one-line reason.
    """

    def __init__(self, *roots: str | os.PathLike) -> None:
        self.roots = [Path(root) for root in (roots or (builtin_characters_dir(), made_characters_dir()))]
        self.characters: dict[str, Character] = {}
        self.problems: list[str] = []
        self.reload()

    def reload(self) -> None:
        characters: dict[str, Character] = {}
        problems: list[str] = []
        for root in self.roots:
            if not root.is_dir():
                continue
            for folder in sorted(
                path for path in root.iterdir() if path.is_dir() and (path / CHARACTER_FILE).exists()
            ):
                try:
                    character = load_character(folder)
                except CharacterError as error:
                    problems.append(str(error))
                    log.warning("skipping character folder: %s", error)
                    continue
                characters[character.id] = character
        self.characters, self.problems = characters, problems

    def list(self) -> list[Character]:
        return sorted(self.characters.values(), key=lambda character: character.name.lower())

    def get(self, identifier: str) -> Character:
        try:
            return self.characters[identifier]
        except KeyError:
            known = ", ".join(sorted(self.characters)) or "none"
            raise InputError(f"unknown character {identifier!r} (known: {known})") from None


def ensure_library(
    character: Character, progress: Callable[[int], None] | None = None, rebuild: bool = False
) -> Path:
    """The character's library, built first if it is missing (or ``rebuild``).

    A lock file in the folder makes concurrent callers (several workers starting at once) wait
    for one build instead of each doing it.
    """
    if character.is_built and not rebuild:
        return character.library_path
    library = character.library_path
    library.parent.mkdir(parents=True, exist_ok=True)
    lock_path = library.parent / ".build.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if character.is_built and not rebuild:
            return character.library_path
        log.info("building the library of %s", character.id)
        if character.source["source"] == "drawn":
            from .makers.drawn import build_drawn_character

            build_drawn_character(character, progress=progress)
        else:
            from .build import BuildSettings, build_library
            from .media import Crop

            speech = character.folder / character.source.get("speech_video", "speech.mp4")
            idle_name = character.source.get("idle_video")
            idle = character.folder / idle_name if idle_name else None
            crop = str(character.source.get("crop", "face"))
            settings = BuildSettings(
                size=int(character.source.get("size", 512)), crop=Crop.parse(crop) if "," in crop else crop
            )
            takes = character.source.get("takes")  # a person recorded in takes: no segment across two
            take_frames = [int(count) for count in takes] if isinstance(takes, list) and takes else None
            build_library(
                speech, character.library_path, idle, settings, progress=progress, take_frames=take_frames
            )
    return character.library_path
