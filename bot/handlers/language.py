"""/language: English or Russian for the chat (texts, stories and the character's voice).

The default comes from the user's Telegram ``language_code`` on first contact; ``/language ru``
switches at once, a bare ``/language`` shows two buttons.
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from ..intake import chat_of
from ..services import services
from ..texts import LANGUAGE_NAMES, LANGUAGES, t
from .common import acknowledge, chat_language, edit_text, invalid_button, message_of, parse_callback

CALLBACK = re.compile(r"lang:([a-z]{2})")


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    message = update.effective_message
    assert message is not None
    chat = chat_of(svc, update)
    wanted = (context.args[0].lower() if context.args else "").strip()
    if wanted in LANGUAGES:
        svc.store.update_chat(chat.chat_id, language=wanted)
        await message.reply_text(t("language_set", wanted))
        return
    keyboard = [
        [InlineKeyboardButton(LANGUAGE_NAMES[code], callback_data=f"lang:{code}") for code in LANGUAGES]
    ]
    await message.reply_text(t("language_prompt", chat.language), reply_markup=InlineKeyboardMarkup(keyboard))


async def language_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    query = update.callback_query
    assert query is not None
    match = parse_callback(query.data, CALLBACK)
    message = message_of(query)
    if match is None or match.group(1) not in LANGUAGES or message is None:
        await invalid_button(query, chat_language(svc, update))
        return
    chat = chat_of(svc, update)
    language = match.group(1)
    await acknowledge(query)
    svc.store.update_chat(chat.chat_id, language=language)
    await edit_text(message, t("language_set", language))


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("language", language_command),
        CallbackQueryHandler(language_chosen, pattern=r"^lang:"),
    ]
