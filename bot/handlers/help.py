"""/help, and the catch-alls: unknown commands, unsupported messages, unknown buttons."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from ..intake import character_of, chat_of
from ..services import services
from ..texts import t
from .common import chat_language, invalid_button

log = logging.getLogger(__name__)


def help_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    svc = services(context)
    chat = chat_of(svc, update)
    character, _ = character_of(svc, chat)
    return t("help", chat.language, name=character.name if character else "Gramophone")


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the bot does, in the chat's language, naming its character."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(help_text(update, context))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    language = chat_language(services(context), update)
    await update.effective_message.reply_text(
        f"{t('unknown_command', language)}\n\n{help_text(update, context)}"
    )


async def unsupported(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, locations...: say what the bot does understand."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("unsupported", chat_language(services(context), update)))


async def unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.callback_query is not None
    await invalid_button(update.callback_query, chat_language(services(context), update))


def handlers() -> list[BaseHandler]:
    return [CommandHandler("help", help_command)]


def fallback_handlers() -> list[BaseHandler]:
    new_messages = filters.UpdateType.MESSAGE
    return [
        MessageHandler(new_messages & filters.COMMAND, unknown_command),
        MessageHandler(new_messages, unsupported),
        CallbackQueryHandler(unknown_button),
    ]
