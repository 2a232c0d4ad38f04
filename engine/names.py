"""Characters' names and ids: what a person typed, made safe to show and to use as a folder.

One owner for both doors a character comes in by (the bot's ``/newcharacter`` and
``gramophone characters make``), so both accept and refuse the same names.
"""

from __future__ import annotations

import re
import unicodedata

NAME_MAX_CHARS = 40
ID_MAX_CHARS = 40

_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґў",
        "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya i yi ye g u".split(),
        strict=True,
    )
)


def clean_name(text: str | None) -> str | None:
    """A character's display name from what an admin typed, or None when there is none left.

    Control and format characters go (they could hide text or break a button label), runs of
    spaces become one, and the result must be 1 to 40 characters."""
    if not isinstance(text, str):
        return None
    text = unicodedata.normalize("NFC", text)
    kept = "".join(
        " " if char.isspace() else char
        for char in text
        if unicodedata.category(char)[0] != "C" or char.isspace()
    )
    name = " ".join(kept.split())
    if not name or len(name) > NAME_MAX_CHARS:
        return None
    return name


def slugify(name: str) -> str:
    """``"Mr. Бобр Ёжиков!"`` -> ``"mr-bobr-ezhikov"``: lowercase ASCII letters, digits and dashes
    (Cyrillic transliterated, accents dropped), never empty, never a path."""
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", name.lower()):
        if char in _CYRILLIC:
            out.append(_CYRILLIC[char].strip("-"))
        elif char.isascii() and char.isalnum():
            out.append(char)
        elif unicodedata.combining(char):
            continue
        else:
            out.append("-")
    slug = re.sub(r"-+", "-", "".join(out)).strip("-")[:ID_MAX_CHARS].strip("-")
    return slug or "character"


def unique_id(name: str, taken: set[str]) -> str:
    """An id for ``name`` that is none of ``taken``: its slug, else ``slug-2``, ``slug-3``..."""
    base = slugify(name)
    if base not in taken:
        return base
    for number in range(2, 10_000):
        suffix = f"-{number}"
        candidate = f"{base[: ID_MAX_CHARS - len(suffix)].rstrip('-')}{suffix}"
        if candidate not in taken:
            return candidate
    raise RuntimeError("no free character id")  # 10 000 characters of one name: not a real case
