"""The made characters' store: ``data_dir/characters/<id>/``, one folder per character an admin
made from a picture. Names and ids are sanitised by ``engine.names``; folders are published, renamed and
deleted
here, and nothing half-built is ever visible to the catalogue.

Why the care: the catalogue (``engine.characters.Catalogue``) lists every folder of its roots
that holds a ``character.toml``, and readers (the bot, render workers) may look at any moment.
So a new character is unpacked into ``.tmp-<id>-<job>/<id>/`` (a folder the catalogue does not
look into: it has no ``character.toml`` of its own), checked by loading it exactly as the
catalogue will, and then moved into place with one ``rename`` on the same filesystem: readers see
nothing, then the whole character. Deletion is the same move the other way (into
``.deleted-<id>-<n>/`` first, then removed), and a rename rewrites ``character.toml`` through a
temp file and ``os.replace``.

Each published folder carries ``made-by.json`` (job id, path used, when), so publishing is
idempotent: a bot killed between the rename and recording the job as ready finds its own
character in place on restart instead of failing on "already exists".
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from engine.character_spec import CHARACTER_FILE, ID_PATTERN, CharacterError, CharacterSpec
from engine.characters import Character, load_character
from engine.names import ID_MAX_CHARS, NAME_MAX_CHARS, clean_name, slugify, unique_id  # noqa: F401 -- re-exported

log = logging.getLogger(__name__)

MADE_BY_FILE = "made-by.json"
STAGING_PREFIX = ".tmp-"
TRASH_PREFIX = ".deleted-"
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_MEMBERS = 1000
"""A made character is a handful of files; a tar of a million empty ones is an attack on the disk."""
"""A result bigger than this unpacked is refused (a broken or hostile worker)."""


class PublishError(Exception):
    """The finished character cannot be published (a foreign folder in the way, a broken result)."""


class CharacterStore:
    """The folder of made characters. Blocking file work: call it through ``asyncio.to_thread``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- what is there --------------------------------------------------------------------------

    def folder(self, character_id: str) -> Path:
        if not ID_PATTERN.match(character_id):
            raise ValueError(f"not a character id: {character_id!r}")
        return self.root / character_id

    def taken_ids(self) -> set[str]:
        """Every id with a folder here, whole or not (a folder in the way is a collision too)."""
        if not self.root.is_dir():
            return set()
        return {path.name for path in self.root.iterdir() if not path.name.startswith(".")}

    def owns(self, character: Character) -> bool:
        """Whether ``character`` is one of ours (made here), so an admin may rename or delete it."""
        return character.folder.resolve().parent == self.root.resolve()

    def made_by(self, character_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.folder(character_id) / MADE_BY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    # -- publish --------------------------------------------------------------------------------

    def publish(
        self, character_id: str, job_id: int, tar: bytes | Path, made_by: dict[str, Any]
    ) -> Character:
        """Unpack a finished character (a tar, as bytes or a file) and move it into place in one
        rename (idempotent per job).

        Raises
        ------
        PublishError
            Another folder holds the id, or the result is not a loadable, built character.
        """
        final = self.folder(character_id)
        if final.exists():
            if self.made_by(character_id).get("job") == job_id:
                log.info("character %s of make job %d was published before", character_id, job_id)
                return load_character(final)
            raise PublishError(f"a character folder {character_id!r} exists already")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f"{STAGING_PREFIX}{character_id}-{job_id}"
        shutil.rmtree(staging, ignore_errors=True)
        folder = staging / character_id
        folder.mkdir(parents=True)
        try:
            self._unpack(tar, folder)
            (folder / MADE_BY_FILE).write_text(
                json.dumps({**made_by, "job": job_id, "time": time.time()}), encoding="utf-8"
            )
            try:
                character = load_character(folder)
            except CharacterError as error:
                raise PublishError(f"the made character does not load: {error}") from None
            if character.id != character_id:
                raise PublishError(f"the made character has id {character.id!r}, not {character_id!r}")
            if not character.is_built:
                raise PublishError("the made character has no library")
            _fsync_tree(folder)
            os.rename(folder, final)  # the one step readers can see
            _fsync_dir(self.root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("character %s published in %s (make job %d)", character_id, final, job_id)
        return load_character(final)

    @staticmethod
    def _unpack(source: bytes | Path, folder: Path) -> None:
        """Regular files and folders only, inside ``folder`` only (the ``data`` filter refuses
        absolute names, ``..``, links out and device files)."""
        total = 0
        opened = (
            tarfile.open(name=source, mode="r:")
            if isinstance(source, Path)
            else tarfile.open(fileobj=io.BytesIO(source), mode="r:")
        )
        with opened as tar:
            members: list[tarfile.TarInfo] = []
            for member in tar:  # one at a time: getmembers() would read a million headers first
                if len(members) >= MAX_MEMBERS:
                    raise PublishError(f"the result holds more than {MAX_MEMBERS} files")
                if not (member.isfile() or member.isdir()):
                    raise PublishError(f"the result holds {member.name!r}, which is not a plain file")
                total += member.size
                if total > MAX_UNPACKED_BYTES:
                    raise PublishError("the result is too big")
                members.append(member)
            try:
                tar.extractall(folder, members=members, filter="data")
            except tarfile.FilterError as error:
                raise PublishError(f"the result holds an unsafe name: {error}") from None

    # -- change ---------------------------------------------------------------------------------

    def delete(self, character_id: str) -> bool:
        """Remove a made character: gone for readers in one rename, then removed from disk."""
        final = self.folder(character_id)
        if not final.is_dir():
            return False
        trash = self.root / f"{TRASH_PREFIX}{character_id}-{time.time_ns()}"
        trash.mkdir()
        os.rename(final, trash / character_id)
        _fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("character %s deleted", character_id)
        return True

    def rename(self, character_id: str, new_name: str) -> tuple[str, str]:
        """Give a made character a new display name (its id stays: chats keep their choice).

        Greetings that say the old name say the new one. Returns (old name, new name).

        Raises
        ------
        PublishError
            No such character here, or its ``character.toml`` could not be rewritten safely.
        """
        path = self.folder(character_id) / CHARACTER_FILE
        try:
            spec = CharacterSpec.from_toml(path.read_text(encoding="utf-8"), where=path)
        except (OSError, UnicodeDecodeError, CharacterError) as error:
            raise PublishError(f"cannot read {character_id}'s {CHARACTER_FILE}: {error}") from None
        old = spec.name
        updated = spec.renamed(new_name).to_toml()
        tmp = path.with_name(f".{path.name}.part")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(updated)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        log.info("character %s renamed from %r to %r", character_id, old, new_name)
        return old, new_name

    def clean_up(self, keep: frozenset[str] | set[str] = frozenset()) -> None:
        """Remove leftovers of publishes and deletes a crash interrupted (names in ``keep``
        belong to jobs still going)."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if (
                path.name.startswith((STAGING_PREFIX, TRASH_PREFIX))
                and path.name not in keep
                and path.is_dir()
            ):
                log.info("removing the leftover %s", path)
                shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    """Files on disk before the rename that makes them visible (a power cut must not publish
    empty files)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)
