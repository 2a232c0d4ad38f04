"""Accepting work from a chat: who answers, whether there is room, the request rows, the reply
that says "you are number 5 in line". Shared by every handler that asks for a video.

Handlers only record requests (status ``received``); the dispatcher does the rest. That split is
what lets a killed bot resume: the handler's work is done once the row is committed.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.characters import Character
from telegram import Message, Update

from .services import Services
from .store import Chat, Request
from .texts import from_telegram, t

log = logging.getLogger(__name__)


def chat_of(svc: Services, update: Update) -> Chat:
    """The chat's row, created on first contact with the user's Telegram language."""
    chat = update.effective_chat
    assert chat is not None
    user = update.effective_user
    language = from_telegram(user.language_code if user else None)
    return svc.store.ensure_chat(chat.id, language, svc.settings.default_character)


def character_of(svc: Services, chat: Chat) -> tuple[Character | None, bool]:
    """Who answers this chat, and whether that had to change because the chosen one is gone.

    A character deleted from the catalogue falls back to the default one (or the first there
    is) and the chat's choice is updated, so the child is told only once.
    """
    catalogue = svc.catalogue
    wanted = chat.character or svc.settings.default_character
    if wanted not in catalogue.characters:
        catalogue.reload()  # maybe added since; reading a few TOML files is cheap
    if wanted in catalogue.characters:
        return catalogue.characters[wanted], False
    fallback = catalogue.characters.get(svc.settings.default_character)
    if fallback is None:
        listed = catalogue.list()
        fallback = listed[0] if listed else None
    if fallback is None:
        log.error("no characters in %s: cannot answer anyone", [str(root) for root in catalogue.roots])
        return None, False
    log.info("chat %s: character %r is gone, falling back to %r", chat.chat_id, wanted, fallback.id)
    svc.store.update_chat(chat.chat_id, character=fallback.id)
    return fallback, chat.character is not None


async def answering_character(svc: Services, chat: Chat, message: Message) -> Character | None:
    """:func:`character_of`, telling the chat when its character changed or nobody can answer."""
    character, changed = character_of(svc, chat)
    if character is None:
        await message.reply_text(t("no_characters", chat.language))
    elif changed:
        await message.reply_text(t("character_gone", chat.language, name=character.name))
    return character


def refusal(svc: Services, chat: Chat, character: Character) -> str | None:
    """Why this chat may not ask for more right now (a text to send), or None."""
    if svc.store.active_groups(chat.chat_id) >= svc.settings.max_pending_per_chat:
        return t("too_many_pending", chat.language, name=character.name)
    if svc.store.active_groups() >= svc.settings.max_queue:
        return t("busy", chat.language)
    return None


def submit(svc: Services, rows: list[dict[str, Any]]) -> list[Request]:
    """Record the rows as ``received`` requests and wake the dispatcher.

    Returns the new requests, or an empty list when the same update was already recorded
    (Telegram redelivers updates a killed bot did not confirm).
    """
    requests = svc.store.add_requests(rows)
    if requests:
        log.info("%s received", requests[0].label if len(requests) == 1 else f"{requests[0].label} +{len(requests) - 1} parts")
        svc.dispatcher.wake()
    else:
        first = rows[0]
        log.info("duplicate update ignored: chat %s message %s (%s)", first["chat_id"], first["incoming_message_id"], first["kind"])
    return requests


async def tell_position(svc: Services, message: Message, request: Request, chat: Chat, character: Character) -> None:
    """When other children make the line long, say where this request is in it: silence feels
    broken. (A child's own earlier messages do not count: that wait is no surprise.)"""
    if svc.store.groups_ahead(request, other_chats=True) >= svc.settings.workers:
        ahead = svc.store.groups_ahead(request)
        await message.reply_text(t("position", chat.language, position=ahead + 1, name=character.name))
