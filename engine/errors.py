"""Exceptions the engine raises for problems a user can fix.

Every message is one line that names the problem and, where it helps, what to do next; the CLI
prints it as it is and exits non-zero, and the bot turns it into a friendly reply. Anything else
that escapes the engine is a bug.
"""

from __future__ import annotations


class GramophoneError(Exception):
    """Base of every error whose message is meant for the user."""


class MediaError(GramophoneError):
    """A file ffmpeg cannot read, or that lacks what we need (a video track, an audio track)."""


class LibraryError(GramophoneError):
    """A character library file that is missing, foreign, corrupt or of an unknown version."""


class InputError(GramophoneError):
    """Arguments that cannot work: an empty audio, a too-long video note, a bad crop, ..."""


class StorageError(OSError):
    """The machine failed, not the input: a full disk, an I/O error while ffmpeg read or wrote.

    Deliberately not a :class:`GramophoneError`: nothing the user sent is wrong, so callers that
    retry (the bot's workers) must retry it, and never tell anyone their file is unreadable.
    """
