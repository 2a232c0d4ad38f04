"""Bedtime stories in a real voice: an admin records a story once (a voice note or an audio file),
and the character it belongs to tells it in that voice, lips moving, in parts.

"Dad records the stories once, and the children watch him tell them": no GPU, no voice cloning.
The admin's file is hostile like any user's: its container is sniffed, ffmpeg opens it with that
one demuxer (local files only), its length is measured by decoding and capped. What is stored is
our own copy: ``data_dir/recorded_stories/<character>/<slug>.wav`` (24 kHz mono) and a
``<slug>.json`` beside it with the title and where the parts begin. Parts are cut at the quietest
moment near every ``part_s`` seconds, the first one shorter, so the first video arrives within
seconds; a part is read from the WAV alone (memory stays flat however long the story is).

One owner for these files: this module. Deleting a character deletes its recorded stories.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from engine.names import slugify

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
FIRST_PART_S = 8.0
"""The first part is short: a child sees the storyteller start within seconds."""
SEARCH_S = 4.0
"""A part ends at the quietest moment within this many seconds before its nominal end."""
TITLE_MAX_CHARS = 60
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class RecordedStory:
    character: str
    slug: str
    title: str
    language: str
    duration_s: float
    cuts: tuple[float, ...]
    """Where each part after the first begins, in seconds."""

    @property
    def id(self) -> str:
        return f"rec/{self.character}/{self.slug}"

    @property
    def parts(self) -> int:
        return len(self.cuts) + 1


def part_cuts(
    audio: np.ndarray, sample_rate: int, part_s: float, first_s: float = FIRST_PART_S
) -> list[float]:
    """Where the parts begin: near ``first_s``, then every ``part_s``, each moved back to the
    quietest 50 ms within :data:`SEARCH_S` before it (a pause between words or sentences)."""
    duration = len(audio) / sample_rate
    hop = int(0.05 * sample_rate)
    frames = len(audio) // hop
    if frames < 2:
        return []
    energy = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1))
    cuts: list[float] = []
    target = first_s
    while target < duration - 0.5 * part_s:
        low = max(int((target - SEARCH_S) / 0.05), int((cuts[-1] if cuts else 0.0) / 0.05) + 20, 1)
        high = min(int(target / 0.05), frames - 1)
        if high <= low:
            break
        cut = (low + int(np.argmin(energy[low:high]))) * 0.05
        cuts.append(round(cut, 2))
        target = cut + part_s
    return cuts


class RecordedStories:
    """The recorded stories under ``root`` (one folder per character). Blocking file work: call
    it through ``asyncio.to_thread``."""

    def __init__(self, root: Path, *, part_s: float = 30.0) -> None:
        self.root = Path(root)
        self.part_s = part_s

    def add(self, character: str, title: str, language: str, wav: Path) -> RecordedStory:
        """Keep a story: ``wav`` is our own decoded copy (any rate, mono); it is resampled into
        the store and its parts worked out."""
        from engine.media import read_audio

        title = " ".join(title.split())[:TITLE_MAX_CHARS] or "Story"
        audio = read_audio(wav, SAMPLE_RATE)
        folder = self.root / character
        folder.mkdir(parents=True, exist_ok=True)
        base = slugify(title)[:12].strip("-") or "story"  # short: it travels in a button (64 bytes)
        slug, number = base, 1
        while (folder / f"{slug}.json").exists():
            number += 1
            slug = f"{base}-{number}"
        story = RecordedStory(
            character=character,
            slug=slug,
            title=title,
            language=language,
            duration_s=round(len(audio) / SAMPLE_RATE, 2),
            cuts=tuple(part_cuts(audio, SAMPLE_RATE, self.part_s)),
        )
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".wav", delete=False) as handle:
            soundfile.write(handle, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        Path(handle.name).replace(folder / f"{slug}.wav")
        meta = {
            "title": story.title,
            "language": language,
            "duration_s": story.duration_s,
            "cuts": list(story.cuts),
        }
        partial = folder / f".{slug}.json.part"
        partial.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        partial.replace(folder / f"{slug}.json")  # last: a story is listed only once whole
        log.info("recorded story %s: %r, %.0f s in %d parts", story.id, title, story.duration_s, story.parts)
        return story

    def list(self, character: str) -> list[RecordedStory]:
        """The character's recorded stories, by title."""
        folder = self.root / character
        if not SLUG.match(character) or not folder.is_dir():
            return []
        stories = [self._load(character, path.stem) for path in folder.glob("*.json")]
        return sorted(
            (story for story in stories if story is not None), key=lambda story: story.title.lower()
        )

    def get(self, character: str, slug: str) -> RecordedStory | None:
        """One story, or None (also for names that are not plain: callback data is untrusted)."""
        if not SLUG.match(character) or not SLUG.match(slug):
            return None
        return self._load(character, slug)

    def get_id(self, story_id: str) -> RecordedStory | None:
        prefix, _, rest = story_id.partition("/")
        character, _, slug = rest.partition("/")
        return self.get(character, slug) if prefix == "rec" else None

    def part_audio(self, story: RecordedStory, part: int, out: Path) -> Path:
        """Part ``part`` of the story as a WAV of its own (read from the stored WAV alone)."""
        bounds = (0.0, *story.cuts, story.duration_s)
        start, end = (int(round(bounds[i] * SAMPLE_RATE)) for i in (part, part + 1))
        audio, rate = soundfile.read(
            self.root / story.character / f"{story.slug}.wav", start=start, stop=end, dtype="float32"
        )
        soundfile.write(out, audio, rate, subtype="PCM_16", format="WAV")
        return out

    def remove_character(self, character: str) -> None:
        """A character deleted: its recorded stories go too (they are its voice)."""
        if SLUG.match(character):
            shutil.rmtree(self.root / character, ignore_errors=True)

    def _load(self, character: str, slug: str) -> RecordedStory | None:
        path = self.root / character / f"{slug}.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            return RecordedStory(
                character=character,
                slug=slug,
                title=str(meta["title"]),
                language=str(meta["language"]),
                duration_s=float(meta["duration_s"]),
                cuts=tuple(float(c) for c in meta["cuts"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
