"""The character library file: one self-contained SQLite file per character.

Why SQLite: one file that copies as one file, random access to any frame by index without
loading the rest, and a crash-safe format every language can read. Layout (format version 2):

``meta(key TEXT PRIMARY KEY, value TEXT)``
    ``format`` (always ``gramophone-library``), ``format_version``, ``size`` (frame side in
    pixels), ``fps``, ``idle_source`` (``idle-video``, ``speech-pauses`` or
    ``quietest-segments``), ``build`` (JSON of the build settings), ``created``.
``frames(id INTEGER PRIMARY KEY, source INTEGER, jpeg BLOB)``
    Every frame of every source video, numbered from 0 in recording order; ``source`` is 0 for
    the speech video, 1 for the idle video. Frames are JPEG (quality in the build settings).
``segments(id INTEGER PRIMARY KEY, start INTEGER, length INTEGER, kind TEXT, fingerprint BLOB)``
    Overlapping 10-frame windows (step 2) of one source; ``kind`` is ``speech`` or ``idle``, so
    the planner plays idle segments in pauses; ``fingerprint`` is 16 float32 (see
    :mod:`engine.features`). A segment's first- and last-frame thumbnails are rows ``start``
    and ``start + length - 1`` of the ``thumbnails`` array (stored once per frame, since
    overlapping segments share frames).
``arrays(name TEXT PRIMARY KEY, dtype TEXT, shape TEXT, data BLOB)``
    Per-frame numpy arrays: ``features`` (n, 16) float32 normalised features, ``thumbnails``
    (n, 64, 64) uint8 grey, ``embeddings`` (n, k) float32 (thumbnails projected on their main
    principal components: cheap distances for the global planner), ``levels`` (n,) float32 dB,
    ``speech`` (n,) bool voice activity of the recording, ``idle`` (n,) bool frames the idle
    library may play. Since v2: ``mouth`` (n, 2) float32 opening and width, ``mouth_found``
    (n,) bool, ``mouth_code`` (n, 8) float32 appearance code (see :mod:`engine.mouth`), and the
    audio -> mouth model ``mouth_model_weights``, ``mouth_model_x``, ``mouth_model_y``, with
    meta ``mouth`` (JSON: how it was measured, the model's ridge penalty and held-out r), and
    ``voice`` (2, 15) float32, the recording's voice (:func:`engine.features.voice_profile`),
    so the planner knows when new audio is in another voice than the model learnt from (a v2
    file without it plans as if every voice were the recording's).

A library is written to a temporary file beside its destination and renamed into place when
complete, so a reader never sees half a library, whatever happens during the build.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import sqlite_utils

from .errors import InputError, LibraryError
from .files import default_file_mode

if TYPE_CHECKING:
    from .mouth import MouthModel

log = logging.getLogger(__name__)

FORMAT = "gramophone-library"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""v2 adds the mouth: ``mouth``, ``mouth_found``, ``mouth_code`` and the audio -> mouth model.
A v1 file still opens and renders as before (no mouth term in planning); ``gramophone build``
or ``gramophone characters build --rebuild`` makes a v2 one."""
THUMB_SIZE = 64
SPEECH_SOURCE, IDLE_SOURCE = 0, 1
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class LibraryInfo:
    """A summary of a library, as ``gramophone info`` prints it."""

    path: Path
    format_version: int
    size: int
    fps: int
    frames: int
    speech_frames: int
    idle_frames: int
    speech_segments: int
    idle_segments: int
    idle_source: str
    file_bytes: int
    build: dict = field(default_factory=dict)
    created: str = ""
    mouth: dict = field(default_factory=dict)
    voice_kept: bool = False

    @property
    def speech_seconds(self) -> float:
        return self.speech_frames / self.fps

    @property
    def idle_seconds(self) -> float:
        return self.idle_frames / self.fps

    def lines(self) -> list[str]:
        """Human-readable lines for the CLI."""
        idle_notes = {
            "idle-video": "from the idle video",
            "speech-pauses": "from pauses in the speech video",
            "quietest-segments": "no pauses in the speech video: its quietest, stillest segments",
        }
        settings = ", ".join(f"{key}={value}" for key, value in sorted(self.build.items()))
        return [
            f"library      {self.path}",
            f"format       {FORMAT} v{self.format_version}",
            f"frames       {self.frames} at {self.size}x{self.size}, {self.fps} fps",
            f"speech       {self.speech_frames} frames ({self.speech_seconds:.1f} s), "
            f"{self.speech_segments} segments",
            f"idle         {self.idle_frames} frames ({self.idle_seconds:.1f} s), {self.idle_segments} "
            f"segments, {idle_notes.get(self.idle_source, self.idle_source)}",
            f"file size    {self.file_bytes / 1e6:.1f} MB",
            f"mouth        {self._mouth_line()}",
            "voice        "
            + (
                "kept: another voice is planned by its loudness (and phonemes, for TTS)"
                if self.voice_kept
                else "not kept: every voice is planned as the recording's (gramophone characters build "
                "--rebuild, or build again, to keep it)"
            ),
            f"built        {self.created}",
            f"settings     {settings}",
        ]

    def _mouth_line(self) -> str:
        if not self.mouth:
            return "not measured (a v1 library: rebuild it for mouth-aware planning)"
        found = 100 * self.mouth.get("found", 0)
        how = f"{self.mouth.get('measure')} ({self.mouth.get('landmarks')})"
        line = f"measured by {how}, on {found:.0f}% of frames"
        model = self.mouth.get("model")
        if model:
            r = model.get("cv_r", [0, 0])
            line += f"; audio->mouth model r {r[0]:.2f} opening, {r[1]:.2f} width (held out)"
        return line


