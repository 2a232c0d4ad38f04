"""The bot's state: chats, requests and make jobs in SQLite (``data_dir/state.db``, WAL), via
sqlite-utils.

A request's whole life is a row here, not an object in memory, so any process may die at any
moment and the next one carries on: the dispatcher resumes every row that is not ``sent`` or
``failed``. The bot process is the only writer; workers never open this file (they may run on
other machines), which keeps SQLite's single-writer rule trivially true.

Status changes are compare-and-set (``UPDATE ... WHERE id = ? AND status = ?``), so a change
based on a stale read does nothing instead of overwriting a newer one. ``UNIQUE(chat_id,
incoming_message_id, kind, part)`` makes a redelivered Telegram update a no-op instead of a second
request.

Make jobs (characters admins asked for, :mod:`bot.making`) live the same way: a row per job,
``queued -> running -> ready`` (or ``failed`` / ``cancelled``), compare-and-set changes, unique
per status message so a redelivered "make it" press is not a second job.

The schema version is ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades older files in place,
keeping their data, each step in one transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

log = logging.getLogger(__name__)

KINDS = ("voice", "text", "story", "greeting", "preview")


class Status(StrEnum):
    """A request's life. ``fetching``: a voice note recorded (with its file id) before its file
    is downloaded and checked, so a bot killed mid-download still owes the answer and fetches it
    after the restart."""

    FETCHING = "fetching"
    RECEIVED = "received"
    QUEUED = "queued"
    RENDERING = "rendering"
    RENDERED = "rendered"
    SENT = "sent"
    FAILED = "failed"


STATUSES = tuple(Status)
TRANSITIONS: dict[str, frozenset[str]] = {
    # from -> where it may go; Store.transition refuses any other move (staying put is annotate)
    Status.FETCHING: frozenset({Status.RECEIVED, Status.FAILED}),
    Status.RECEIVED: frozenset(
        {Status.QUEUED, Status.FETCHING, Status.FAILED}
    ),  # fetching: its checked file is gone
    # a task finished, was lost (received: try again) or the story it belongs to failed
    Status.QUEUED: frozenset({Status.RENDERING, Status.RENDERED, Status.RECEIVED, Status.FAILED}),
    Status.RENDERING: frozenset({Status.QUEUED, Status.RENDERED, Status.RECEIVED, Status.FAILED}),
    Status.RENDERED: frozenset({Status.SENT, Status.RECEIVED, Status.FAILED}),  # received: its file is gone
    Status.SENT: frozenset(),
    Status.FAILED: frozenset(),
}
ACTIVE = ("fetching", "received", "queued", "rendering", "rendered")
"""Statuses of a request that still owes the chat an answer."""
IN_QUEUE = ("queued", "rendering")
"""Statuses of a request that has a task in the queue."""
FINAL = ("sent", "failed")


def _check_moves(what: str, table: dict[str, frozenset[str]], expected: tuple[str, ...], status: str) -> None:
    """Refuse a move the life-cycle table does not have (a bug, never a race: races are the
    compare-and-set's). From a status to itself is allowed: that only sets fields."""
    illegal = [source for source in expected if source != status and status not in table[source]]
    if illegal:
        raise ValueError(f"a {what} cannot move from {', '.join(illegal)} to {status}")


# ------------------------------------------------------------------------------------------------
# Migrations: migration i (1-based) upgrades a file of user_version i-1 to i. Append, never edit.


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE chats (
            chat_id INTEGER PRIMARY KEY,
            language TEXT,
            character TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_id INTEGER NOT NULL,
            user_id INTEGER,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT,
            part INTEGER NOT NULL DEFAULT 0,
            parts INTEGER NOT NULL DEFAULT 1,
            character TEXT,
            language TEXT,
            incoming_message_id INTEGER NOT NULL,
            reply_message_id INTEGER,
            task_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            result_path TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            UNIQUE (chat_id, incoming_message_id, kind, part)
        )"""
    )
    db.execute("CREATE INDEX requests_status ON requests (status)")


def _v2_delivery(db: sqlite_utils.Database) -> None:
    """What the dispatcher learnt it needs: where the input waits, what the render made, and
    when a send began (a send interrupted by a crash may or may not have reached the chat)."""
    db.execute("ALTER TABLE requests ADD COLUMN input_path TEXT")
    db.execute("ALTER TABLE requests ADD COLUMN duration_s REAL")
    db.execute("ALTER TABLE requests ADD COLUMN video_note INTEGER")
    db.execute("ALTER TABLE requests ADD COLUMN size INTEGER")
    db.execute("ALTER TABLE requests ADD COLUMN send_started REAL")
    db.execute("CREATE INDEX requests_chat_status ON requests (chat_id, status)")


def _v3_make_jobs(db: sqlite_utils.Database) -> None:
    """Characters made from a picture (admins' /newcharacter): one row per job, its whole life.

    ``route`` is the queue it goes to (``gpu``: FLP on a GPU worker; ``cpu``: the puppet on the
    CPU maker), ``path_used`` what actually made it (``flp`` or ``puppet``: FLP may hand over to
    the puppet). ``voice`` and ``options`` are JSON: what the worker needs besides the picture.
    ``status_message_id`` is the admin's message the bot keeps editing with the job's progress;
    unique per chat, so a redelivered "make it" press is not a second job."""
    db.execute(
        """CREATE TABLE make_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL,
            chat_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            character_id TEXT NOT NULL,
            language TEXT NOT NULL,
            voice TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            picture_path TEXT,
            route TEXT NOT NULL,
            status TEXT NOT NULL,
            stage TEXT,
            progress REAL,
            path_used TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            task_id TEXT,
            status_message_id INTEGER,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            started REAL,
            finished REAL,
            UNIQUE (chat_id, status_message_id)
        )"""
    )
    db.execute("CREATE INDEX make_jobs_status ON make_jobs (status)")


def _v4_retention(db: sqlite_utils.Database) -> None:
    """Finished requests are deleted after the retention period (children's words and voices are
    not ours to keep); what stays is how many there were, per day, kind and outcome."""
    db.execute(
        """CREATE TABLE request_counts (
            day TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (day, kind, status)
        )"""
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_delivery,
    _v3_make_jobs,
    _v4_retention,
]
SCHEMA_VERSION = len(MIGRATIONS)


class MakeStatus(StrEnum):
    """A make job's life (a new character from a picture)."""

    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


MAKE_STATUSES = tuple(MakeStatus)
MAKE_TRANSITIONS: dict[str, frozenset[str]] = {
    # ready from queued: a maker's result that arrives after its job was queued again (a restart)
    MakeStatus.QUEUED: frozenset(
        {MakeStatus.RUNNING, MakeStatus.READY, MakeStatus.FAILED, MakeStatus.CANCELLED}
    ),
    # queued again: a crashed or killed maker, or a GPU job moved to the CPU
    MakeStatus.RUNNING: frozenset(
        {MakeStatus.QUEUED, MakeStatus.READY, MakeStatus.FAILED, MakeStatus.CANCELLED}
    ),
    MakeStatus.READY: frozenset(),
    MakeStatus.FAILED: frozenset(),
    MakeStatus.CANCELLED: frozenset(),
}
MAKE_ACTIVE = ("queued", "running")
"""Statuses of a make job that is not over."""
MAKE_ROUTES = ("gpu", "cpu")

# ------------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class Chat:
    chat_id: int
    language: str | None
    character: str | None
    created: float
    updated: float


@dataclass(frozen=True)
class Request:
    """One answer the bot owes a chat (a story is one request per part)."""

    id: int
    chat_id: int
    user_id: int | None
    kind: str
    status: str
    input: str | None
    part: int
    parts: int
    character: str | None
    language: str | None
    incoming_message_id: int
    reply_message_id: int | None
    task_id: str | None
    attempts: int
    error: str | None
    result_path: str | None
    created: float
    updated: float
    input_path: str | None = None
    duration_s: float | None = None
    video_note: int | None = None
    size: int | None = None
    send_started: float | None = None

    @property
    def group(self) -> tuple[int, int, str]:
        """What the chat asked for once: all parts of one story share it."""
        return (self.chat_id, self.incoming_message_id, self.kind)

    @property
    def label(self) -> str:
        """For logs: ``request 12 (voice, chat 42)``, ``request 13 (story 2/5, chat 42)``."""
        what = f"{self.kind} {self.part + 1}/{self.parts}" if self.parts > 1 else self.kind
        return f"request {self.id} ({what}, chat {self.chat_id})"


_REQUEST_FIELDS = {f.name for f in fields(Request)}


@dataclass(frozen=True)
class MakeJob:
    """A character an admin asked for: picture -> performance -> library -> published."""

    id: int
    user_id: int
    chat_id: int
    name: str
    character_id: str
    language: str
    voice: str
    options: str
    picture_path: str | None
    route: str
    status: str
    stage: str | None
    progress: float | None
    path_used: str | None
    error: str | None
    attempts: int
    task_id: str | None
    status_message_id: int | None
    created: float
    updated: float
    started: float | None
    finished: float | None

    @property
    def label(self) -> str:
        """For logs: ``make job 3 (bunny, cpu)``."""
        return f"make job {self.id} ({self.character_id}, {self.route})"

    @property
    def voice_settings(self) -> dict[str, Any]:
        return json.loads(self.voice or "{}")

    @property
    def option_values(self) -> dict[str, Any]:
        return json.loads(self.options or "{}")


_MAKE_FIELDS = {f.name for f in fields(MakeJob)}


@dataclass(frozen=True)
class Admission:
    """What :meth:`Store.admit` did: the new requests, or why there are none."""

    requests: list[Request]
    refused: Literal["duplicate", "chat_full", "busy"] | None = None


def _request(row: dict[str, Any]) -> Request:
    return Request(**{key: value for key, value in row.items() if key in _REQUEST_FIELDS})


# ------------------------------------------------------------------------------------------------


class Store:
    """The state database. Not thread-safe: use it from the bot's event loop thread only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit at the driver level; transactions are explicit (see _transaction).
        connection = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        self.db = sqlite_utils.Database(connection)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes of the process
        self.migrate()

    def close(self) -> None:
        self.db.conn.close()

    # -- schema ---------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the file to :data:`SCHEMA_VERSION`, one transaction per step."""
        current = self.version
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {current}, newer than this bot's {SCHEMA_VERSION}: upgrade "
                "the bot"
            )
        for number in range(current + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                MIGRATIONS[number - 1](self.db)
                self.db.execute(f"PRAGMA user_version = {number}")
            log.info("state %s migrated to schema version %d", self.path, number)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- chats ----------------------------------------------------------------------------------

    def chat(self, chat_id: int) -> Chat | None:
        rows = list(self.db.query("SELECT * FROM chats WHERE chat_id = ?", [chat_id]))
        return Chat(**rows[0]) if rows else None

    def ensure_chat(self, chat_id: int, language: str, character: str) -> Chat:
        """The chat's row, created with these defaults on first contact."""
        now = time.time()
        self.db.execute(
            "INSERT OR IGNORE INTO chats (chat_id, language, character, created, updated) VALUES (?, ?, ?, "
            "?, ?)",
            [chat_id, language, character, now, now],
        )
        chat = self.chat(chat_id)
        assert chat is not None
        return chat

    def update_chat(self, chat_id: int, **values: Any) -> None:
        allowed = {"language", "character"}
        if not values or set(values) - allowed:
            raise ValueError(f"can only update {sorted(allowed)}")
        assignments = ", ".join(f"{key} = ?" for key in values)
        self.db.execute(
            f"UPDATE chats SET {assignments}, updated = ? WHERE chat_id = ?",
            [*values.values(), time.time(), chat_id],
        )

    # -- requests -------------------------------------------------------------------------------

    def add_requests(self, rows: Iterable[dict[str, Any]]) -> list[Request]:
        """Insert requests (all parts of a story at once) as ``received``, with no limits.

        Returns the new requests; an empty list when they already exist (a redelivered update).
        """
        return self.admit(rows).requests

    def admit(
        self,
        rows: Iterable[dict[str, Any]],
        *,
        max_per_chat: int | None = None,
        max_total: int | None = None,
        status: str = "received",
    ) -> Admission:
        """Insert requests (all parts of a story at once) if the chat and the whole queue have
        room, counted and inserted in one transaction.

        Checking the room first and inserting later would let ten voice notes sent at once all
        pass a limit of three; one ``BEGIN IMMEDIATE`` makes the check and the reservation one step.
        """
        if status not in ("fetching", "received"):
            raise ValueError(f"new requests start as fetching or received, not {status!r}")
        now = time.time()
        rows = [dict(row) for row in rows]
        for row in rows:
            if row.get("kind") not in KINDS:
                raise ValueError(f"unknown request kind {row.get('kind')!r}")
            row.setdefault("part", 0)
            row.setdefault("parts", 1)
            row.update(status=status, attempts=0, created=now, updated=now)
        if not rows:
            return Admission([])
        first = rows[0]
        ids: list[int] = []
        try:
            with self._transaction():
                if (
                    self.find(first["chat_id"], first["incoming_message_id"], first["kind"], first["part"])
                    is not None
                ):
                    return Admission([], "duplicate")
                if max_per_chat is not None and self.active_groups(first["chat_id"]) >= max_per_chat:
                    return Admission([], "chat_full")
                if max_total is not None and self.active_groups() >= max_total:
                    return Admission([], "busy")
                for row in rows:
                    columns = ", ".join(row)
                    marks = ", ".join("?" for _ in row)
                    cursor = self.db.execute(
                        f"INSERT INTO requests ({columns}) VALUES ({marks})", list(row.values())
                    )
                    ids.append(_row_id(cursor))
        except sqlite3.IntegrityError:  # a later part exists already: the same update, redelivered
            return Admission([], "duplicate")
        return Admission([self.get(identifier) for identifier in ids])

    def get(self, request_id: int) -> Request:
        rows = list(self.db.query("SELECT * FROM requests WHERE id = ?", [request_id]))
        if not rows:
            raise KeyError(f"no request {request_id}")
        return _request(rows[0])

    def find(self, chat_id: int, incoming_message_id: int, kind: str, part: int = 0) -> Request | None:
        rows = list(
            self.db.query(
                "SELECT * FROM requests WHERE chat_id = ? AND incoming_message_id = ? AND kind = ? AND part "
                "= ?",
                [chat_id, incoming_message_id, kind, part],
            )
        )
        return _request(rows[0]) if rows else None

    def with_status(self, *statuses: str, chat_id: int | None = None) -> list[Request]:
        """Requests in any of ``statuses``, oldest first."""
        if not statuses or set(statuses) - set(STATUSES):
            raise ValueError(f"statuses must be among {STATUSES}")
        marks = ", ".join("?" for _ in statuses)
        sql = f"SELECT * FROM requests WHERE status IN ({marks})"
        params: list[Any] = list(statuses)
        if chat_id is not None:
            sql += " AND chat_id = ?"
            params.append(chat_id)
        return [_request(row) for row in self.db.query(sql + " ORDER BY id", params)]

    def active(self, chat_id: int | None = None) -> list[Request]:
        return self.with_status(*ACTIVE, chat_id=chat_id)

    def story_parts(self, request: Request) -> list[Request]:
        """All parts of the story ``request`` belongs to, in order."""
        return [
            _request(row)
            for row in self.db.query(
                "SELECT * FROM requests WHERE chat_id = ? AND incoming_message_id = ? AND kind = ? ORDER BY "
                "part",
                [request.chat_id, request.incoming_message_id, request.kind],
            )
        ]

    def active_groups(self, chat_id: int | None = None) -> int:
        """Unanswered things asked for (a story counts once), for one chat or all of them."""
        marks = ", ".join("?" for _ in ACTIVE)
        sql = (
            "SELECT COUNT(*) FROM (SELECT DISTINCT chat_id, incoming_message_id, kind FROM requests "
            f"WHERE status IN ({marks})"
        )
        params: list[Any] = list(ACTIVE)
        if chat_id is not None:
            sql += " AND chat_id = ?"
            params.append(chat_id)
        return int(self.db.execute(sql + ")", params).fetchone()[0])

    def groups_ahead(self, request: Request, other_chats: bool = False) -> int:
        """Unanswered groups created before ``request``'s (only other chats' with
        ``other_chats``): its place in line, roughly."""
        marks = ", ".join("?" for _ in ACTIVE)
        sql = (
            "SELECT COUNT(*) FROM (SELECT DISTINCT chat_id, incoming_message_id, kind FROM requests "
            f"WHERE status IN ({marks}) AND id < ?{' AND chat_id != ?' if other_chats else ''})"
        )
        first = min(part.id for part in self.story_parts(request)) if request.parts > 1 else request.id
        params: list[Any] = [*ACTIVE, first] + ([request.chat_id] if other_chats else [])
        return int(self.db.execute(sql, params).fetchone()[0])

    def transition(self, request_id: int, expected: str | Iterable[str], status: str, **values: Any) -> bool:
        """Compare-and-set: move the request to ``status`` only if it is in ``expected``.

        Returns whether it moved; False means another path changed it first (or it is gone).
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        expected = (expected,) if isinstance(expected, str) else tuple(expected)
        _check_moves("request", TRANSITIONS, expected, status)
        return self._compare_and_set("requests", _REQUEST_FIELDS, request_id, expected, status, values)

    def _compare_and_set(
        self,
        table: str,
        fields: set[str],
        row_id: int,
        expected: tuple[str, ...],
        status: str,
        values: dict[str, Any],
    ) -> bool:
        """``UPDATE table SET status, updated, values WHERE id AND status IN expected``: True if it moved."""
        unknown = set(values) - fields
        if unknown or {"id", "status", "created"} & set(values):
            raise ValueError(f"cannot set {sorted(unknown or values)}")
        assignments = "".join(f", {key} = ?" for key in values)
        marks = ", ".join("?" for _ in expected)
        cursor = self.db.execute(
            f"UPDATE {table} SET status = ?, updated = ?{assignments} WHERE id = ? AND status IN ({marks})",
            [status, time.time(), *values.values(), row_id, *expected],
        )
        return cursor.rowcount == 1

    def annotate(self, request_id: int, status: str, **values: Any) -> bool:
        """Set fields without changing the status, only if the status is still ``status``."""
        return self.transition(request_id, status, status, **values)

    def purge_finished(self, before: float) -> list[Request]:
        """Delete requests that ended (sent or failed) before ``before``, keeping only how many
        there were in ``request_counts``; returns them, so their files can be removed too.

        A story is purged only whole: all its parts ended before ``before``."""
        marks = ", ".join("?" for _ in FINAL)
        with self._transaction():
            rows = [
                _request(row)
                for row in self.db.query(
                    f"""SELECT * FROM requests AS r WHERE status IN ({marks}) AND updated < ?
                    AND NOT EXISTS (SELECT 1 FROM requests AS o WHERE o.chat_id = r.chat_id
                        AND o.incoming_message_id = r.incoming_message_id AND o.kind = r.kind
                        AND (o.status NOT IN ({marks}) OR o.updated >= ?))""",
                    [*FINAL, before, *FINAL, before],
                )
            ]
            for request in rows:
                day = time.strftime("%Y-%m-%d", time.gmtime(request.created))
                self.db.execute(
                    "INSERT INTO request_counts (day, kind, status, n) VALUES (?, ?, ?, 1) "
                    "ON CONFLICT (day, kind, status) DO UPDATE SET n = n + 1",
                    [day, request.kind, request.status],
                )
                self.db.execute("DELETE FROM requests WHERE id = ?", [request.id])
        return rows

    def kept_counts(self) -> dict[tuple[str, str], int]:
        """Purged requests per (kind, status), all days together."""
        return {
            (row["kind"], row["status"]): row["n"]
            for row in self.db.query(
                "SELECT kind, status, SUM(n) AS n FROM request_counts GROUP BY kind, status"
            )
        }

    def counts(self) -> dict[str, int]:
        """Requests per status, for logs and tests."""
        return {
            row["status"]: row["n"]
            for row in self.db.query("SELECT status, COUNT(*) AS n FROM requests GROUP BY status")
        }

    # -- make jobs ------------------------------------------------------------------------------

    def add_make_job(self, **values: Any) -> MakeJob | None:
        """Insert a ``queued`` make job; None when this status message already has one (the
        same confirmation delivered twice)."""
        now = time.time()
        row = dict(values)
        for key in ("voice", "options"):
            if not isinstance(row.get(key, ""), str):
                row[key] = json.dumps(row[key], ensure_ascii=False)
        if row.get("route") not in MAKE_ROUTES:
            raise ValueError(f"unknown route {row.get('route')!r}")
        unknown = set(row) - _MAKE_FIELDS
        if unknown or {"id", "status", "created", "updated", "attempts"} & set(row):
            raise ValueError(f"cannot set {sorted(unknown or row)}")
        row.update(status="queued", attempts=0, created=now, updated=now)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            cursor = self.db.execute(
                f"INSERT INTO make_jobs ({columns}) VALUES ({marks})", list(row.values())
            )
        except sqlite3.IntegrityError:
            return None
        return self.make_job(_row_id(cursor))

    def make_job(self, job_id: int) -> MakeJob:
        rows = list(self.db.query("SELECT * FROM make_jobs WHERE id = ?", [job_id]))
        if not rows:
            raise KeyError(f"no make job {job_id}")
        return MakeJob(**rows[0])

    def find_make_job(self, job_id: int) -> MakeJob | None:
        try:
            return self.make_job(job_id)
        except KeyError:
            return None

    def make_jobs(
        self, *statuses: str, limit: int | None = None, newest_first: bool = False
    ) -> list[MakeJob]:
        """Make jobs in any of ``statuses`` (all when none given), oldest first by default."""
        if set(statuses) - set(MAKE_STATUSES):
            raise ValueError(f"statuses must be among {MAKE_STATUSES}")
        sql = "SELECT * FROM make_jobs"
        params: list[Any] = list(statuses)
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
        sql += f" ORDER BY id {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [MakeJob(**row) for row in self.db.query(sql, params)]

    def make_jobs_ahead(self, job: MakeJob) -> int:
        """Unfinished jobs of the same queue before ``job``: its place in line, less one."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM make_jobs WHERE status IN ('queued', 'running') AND route = ? AND id "
                "< ?",
                [job.route, job.id],
            ).fetchone()[0]
        )

    def reserved_character_ids(self) -> set[str]:
        """Ids promised to jobs not over yet (or made): no second job may take them."""
        return {
            row["character_id"]
            for row in self.db.query(
                "SELECT character_id FROM make_jobs WHERE status IN ('queued', 'running', 'ready')"
            )
        }

    def transition_make_job(
        self, job_id: int, expected: str | Iterable[str], status: str, **values: Any
    ) -> bool:
        """Compare-and-set, as :meth:`transition` for requests."""
        if status not in MAKE_STATUSES:
            raise ValueError(f"unknown make job status {status!r}")
        expected = (expected,) if isinstance(expected, str) else tuple(expected)
        _check_moves("make job", MAKE_TRANSITIONS, expected, status)
        for key in ("voice", "options"):
            if key in values and not isinstance(values[key], str):
                values[key] = json.dumps(values[key], ensure_ascii=False)
        return self._compare_and_set("make_jobs", _MAKE_FIELDS, job_id, expected, status, values)

    def annotate_make_job(self, job_id: int, status: str, **values: Any) -> bool:
        """Set fields without changing the status, only if the status is still ``status``."""
        return self.transition_make_job(job_id, status, status, **values)


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just made (always set after a successful INSERT)."""
    assert cursor.lastrowid is not None
    return int(cursor.lastrowid)
