"""The loop the dispatcher and the workshop share: passes over the database, woken or on a timer.

Both keep the truth in the database and act on it in passes. This is the part they have in
common: start, stop (letting the pass in progress finish), wake for an early pass, and outlive
any one pass that fails.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class PollingLoop:
    """Run :meth:`run_once` every ``poll_interval_s`` seconds, or as soon as :meth:`wake` is called."""

    name = "loop"

    def __init__(self, poll_interval_s: float) -> None:
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

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
