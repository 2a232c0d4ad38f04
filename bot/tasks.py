"""The render queue (huey): the one task workers run, and the bot's view of it.

Embedded mode (the default): ``SqliteHuey`` at ``data_dir/queue.db``, consumed by a child process
of the bot. Redis mode (``GRAMOPHONE_REDIS_URL``): ``RedisHuey``, consumed by any number of
``gramophone worker`` processes on any machines.

The task takes a self-contained job (:mod:`bot.jobs`) and returns the mp4 bytes in a dict that
huey keeps in its result store, so workers need neither the token nor the state database. While
a task runs, its worker writes a heartbeat under ``hb:<task id>`` every second: that is how the
bot tells a slow render from a worker killed mid-render (the heartbeat stops changing), without
trusting the clocks of other machines. If a worker is interrupted (stopped, not killed), the task
puts itself back on the queue under the same id, so nothing waits for a timeout.
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
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey, Task
from huey.constants import EmptyData
from huey.signals import SIGNAL_INTERRUPTED
from huey.utils import Error

from .jobs import CharacterCache, run_job
from .settings import Settings

log = logging.getLogger(__name__)

QUEUE_NAME = "gramophone"
TASK_NAME = "gramophone.render"
HEARTBEAT_PREFIX = "hb:"
HEARTBEAT_INTERVAL_S = 1.0


def make_huey(settings: Settings) -> Huey:
    """The huey instance for these settings, with the render task registered on it."""
    if settings.redis_url:
        huey: Huey = RedisHuey(QUEUE_NAME, url=settings.redis_url)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(QUEUE_NAME, filename=str(settings.queue_path), timeout=30)
    characters = CharacterCache(list(settings.characters_dirs))

    @huey.task(name=TASK_NAME, context=True)
    def render(job: dict[str, Any], task: Task) -> dict[str, Any]:
        with _heartbeat(huey, task.id):
            return run_job(job, characters)

    @huey.signal(SIGNAL_INTERRUPTED)
    def requeue(signal: str, task: Task) -> None:
        """A worker told to stop mid-render: give the task back to the queue, same id."""
        try:
            huey.storage.delete_data(HEARTBEAT_PREFIX + task.id)
            huey.enqueue(task)
            log.info("task %s interrupted: put back on the queue", task.id)
        except Exception:  # noqa: BLE001 -- the dispatcher's lost-task check is the safety net
            log.exception("task %s interrupted and could not be put back", task.id)

    huey.gramophone_render = render  # type: ignore[attr-defined]
    huey.gramophone_characters = characters  # type: ignore[attr-defined]
    return huey


@contextmanager
def _heartbeat(huey: Huey, task_id: str) -> Iterator[None]:
    """Write ``hb:<task id>`` now and every second until the block ends."""
    key = HEARTBEAT_PREFIX + task_id
    identity = {"host": socket.gethostname(), "pid": os.getpid()}
    stop = threading.Event()

    def beat(count: int) -> None:
        huey.storage.put_data(key, json.dumps({**identity, "beat": count, "time": time.time()}).encode())

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
        self._render = self.huey.gramophone_render  # type: ignore[attr-defined]

    def enqueue(self, job: dict[str, Any], task_id: str) -> None:
        """Put a job on the queue under ``task_id`` (chosen and recorded by the caller first)."""
        self.huey.enqueue(self._render.s(job, id=task_id, timeout=self.settings.render_timeout_s))

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
