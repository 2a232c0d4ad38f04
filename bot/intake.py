"""Accepting work from a chat: who answers, whether there is room, the request rows, the reply
that says "you are number 5 in line". Shared by every handler that asks for a video.

Handlers only record requests (status ``received``); the dispatcher does the rest. That split is
what lets a killed bot resume: the handler's work is done once the row is committed.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Message, Update

from engine.characters import Character

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


REFUSAL_TEXTS = {"chat_full": "too_many_pending", "busy": "busy"}


async def admit(
    svc: Services,
    message: Message,
    chat: Chat,
    character: Character,
    rows: list[dict[str, Any]],
    *,
    status: str = "received",
    quiet: bool = False,
) -> list[Request]:
    """Record the rows if this chat and the whole queue have room (checked and reserved in one
    step), and wake the dispatcher.

    Returns the new requests; an empty list when there was no room (the chat is told why, at
    most once per ``refusal_interval_s``, unless ``quiet``) or when the same update was already
    recorded (Telegram redelivers updates a killed bot did not confirm).
    """
    settings = svc.settings
    admission = svc.store.admit(
        rows, max_per_chat=settings.max_pending_per_chat, max_total=settings.max_queue, status=status
    )
    first = rows[0]
    if admission.refused == "duplicate":
        log.info(
            "duplicate update ignored: chat %s message %s (%s)",
            first["chat_id"],
            first["incoming_message_id"],
            first["kind"],
        )
        return []
    if admission.refused is not None:
        log.info("chat %s: %s refused (%s)", chat.chat_id, first["kind"], admission.refused)
        if not quiet and svc.guard.may_refuse(chat.chat_id):
            await message.reply_text(t(REFUSAL_TEXTS[admission.refused], chat.language, name=character.name))
        return []
    requests = admission.requests
    log.info(
        "%s %s",
        requests[0].label if len(requests) == 1 else f"{requests[0].label} +{len(requests) - 1} parts",
        status,
    )
    svc.dispatcher.wake()
    return requests


async def tell_position(
    svc: Services, message: Message, request: Request, chat: Chat, character: Character
) -> None:
    """When other children make the line long, say where this request is in it: silence feels
    broken. (A child's own earlier messages do not count: that wait is no surprise.)"""
    if svc.store.groups_ahead(request, other_chats=True) >= svc.settings.workers:
        ahead = svc.store.groups_ahead(request)
        await message.reply_text(t("position", chat.language, position=ahead + 1, name=character.name))