def _array_row(name: str, array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array)
    return {"name": name, "dtype": array.dtype.str, "shape": json.dumps(array.shape), "data": array.tobytes()}


class LibraryWriter:
    """Write a library to a temporary file and publish it atomically on :meth:`commit`.

    Leaving the ``with`` block without committing (an exception, say) deletes the temporary
    file, so nothing partial is ever left behind.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None
        self._db: sqlite_utils.Database | None = None
        self._next_frame = 0

    def __enter__(self) -> LibraryWriter:
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=directory)
            os.close(handle)
        except OSError as error:
            raise InputError(f"cannot write {self.path}: {error.strerror}") from None
        self._tmp = Path(tmp)
        os.chmod(self._tmp, default_file_mode())  # mkstemp makes 0600 whatever the umask
        conn = sqlite3.connect(self._tmp)
        # The temporary file is thrown away on any failure, so no journal is needed while building.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        self._db = sqlite_utils.Database(conn)
        self._db.table("meta").create({"key": str, "value": str}, pk="key")
        self._db.table("frames").create({"id": int, "source": int, "jpeg": bytes}, pk="id")
        self._db.table("segments").create(
            {"id": int, "start": int, "length": int, "kind": str, "fingerprint": bytes}, pk="id"
        )
        self._db.table("arrays").create({"name": str, "dtype": str, "shape": str, "data": bytes}, pk="name")
        return self

    def add_frames(self, source: int, jpegs: Iterable[bytes]) -> int:
        """Append JPEG frames of one source; returns the index of the first one."""
        assert self._db is not None
        first = self._next_frame
        rows = []
        for jpeg in jpegs:
            rows.append((self._next_frame, source, jpeg))
            self._next_frame += 1
        self._db.conn.executemany("INSERT INTO frames (id, source, jpeg) VALUES (?, ?, ?)", rows)
        return first

    @property
    def frame_count(self) -> int:
        return self._next_frame

    def set_array(self, name: str, array: np.ndarray) -> None:
        assert self._db is not None
        self._db.table("arrays").insert(_array_row(name, array), replace=True)

    def set_segments(
        self, starts: np.ndarray, kinds: list[str], fingerprints: np.ndarray, length: int
    ) -> None:
        assert self._db is not None
        self._db.table("segments").insert_all(
            (
                {
                    "id": i,
                    "start": int(start),
                    "length": length,
                    "kind": kind,
                    "fingerprint": fingerprints[i].astype(np.float32).tobytes(),
                }
                for i, (start, kind) in enumerate(zip(starts, kinds))
            ),
            batch_size=2000,
        )

    def set_meta(self, **values: object) -> None:
        assert self._db is not None
        self._db.table("meta").insert_all(
            (
                {"key": key, "value": value if isinstance(value, str) else json.dumps(value)}
                for key, value in values.items()
            ),
            replace=True,
        )

    def commit(self) -> Path:
        """Finish the file and rename it into place; the library is visible only from now on."""
        assert self._db is not None and self._tmp is not None
        self.set_meta(format=FORMAT, format_version=FORMAT_VERSION)
        self._db.conn.commit()
        self._db.conn.close()
        self._db = None
        with open(self._tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._db is not None:
            self._db.conn.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


class Library:
    """A library opened for rendering: arrays in memory, frames read from the file on demand.

    The SQLite connection is opened read-only and belongs to the thread that opened it; open one
    ``Library`` per worker process.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LibraryError(f"{self.path}: no such character library (build one with `gramophone build`)")
        with open(self.path, "rb") as handle:
            if handle.read(16) != _SQLITE_MAGIC:
                raise LibraryError(f"{self.path}: not a Gramophone character library")
        try:
            self._conn = sqlite3.connect(
                f"file:{self.path.resolve()}?mode=ro", uri=True, check_same_thread=False
            )
            self._db = sqlite_utils.Database(self._conn)
            meta = {row["key"]: row["value"] for row in self._db["meta"].rows}
        except sqlite3.DatabaseError:
            raise LibraryError(
                f"{self.path}: not a Gramophone character library (unreadable SQLite)"
            ) from None
        if meta.get("format") != FORMAT:
            raise LibraryError(f"{self.path}: not a Gramophone character library")
        version = int(meta.get("format_version", "0"))
        if version not in READABLE_VERSIONS:
            newer = "a newer" if version > FORMAT_VERSION else "an older"
            raise LibraryError(
                f"{self.path}: library format v{version} is from {newer} Gramophone; this one reads "
                f"v{FORMAT_VERSION}: rebuild it with `gramophone build`"
            )
        self.meta = meta
        self.size = int(meta["size"])
        self.fps = int(meta["fps"])
        try:
            self._arrays = {row["name"]: row for row in self._db["arrays"].rows}
            segments = list(
                self._conn.execute("SELECT start, length, kind, fingerprint FROM segments ORDER BY id")
            )
            self.frame_count = self._conn.execute("SELECT count(*) FROM frames").fetchone()[0]
            sources = np.array(
                [row[0] for row in self._conn.execute("SELECT source FROM frames ORDER BY id")], dtype=np.int8
            )
        except (sqlite3.DatabaseError, KeyError):
            raise LibraryError(f"{self.path}: damaged library (rebuild it with `gramophone build`)") from None
        if not segments or self.frame_count == 0:
            raise LibraryError(
                f"{self.path}: damaged library: no segments (rebuild it with `gramophone build`)"
            )
        self.segment_starts = np.array([row[0] for row in segments], dtype=np.int64)
        self.segment_length = int(segments[0][1])
        self.segment_is_idle = np.array([row[2] == "idle" for row in segments], dtype=bool)
        self.fingerprints = np.stack([np.frombuffer(row[3], dtype=np.float32) for row in segments])
        self.sources = sources
        # Exclusive end of the source each frame belongs to: playback never runs across sources.
        self.source_end = np.empty(self.frame_count, dtype=np.int64)
        boundaries = np.flatnonzero(np.diff(sources)) + 1
        ends = np.append(boundaries, self.frame_count)
        starts = np.insert(boundaries, 0, 0)
        for start, end in zip(starts, ends):
            self.source_end[start:end] = end
        self._select = "SELECT jpeg FROM frames WHERE id = ?"

    def array(self, name: str) -> np.ndarray:
        try:
            row = self._arrays[name]
        except KeyError:
            raise LibraryError(f"{self.path}: damaged library: no {name!r} array (rebuild it)") from None
        return np.frombuffer(row["data"], dtype=np.dtype(row["dtype"])).reshape(json.loads(row["shape"]))

    @cached_property
    def features(self) -> np.ndarray:
        return self.array("features")

    @cached_property
    def thumbnails(self) -> np.ndarray:
        return self.array("thumbnails")

    @cached_property
    def embeddings(self) -> np.ndarray:
        return self.array("embeddings")

    @cached_property
    def idle_frames(self) -> np.ndarray:
        return self.array("idle")

    @cached_property
    def mouth(self) -> np.ndarray | None:
        """(n, 2) measured opening and width per frame; None in a v1 library."""
        return self.array("mouth") if "mouth" in self._arrays else None

    @cached_property
    def mouth_found(self) -> np.ndarray | None:
        return self.array("mouth_found") if "mouth_found" in self._arrays else None

    @cached_property
    def mouth_anchors(self) -> np.ndarray | None:
        """(n, 8, 2) landmark points per frame (:data:`engine.mouth.ANCHORS`); None without landmarks."""
        return self.array("mouth_anchors") if "mouth_anchors" in self._arrays else None

    @cached_property
    def voice(self) -> np.ndarray | None:
        """(2, 15) the recording's voice (:func:`engine.features.voice_profile`); None in older files."""
        return self.array("voice") if "voice" in self._arrays else None

    @cached_property
    def mouth_meta(self) -> dict:
        return json.loads(self.meta.get("mouth", "{}"))

    @cached_property
    def mouth_model(self) -> MouthModel | None:
        """The recording's audio -> mouth model; None in a v1 library or one too short to learn it."""
        from .mouth import MouthModel

        names = ("mouth_model_weights", "mouth_model_x", "mouth_model_y")
        if not all(name in self._arrays for name in names):
            return None
        return MouthModel.from_arrays(
            {name: self.array(name) for name in names}, self.mouth_meta.get("model", {})
        )

    def jpeg(self, index: int) -> bytes:
        row = self._conn.execute(self._select, (int(index),)).fetchone()
        if row is None:
            raise LibraryError(f"{self.path}: damaged library: frame {index} is missing")
        return row[0]

    def frame(self, index: int) -> np.ndarray:
        """Decode frame ``index`` as a BGR uint8 array."""
        image = cv2.imdecode(np.frombuffer(self.jpeg(index), dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise LibraryError(f"{self.path}: damaged library: frame {index} does not decode")
        return image

    def info(self) -> LibraryInfo:
        idle_segments = int(self.segment_is_idle.sum())
        return LibraryInfo(
            path=self.path,
            format_version=int(self.meta["format_version"]),
            size=self.size,
            fps=self.fps,
            frames=self.frame_count,
            speech_frames=int((self.sources == SPEECH_SOURCE).sum()),
            idle_frames=int(self.idle_frames.sum()),
            speech_segments=len(self.segment_starts) - idle_segments,
            idle_segments=idle_segments,
            idle_source=self.meta.get("idle_source", "unknown"),
            file_bytes=self.path.stat().st_size,
            build=json.loads(self.meta.get("build", "{}")),
            created=self.meta.get("created", ""),
            mouth=self.mouth_meta,
            voice_kept=self.voice is not None,
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_library(path: str | os.PathLike) -> Library:
    """Open a character library for rendering (raises :class:`LibraryError` with a clear message)."""
    return Library(path)
