"""How long children's data is kept: ``retention_days`` (default 7), then it is gone.

A finished request's text, voice note and video are deleted with its row; what stays is how many
requests there were, per day, kind and outcome (``request_counts``). Files in the inbox and the
results folder that no unfinished request names are removed once that old too (leftovers of a
crash). The dispatcher runs :func:`forget_old` every ``retention_sweep_s``.
"""

from __future__ import annotations

import logging
import time

from .files import remove_quietly
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)


def forget_old(settings: Settings, store: Store, *, now: float | None = None) -> int:
    """Delete what is older than the retention period; returns how many requests were forgotten."""
    cutoff = (time.time() if now is None else now) - settings.retention_days * 86400
    purged = store.purge_finished(before=cutoff)
    for request in purged:
        remove_quietly(request.input_path)
        remove_quietly(request.result_path)
    in_use = {
        path for request in store.active() for path in (request.input_path, request.result_path) if path
    }
    for folder in (settings.inbox_dir, settings.results_dir):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            try:
                if str(path) not in in_use and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError as error:
                log.warning("cannot remove the old file %s: %s", path, error)
    if purged:
        log.info("forgot %d requests finished more than %g days ago", len(purged), settings.retention_days)
    return len(purged)
