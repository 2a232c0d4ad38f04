"""Gramophone's engine: build a character library from a video, render any audio as lip-synced video.

No Telegram, no queue: a library anyone could use. This module is its public API::

    from engine import build_library, render
    build_library("speech.mp4", "fox.gchar", idle_video="idle.mp4")
    render("fox.gchar", "voice.ogg", "answer.mp4", video_note=True)

Submodules import lazily, so ``import engine`` stays cheap for callers that only need a part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import GramophoneError, InputError, LibraryError, MediaError

_EXPORTS = {
    "build_library": ".build",
    "BuildSettings": ".build",
    "open_library": ".library",
    "Library": ".library",
    "LibraryInfo": ".library",
    "render": ".render",
    "RenderConfig": ".render",
    "RenderResult": ".render",
    "PlannerSettings": ".planner",
    "MorphSettings": ".morph",
    "EncodeSettings": ".media",
}

__all__ = ["GramophoneError", "InputError", "LibraryError", "MediaError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


if TYPE_CHECKING:  # pragma: no cover
    from .build import BuildSettings, build_library
    from .library import Library, LibraryInfo, open_library
    from .media import EncodeSettings
    from .morph import MorphSettings
    from .planner import PlannerSettings
    from .render import RenderConfig, RenderResult, render
