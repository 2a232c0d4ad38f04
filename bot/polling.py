"""The loop the dispatcher and the workshop share: passes over the database, woken or on a timer.

Both keep the truth in the database and act on it in passes. This is the part they have in
common: start, stop (letting the pass in progress finish), wake for an early pass, and outlive
any one pass that fails.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Beat:
    """The last heartbeat value seen for a task, when it was seen, and when the task was first seen."""

    value: Any
    seen: float
    started: float


class PollingLoop:
    """Run :meth:`run_once` every ``poll_interval_s`` seconds, or as soon as :meth:`wake` is called."""

    name = "loop"

    def __init__(self, poll_interval_s: float) -> None:
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._beats: dict[str, Beat] = {}  # task id -> its last heartbeat

    def _check_beat(self, task_id: str, beat: dict, now: float, silent_after_s: float, limit_s: float) -> str | None:
        """Record a task's heartbeat; say ``"silent"`` if it stopped changing for ``silent_after_s``,
        ``"too long"`` if the task has run past ``limit_s``, else None.

        Only whether the value changes counts, so the clocks of other machines do not matter.
        """
        seen = self._beats.get(task_id)
        if seen is None:
            self._beats[task_id] = seen = Beat(beat.get("beat"), now, now)
        elif seen.value != beat.get("beat"):
            seen.value, seen.seen = beat.get("beat"), now
        elif now - seen.seen > silent_after_s:
            return "silent"
        if now - seen.started > limit_s:
            return "too long"
        return None

    async def run_once(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Something changed: run a pass now instead of at the next tick."""
        self._wake.set()

    def _start_loop(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"gramophone-{self.name}")

    async def _stop_loop(self, timeout: float) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout)
            if not self._task.done():
                self._task.cancel()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 -- the loop must outlive any one bad row
                log.exception("%s pass failed; carrying on", self.name)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
