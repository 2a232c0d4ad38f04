"""The queues (huey): the render task, the make task, and the bot's view of them.

Embedded mode (the default): ``SqliteHuey`` at ``data_dir/queue.db``, consumed by a child process
of the bot. Redis mode (``GRAMOPHONE_REDIS_URL``): ``RedisHuey``, consumed by any number of
``gramophone worker`` processes on any machines.

The task takes a self-contained job (:mod:`bot.jobs`) and returns the mp4 bytes in a dict that
huey keeps in its result store, so workers need neither the token nor the state database. While
a task runs, its worker writes a heartbeat under ``hb:<task id>`` every second: that is how the
bot tells a slow render from a worker killed mid-render (the heartbeat stops changing), without
trusting the clocks of other machines. If a worker is interrupted (stopped, not killed), the task
puts itself back on the queue under the same id, so nothing waits for a timeout.

New characters (admins' ``/newcharacter``) go to queues of their own, never the render queue:
``gpu`` (``gramophone-gpu``), consumed only by ``gramophone worker --gpu`` on a machine with
FasterLivePortrait, and ``cpu`` (``gramophone-make``), consumed by one low-priority CPU maker
process (the bot's own child in embedded mode, ``gramophone worker --make`` elsewhere). Render
workers never take a make job, so making a character never holds up a child's answer for more
than the cores it shares. A make task's heartbeat also carries its stage and progress, and the
bot cancels one by writing ``cancel:<task id>``, which the maker polls between steps.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey, Task
from huey.constants import EmptyData
from huey.signals import SIGNAL_INTERRUPTED
from huey.utils import Error

from .jobs import CharacterCache, run_job
from .payloads import MakeJobPayload, MakeOutcome, RenderJob, RenderOutcome
from .settings import Settings

log = logging.getLogger(__name__)

QUEUE_NAME = "gramophone"
TASK_NAME = "gramophone.render"
MAKE_QUEUE_NAMES = {"cpu": "gramophone-make", "gpu": "gramophone-gpu"}
MAKE_TASK_NAME = "gramophone.make"
HEARTBEAT_PREFIX = "hb:"
CANCEL_PREFIX = "cancel:"
PART_PREFIX = "part:"
PART_BYTES = 8 * 1024 * 1024
"""A made character travels back in parts this big (``part:<task id>:<n>``)."""
HEARTBEAT_INTERVAL_S = 1.0
CANCEL_CHECK_S = 1.0
"""A maker looks for a cancel at most this often (the engine may ask every frame)."""


def _huey(settings: Settings, name: str) -> Huey:
    """A huey on Redis or on the embedded SQLite file (several queues share one file)."""
    if settings.redis_url:
        return RedisHuey(name, url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(settings.queue_path), timeout=30)


def _requeue_on_interrupt(huey: Huey) -> None:
    @huey.signal(SIGNAL_INTERRUPTED)
    def requeue(signal: str, task: Task) -> None:
        """A worker told to stop mid-task: give the task back to the queue, same id."""
        try:
            huey.storage.delete_data(HEARTBEAT_PREFIX + task.id)
            huey.enqueue(task)
            log.info("task %s interrupted: put back on the queue", task.id)
        except Exception:  # noqa: BLE001 -- the bot's lost-task check is the safety net
            log.exception("task %s interrupted and could not be put back", task.id)


def make_huey(settings: Settings) -> Huey:
    """The huey instance for these settings, with the render task registered on it."""
    huey = _huey(settings, QUEUE_NAME)
    characters = CharacterCache(list(settings.character_roots))

    @huey.task(name=TASK_NAME, context=True)
    def render(job: RenderJob, task: Task) -> RenderOutcome:
        with _heartbeat(huey, task.id):
            return run_job(job, characters)

    _requeue_on_interrupt(huey)
    huey.gramophone_render = render
    huey.gramophone_characters = characters
    return huey


def make_maker_huey(settings: Settings, route: str) -> Huey:
    """The huey of one make queue (``cpu`` or ``gpu``), with the make task registered on it.

    The FLP settings are the consuming worker's own (read when a task runs), not the job's: the
    bot does not know where FLP lives on the GPU machine."""
    from .make_jobs import run_make_job

    huey = _huey(settings, MAKE_QUEUE_NAMES[route])

    @huey.task(name=MAKE_TASK_NAME, context=True)
    def make(job: MakeJobPayload, task: Task) -> MakeOutcome:
        state: dict[str, Any] = {}
        checked = [0.0, False]

        def progress(stage: str, fraction: float) -> None:
            state.update(stage=str(stage), progress=max(0.0, min(1.0, float(fraction))))

        def cancelled() -> bool:
            now = time.monotonic()
            if not checked[1] and now - checked[0] >= CANCEL_CHECK_S:
                checked[0] = now
                checked[1] = huey.storage.peek_data(CANCEL_PREFIX + task.id) is not EmptyData
            return bool(checked[1])

        def deliver(tar: Path) -> dict[str, Any]:
            """The tar into the result store in parts; the result says how many."""
            parts = 0
            with open(tar, "rb") as handle:
                while chunk := handle.read(PART_BYTES):
                    huey.storage.put_data(f"{PART_PREFIX}{task.id}:{parts}", chunk)
                    parts += 1
            return {"parts": parts}

        flp = settings.flp_config() if route == "gpu" else None
        reference = settings.flp_reference() if route == "gpu" else None
        with _heartbeat(huey, task.id, state):
            return run_make_job(
                job, flp=flp, reference=reference, progress=progress, cancelled=cancelled, deliver=deliver
            )

    _requeue_on_interrupt(huey)
    huey.gramophone_make = make
    return huey


@contextmanager
def _heartbeat(huey: Huey, task_id: str, state: dict[str, Any] | None = None) -> Iterator[None]:
    """Write ``hb:<task id>`` now and every second until the block ends (with ``state``, as it
    is at each beat: a make task's stage and progress)."""
    key = HEARTBEAT_PREFIX + task_id
    identity = {"host": socket.gethostname(), "pid": os.getpid()}
    stop = threading.Event()

    def beat(count: int) -> None:
        extra = dict(state) if state else {}
        huey.storage.put_data(
            key, json.dumps({**extra, **identity, "beat": count, "time": time.time()}).encode()
        )

    def loop() -> None:
        count = 1
        while not stop.wait(HEARTBEAT_INTERVAL_S):
            count += 1
            try:
                beat(count)
            except Exception:  # noqa: BLE001 -- a missed beat is tolerated by the timeout
                log.warning("heartbeat of task %s failed", task_id, exc_info=True)

    beat(0)
    thread = threading.Thread(target=loop, name=f"heartbeat-{task_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class TaskFailed(Exception):
    """The task raised (a bug or a crash in the engine): worth another attempt."""


class RenderQueue:
    """The bot's side of the queue. Every method blocks briefly (SQLite or Redis round trips):
    the dispatcher calls them through ``asyncio.to_thread``."""

    def __init__(self, settings: Settings, huey: Huey | None = None) -> None:
        self.settings = settings
        self.huey = huey or make_huey(settings)
        self._task = self.huey.gramophone_render
        self._timeout_s = settings.render_timeout_s

    def enqueue(self, job: RenderJob | MakeJobPayload, task_id: str) -> None:
        """Put a job on the queue under ``task_id`` (chosen and recorded by the caller first)."""
        self.huey.enqueue(self._task.s(job, id=task_id, timeout=self._timeout_s))

    def outcome(self, task_id: str) -> dict[str, Any] | None:
        """The task's result dict, None while there is none.

        Raises
        ------
        TaskFailed
            The task raised; the message is the worker's error.
        """
        raw = self.huey.storage.peek_data(task_id)
        if raw is EmptyData:
            return None
        value = self.huey.serializer.deserialize(raw)
        if isinstance(value, Error):
            meta = value.metadata or {}
            raise TaskFailed(f"{meta.get('error', 'task failed')}")
        if not isinstance(value, dict):
            raise TaskFailed(f"unexpected result {type(value).__name__}")
        return value

    def heartbeat(self, task_id: str) -> dict[str, Any] | None:
        """The task's latest heartbeat, None when it has not started (or was put back)."""
        raw = self.huey.storage.peek_data(HEARTBEAT_PREFIX + task_id)
        if raw is EmptyData:
            return None
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return {"beat": raw}

    def pending_ids(self) -> set[str]:
        """Ids of the tasks waiting in the queue (the bot keeps it short, so this is cheap)."""
        return {task.id for task in self.huey.pending()}

    def forget(self, task_id: str) -> None:
        """Drop the task's result and heartbeat (after the bot has taken the result)."""
        self.huey.storage.delete_data(task_id)
        self.huey.storage.delete_data(HEARTBEAT_PREFIX + task_id)

    def abandon(self, task_id: str) -> None:
        """A task given up on: make sure it never runs later, and drop what it left."""
        self.huey.revoke_by_id(task_id, revoke_once=True)
        self.forget(task_id)

    def close(self) -> None:
        close: Callable[[], Any] | None = getattr(self.huey.storage, "close", None)
        if close is not None:
            close()


class MakeQueue(RenderQueue):
    """The bot's side of one make queue (``cpu`` or ``gpu``): the same calls as renders, plus
    :meth:`cancel`."""

    def __init__(self, settings: Settings, route: str, huey: Huey | None = None) -> None:
        self.settings = settings
        self.route = route
        self.huey = huey or make_maker_huey(settings, route)
        self._task = self.huey.gramophone_make
        self._timeout_s = settings.make_timeout_s

    def cancel(self, task_id: str) -> None:
        """Stop the task: never start it if it waits, and ask its maker to stop if it runs."""
        self.huey.storage.put_data(CANCEL_PREFIX + task_id, b"1")
        self.huey.revoke_by_id(task_id, revoke_once=True)

    def fetch(self, task_id: str, parts: int, out: Path) -> Path:
        """Write the task's made character (its tar, stored in ``parts`` parts) to ``out``.

        Raises
        ------
        TaskFailed
            A part is missing (a worker died while storing them, or they were dropped)."""
        tmp = out.with_name(f".{out.name}.part")
        with open(tmp, "wb") as handle:
            for number in range(parts):
                chunk = self.huey.storage.peek_data(f"{PART_PREFIX}{task_id}:{number}")
                if chunk is EmptyData:
                    raise TaskFailed(f"part {number + 1} of {parts} of the result is missing")
                handle.write(chunk)
        os.replace(tmp, out)
        return out

    def _drop_parts(self, task_id: str) -> None:
        number = 0
        while self.huey.storage.has_data_for_key(f"{PART_PREFIX}{task_id}:{number}"):
            self.huey.storage.delete_data(f"{PART_PREFIX}{task_id}:{number}")
            number += 1

    def forget(self, task_id: str) -> None:
        """Drop the task's result, its parts, heartbeat and cancel mark (after the bot has
        taken the result)."""
        super().forget(task_id)
        self._drop_parts(task_id)
        self.huey.storage.delete_data(CANCEL_PREFIX + task_id)

    def abandon(self, task_id: str) -> None:
        """A task given up on (lost, silent, too slow): it never starts later, and a maker
        still working on it is asked to stop (the cancel mark stays for it to see)."""
        self.cancel(task_id)
        super().forget(task_id)
        self._drop_parts(task_id)
