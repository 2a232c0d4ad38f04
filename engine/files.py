"""What the engine's file writers share: the mode a new file gets."""

from __future__ import annotations

import os


def default_file_mode() -> int:
    """``0o666`` less this process's umask: what ``open()`` would give a new file.

    Written files keep to the umask (0644 for a user's CLI outputs, 0600 in the bot, which sets
    ``umask 077`` because it holds children's voices)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)  # no /proc: read it the racy way, once
    os.umask(current)
    return 0o666 & ~current
