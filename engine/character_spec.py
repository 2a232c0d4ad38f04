"""``character.toml``: its one reader and its one writer.

The file is written by hand for the built-in characters, by :mod:`engine.makers.make` for made
ones, and rewritten by the bot when an admin renames a character. All three go through
:class:`CharacterSpec`: ``from_toml`` checks the shape (what a folder must also hold is
:func:`engine.characters.load_character`'s business), ``to_toml`` writes a file ``from_toml``
reads back to an equal spec. Keys this version does not know are kept as they were, and so is
the comment block at the top of the file; other comments are not (a rename rewrites the file).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import GramophoneError

CHARACTER_FILE = "character.toml"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
SOURCES = ("drawn", "video")
PITCH_RANGE = (-12.0, 12.0)
_KNOWN = (
    "id",
    "name",
    "description",
    "language",
    "pitch_semitones",
    "portrait",
    "voice",
    "voices",
    "greeting",
    "library",
)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class CharacterError(GramophoneError):
    """A character folder that cannot be used; the message names the folder."""


@dataclass(frozen=True)
class CharacterSpec:
    """What ``character.toml`` says: who the character is, how it speaks, how to build it."""

    id: str
    name: str
    language: str
    description: str = ""
    pitch_semitones: float = 0.0
    portrait: str | None = None
    voice: Mapping[str, Any] = field(default_factory=dict)
    """The base TTS voice table (:class:`engine.speech.VoiceSettings` fields)."""
    voices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-language overrides of ``voice``."""
    greeting: Mapping[str, str] = field(default_factory=dict)
    library: Mapping[str, Any] = field(default_factory=lambda: {"source": "video"})
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Top-level keys and tables this version does not know, written back unchanged."""
    comment: str = ""
    """The comment block at the top of the file (without the ``#``), one line per line."""

    @classmethod
    def from_toml(cls, text: str, *, where: object = CHARACTER_FILE) -> CharacterSpec:
        """Parse and check a ``character.toml``; ``where`` names it in errors.

        Raises
        ------
        CharacterError
            Not TOML, a required field missing, or a field of the wrong kind.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise CharacterError(f"{where}: not valid TOML ({error})") from None
        missing = [
            key
            for key in ("id", "name", "language")
            if not isinstance(data.get(key), str) or not data.get(key)
        ]
        if missing:
            raise CharacterError(f"{where}: missing {', '.join(missing)}")
        identifier = data["id"]
        if not ID_PATTERN.match(identifier):
            raise CharacterError(f"{where}: id {identifier!r} must be lowercase letters, digits and dashes")
        try:
            pitch = float(data.get("pitch_semitones", 0.0))
        except (TypeError, ValueError):
            raise CharacterError(f"{where}: pitch_semitones must be a number") from None
        if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1] or not math.isfinite(pitch):
            raise CharacterError(f"{where}: pitch_semitones must be between -12 and 12")
        greeting = data.get("greeting", {})
        if isinstance(greeting, str):
            greeting = {data["language"]: greeting}
        library = data.get("library", {"source": "video"})
        tables = {
            "voice": data.get("voice", {}),
            "voices": data.get("voices", {}),
            "greeting": greeting,
            "library": library,
        }
        for key, value in tables.items():
            if not isinstance(value, dict):
                raise CharacterError(f"{where}: [{key}] must be a table")
        if any(not isinstance(table, dict) for table in tables["voices"].values()):
            raise CharacterError(f"{where}: each [voices.<language>] must be a table")
        kind = library.get("source", "video")
        if kind not in SOURCES:
            raise CharacterError(f"{where}: library source {kind!r} must be one of {', '.join(SOURCES)}")
        portrait = data.get("portrait")
        return cls(
            id=identifier,
            name=data["name"],
            language=data["language"],
            description=str(data.get("description", "")),
            pitch_semitones=pitch,
            portrait=None if portrait is None else str(portrait),
            voice=dict(tables["voice"]),
            voices={str(k): dict(v) for k, v in tables["voices"].items()},
            greeting={str(k): str(v) for k, v in greeting.items()},
            library={**library, "source": kind},
            extra={key: value for key, value in data.items() if key not in _KNOWN},
            comment=_leading_comment(text),
        )

    def to_toml(self) -> str:
        """The spec as ``character.toml`` text (UTF-8; every string escaped, control characters too)."""
        lines = [f"# {line}".rstrip() for line in self.comment.splitlines()] if self.comment else []
        top: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "language": self.language,
            "pitch_semitones": float(self.pitch_semitones),
        }
        if self.portrait is not None:
            top["portrait"] = self.portrait
        scalars = {key: value for key, value in self.extra.items() if not isinstance(value, dict)}
        lines += [f"{_key(key)} = {_value(value)}" for key, value in {**top, **scalars}.items()]
        tables: dict[str, Any] = {
            "voice": self.voice,
            "voices": self.voices,
            "greeting": self.greeting,
            "library": self.library,
        }
        tables.update({key: value for key, value in self.extra.items() if isinstance(value, dict)})
        for name, table in tables.items():
            if table:
                lines += _table([name], table)
        return "\n".join(lines) + "\n"

    def renamed(self, new_name: str) -> CharacterSpec:
        """The same character under a new display name; greetings that say the old name say the new."""
        greeting = {
            language: line.replace(self.name, new_name) if self.name else line
            for language, line in self.greeting.items()
        }
        return replace(self, name=new_name, greeting=greeting)


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return "\n".join(lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _value(key)


def _value(value: Any) -> str:
    """A TOML value. Strings are basic strings: JSON's escapes are TOML's, plus DEL."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} has no TOML form")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise TypeError(f"cannot write {type(value).__name__} to {CHARACTER_FILE}")


def _table(path: list[str], table: Mapping[str, Any]) -> list[str]:
    """``[path]`` with its plain values, then its sub-tables as ``[path.name]``."""
    plain = {key: value for key, value in table.items() if not isinstance(value, Mapping)}
    lines = ["", f"[{'.'.join(_key(part) for part in path)}]"] if plain or not table else []
    lines += [f"{_key(key)} = {_value(value)}" for key, value in plain.items()]
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines += _table([*path, key], value)
    return lines
