"""Bedtime stories: ``<stories_dir>/<lang>/<slug>.txt``, the title on the first line.

A story is told in parts, one video each, so the first part reaches the child within seconds
while the rest renders; parts end at sentence ends. The first part is shorter than the others for
the same reason. Files are read when asked for (a handful of small files), so stories added while
the bot runs appear at the next /story.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from engine.speech import split_sentences

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
"""File names usable as story ids: they travel in callback data (64 bytes at most)."""


@dataclass(frozen=True)
class Story:
    language: str
    slug: str
    title: str
    body: str

    @property
    def id(self) -> str:
        """``en/goldilocks``: what the requests table stores as the story's input."""
        return f"{self.language}/{self.slug}"

    def parts(self, part_chars: int) -> list[str]:
        """The story (title first) cut into parts of about ``part_chars`` at sentence ends."""
        title = self.title if self.title[-1:] in ".!?…" else f"{self.title}."
        return split_parts(f"{title}\n{self.body}", part_chars, first_part_chars=max(part_chars // 2, 80))


def split_parts(text: str, part_chars: int, first_part_chars: int | None = None) -> list[str]:
    """Group sentences into parts of at most ``part_chars`` characters (the first at most
    ``first_part_chars``); a single longer sentence makes a part of its own."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in split_sentences(text):
        limit = first_part_chars if (first_part_chars and not parts) else part_chars
        if current and size + 1 + len(sentence) > limit:
            parts.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += len(sentence) + (1 if size else 0)
    if current:
        parts.append(" ".join(current))
    if (
        len(parts) > 2
        and len(parts[-1]) < part_chars // 4
        and len(parts[-2]) + len(parts[-1]) < part_chars * 5 // 4
    ):
        parts[-2:] = [f"{parts[-2]} {parts[-1]}"]  # no tiny last video of one sentence
    return parts


class Storybook:
    """The stories under one folder, by language."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def languages(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.iterdir() if path.is_dir())

    def list(self, language: str) -> list[Story]:
        """The stories in ``language``, by title; unreadable files are skipped with a warning."""
        folder = self.root / language
        if not SLUG.match(language) or not folder.is_dir():
            return []
        stories = []
        for path in sorted(folder.glob("*.txt")):
            story = self._load(language, path)
            if story is not None:
                stories.append(story)
        return sorted(stories, key=lambda story: story.title.lower())

    def get(self, language: str, slug: str) -> Story | None:
        """One story, or None (also for ids that are not plain file names: callback data is
        untrusted)."""
        if not SLUG.match(language) or not SLUG.match(slug):
            return None
        path = self.root / language / f"{slug}.txt"
        return self._load(language, path) if path.is_file() else None

    def get_id(self, story_id: str) -> Story | None:
        language, _, slug = story_id.partition("/")
        return self.get(language, slug)

    @staticmethod
    def _load(language: str, path: Path) -> Story | None:
        slug = path.stem
        if not SLUG.match(slug):
            log.warning("story %s: the file name must be lowercase letters, digits, '-' or '_'", path)
            return None
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            log.warning("story %s unreadable: %s", path, error)
            return None
        title, _, body = text.partition("\n")
        if not title.strip() or not split_sentences(body):
            log.warning("story %s: needs a title line and some text", path)
            return None
        return Story(language, slug, title.strip(), body.strip())
