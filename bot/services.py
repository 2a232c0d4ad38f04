"""The long-lived objects handlers share, kept in ``application.bot_data`` under one key.

One typed object instead of a bag of ``bot_data`` keys, so a handler says ``services(context).store``
and a type checker knows what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.characters import Catalogue

from .recorded_stories import RecordedStories
from .settings import Settings
from .store import Store
from .storybook import Storybook
from .tasks import RenderQueue

if TYPE_CHECKING:
    from .character_store import CharacterStore
    from .dispatcher import Dispatcher
    from .guard import ChatGuard
    from .inbox import Inbox
    from .making import Workshop

KEY = "gramophone"


@dataclass
class Services:
    settings: Settings
    store: Store
    queue: RenderQueue
    catalogue: Catalogue
    storybook: Storybook
    dispatcher: Dispatcher
    workshop: Workshop
    characters: CharacterStore
    inbox: Inbox
    guard: ChatGuard
    recorded: RecordedStories


def services(context: Any) -> Services:
    """The services of the application a handler runs in."""
    return context.application.bot_data[KEY]
