"""Small file chores the bot's parts share: atomic writes of uploads and results, quiet removal."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import aiofiles
import aiofiles.os

log = logging.getLogger(__name__)


async def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename.

    A reader, or the bot after a crash or restart, never sees half a file.

    Raises
    ------
    OSError
        The disk is full or failed; nothing is left behind.
    """
    tmp = path.with_name(f".{path.name}.part")
    try:
        async with aiofiles.open(tmp, "wb") as handle:
            await handle.write(data)
            await handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
        await aiofiles.os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)  # a full disk must not keep the half it managed to write
        raise


def remove_quietly(path: str | os.PathLike | None) -> None:
    """Remove a file that may already be gone; other failures are logged, never raised."""
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("cannot remove %s: %s", path, error)
