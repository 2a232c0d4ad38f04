"""Small helpers handlers share: callback data parsing and replying to a button press."""

from __future__ import annotations

import logging
import re

from telegram import CallbackQuery, Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from ..services import Services, services
from ..texts import DEFAULT_LANGUAGE, from_telegram, t

log = logging.getLogger(__name__)


def parse_callback(data: str | None, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """Callback data is untrusted input (any client can send any bytes): match it whole."""
    if not isinstance(data, str) or len(data.encode()) > 64:
        return None
    return pattern.fullmatch(data)


def chat_language(svc: Services, update: Update) -> str:
    """The chat's language; for an update without a chat (a button under a message too old to
    touch), the user's Telegram language."""
    chat = update.effective_chat
    row = svc.store.chat(chat.id) if chat else None
    if row is not None and row.language:
        return row.language
    user = update.effective_user
    return from_telegram(user.language_code if user else None) if user else DEFAULT_LANGUAGE


def message_context(update: Update, context: ContextTypes.DEFAULT_TYPE) -> tuple[Services, Message, str]:
    """What a handler of a typed message starts from: the services, the message, and the
    language to answer in."""
    svc = services(context)
    message = update.effective_message
    assert message is not None, "a message handler gets a message"
    return svc, message, chat_language(svc, update)


def query_context(update: Update, context: ContextTypes.DEFAULT_TYPE) -> tuple[Services, CallbackQuery, str]:
    """What a button handler starts from: the services, the button press, and the language."""
    svc = services(context)
    query = update.callback_query
    assert query is not None, "a button handler gets a callback query"
    return svc, query, chat_language(svc, update)


async def invalid_button(query: CallbackQuery, language: str) -> None:
    """The polite answer to a button that is forged, stale or points at something gone."""
    log.info(
        "invalid callback data %r from user %s", query.data, query.from_user.id if query.from_user else None
    )
    try:
        await query.answer(t("button_invalid", language), show_alert=True)
    except BadRequest as error:
        log.info("callback query %s not answered: %s", query.id, error.message)


def message_of(query: CallbackQuery) -> Message | None:
    """The message under the button, if the bot can still touch it (not older than 48 hours)."""
    message = query.message
    return message if isinstance(message, Message) else None


async def acknowledge(query: CallbackQuery) -> None:
    """Stop the button's spinner. A query answered before (a redelivered update) or too old
    raises BadRequest; neither is worth bothering the child about."""
    try:
        await query.answer()
    except BadRequest as error:
        log.info("callback query %s not answered: %s", query.id, error.message)


async def edit_text(message: Message, text: str) -> None:
    """Replace a keyboard message with ``text`` (the keyboard goes); "not modified" is fine."""
    try:
        await message.edit_text(text)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise
