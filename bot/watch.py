"""What became of a task in the queue: the one protocol the dispatcher and the workshop follow.

Both loops keep a row per task in the database and, each pass, ask the queue about it in the
same order: a result first (finished, or crashed), then a heartbeat (running; lost when the
heartbeat stopped changing or the task ran too long), then the waiting list (waiting), and
otherwise it is unseen, and lost once it has been unseen for a heartbeat timeout (a crash
between recording the row and enqueueing the task). :class:`TaskWatcher` answers with one
:class:`Sighting`; each loop matches on its :class:`TaskState` and moves its own rows.

Only whether a heartbeat *changes* counts, never its time stamp, so the clocks of the worker
machines do not matter. The clock is injected, so tests step it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .tasks import TaskFailed


class TaskState(StrEnum):
    FINISHED = "finished"
    """A result is in: ``Sighting.outcome`` (ok or not, as the worker reported it)."""
    CRASHED = "crashed"
    """The worker's task raised past our own error handling: ``Sighting.reason``."""
    RUNNING = "running"
    """A worker is on it and its heartbeat moves: ``Sighting.beat``."""
    WAITING = "waiting"
    """In the queue, no worker has it yet (or it was put back): ``Sighting.waiting_since``."""
    UNSEEN = "unseen"
    """Not queued, not running, no result, for less than a heartbeat timeout (a worker has just
    taken it, or the row was written before the task): nothing to do yet."""
    LOST = "lost"
    """It will not finish by itself: ``Sighting.reason`` says why."""


@dataclass(frozen=True)
class Sighting:
    state: TaskState
    outcome: dict[str, Any] | None = None
    beat: dict[str, Any] | None = None
    reason: str = ""
    waiting_since: float = 0.0


class TaskQueue(Protocol):
    """What the watcher asks of a queue (:class:`bot.tasks.RenderQueue` and its kin)."""

    def outcome(self, task_id: str) -> dict[str, Any] | None: ...
    def heartbeat(self, task_id: str) -> dict[str, Any] | None: ...
    def pending_ids(self) -> set[str]: ...


@dataclass
class _Beat:
    value: Any
    seen: float
    started: float


@dataclass
class TaskWatcher:
    """Timers per task id (last heartbeat, first missed, first waiting) and the one way to read
    a task's state. Blocking queue calls run in threads (Redis may block)."""

    heartbeat_timeout_s: float
    clock: Callable[[], float] = time.monotonic
    _beats: dict[str, _Beat] = field(default_factory=dict)
    _missing: dict[str, float] = field(default_factory=dict)
    _waiting: dict[str, float] = field(default_factory=dict)
    _pending: dict[int, set[str]] = field(default_factory=dict)

    def new_pass(self) -> None:
        """Forget the waiting lists read in the last pass (each is read once per pass, when needed)."""
        self._pending.clear()

    async def look(self, queue: TaskQueue, task_id: str, *, run_limit_s: float) -> Sighting:
        """Where ``task_id`` is now; ``run_limit_s`` is how long it may run at most."""
        now = self.clock()
        try:
            outcome = await asyncio.to_thread(queue.outcome, task_id)
        except TaskFailed as error:
            self.forget(task_id)
            return Sighting(TaskState.CRASHED, reason=str(error))
        if outcome is not None:
            self.forget(task_id)
            return Sighting(TaskState.FINISHED, outcome=outcome)
        beat = await asyncio.to_thread(queue.heartbeat, task_id)
        if beat is not None:
            self._missing.pop(task_id, None)
            self._waiting.pop(task_id, None)
            stalled = self._stalled(task_id, beat, now, run_limit_s)
            if stalled:
                self.forget(task_id)
                return Sighting(TaskState.LOST, beat=beat, reason=stalled)
            return Sighting(TaskState.RUNNING, beat=beat)
        if id(queue) not in self._pending:
            self._pending[id(queue)] = await asyncio.to_thread(queue.pending_ids)
        if task_id in self._pending[id(queue)]:
            self._missing.pop(task_id, None)
            self._beats.pop(task_id, None)  # put back by its worker: a new run, a new clock
            return Sighting(TaskState.WAITING, waiting_since=self._waiting.setdefault(task_id, now))
        first_missed = self._missing.setdefault(task_id, now)
        if now - first_missed > self.heartbeat_timeout_s:
            self.forget(task_id)
            return Sighting(TaskState.LOST, reason="the task was lost (not queued, not running, no result)")
        return Sighting(TaskState.UNSEEN)

    def forget(self, task_id: str | None) -> None:
        """Drop a task's timers (it ended, or was given up)."""
        if task_id:
            self._beats.pop(task_id, None)
            self._missing.pop(task_id, None)
            self._waiting.pop(task_id, None)

    def _stalled(self, task_id: str, beat: dict[str, Any], now: float, run_limit_s: float) -> str:
        """Why a running task counts as lost ("" when it does not)."""
        seen = self._beats.get(task_id)
        worker = f"{beat.get('host')}:{beat.get('pid')}"
        if seen is None:
            self._beats[task_id] = seen = _Beat(beat.get("beat"), now, now)
        elif seen.value != beat.get("beat"):
            seen.value, seen.seen = beat.get("beat"), now
        elif now - seen.seen > self.heartbeat_timeout_s:
            return f"worker {worker} went silent"
        if now - seen.started > run_limit_s + self.heartbeat_timeout_s:
            return "it took too long"
        return ""
