"""/characters: a keyboard of the characters (name and description); a press remembers the
choice for the chat and the new character says hello in a short preview video. Below the
question, each character's share link (``t.me/<bot>?start=<id>``: whoever opens it starts the
bot with that character)."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from ..intake import admit, chat_of
from ..services import services
from ..texts import t
from .common import acknowledge, chat_language, edit_text, invalid_button, message_of, parse_callback

CALLBACK = re.compile(r"char:([a-z0-9][a-z0-9-]{0,39})")
BUTTON_CHARS = 60


RECORDED_MARK = "🎥 "
"""Marks a character made from a real person's recordings (not drawn, not a picture)."""


def _label(name: str, description: str, current: bool, recorded: bool = False) -> str:
    label = f"{'✓ ' if current else ''}{RECORDED_MARK if recorded else ''}{name}"
    if description:
        label = f"{label} - {description}"
    return label if len(label) <= BUTTON_CHARS else label[: BUTTON_CHARS - 1] + "…"


async def character_menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    message = update.effective_message
    assert message is not None
    chat = chat_of(svc, update)
    svc.catalogue.reload()  # characters added by an admin since the last look
    listed = svc.catalogue.list()
    if not listed:
        await message.reply_text(t("no_characters", chat.language))
        return
    recorded = {c.id for c in listed if svc.characters.made_by(c.id).get("path") == "person"}
    keyboard = [
        [
            InlineKeyboardButton(
                _label(c.name, c.description, c.id == chat.character, c.id in recorded),
                callback_data=f"char:{c.id}",
            )
        ]
        for c in listed
    ]
    links = "\n".join(f"{c.name}: {share_link(context.bot.username, c.id)}" for c in listed)
    text = f"{t('characters_prompt', chat.language)}\n\n{t('characters_share', chat.language)}\n{links}"
    if recorded:
        text += "\n\n" + t("characters_recorded", chat.language, mark=RECORDED_MARK.strip())
    await message.reply_text(text, reply_markup=InlineKeyboardMarkup(keyboard), disable_web_page_preview=True)


def share_link(bot_username: str, character_id: str) -> str:
    """The deep link that starts the bot with this character chosen."""
    return f"https://t.me/{bot_username}?start={character_id}"


async def character_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    query = update.callback_query
    assert query is not None
    match = parse_callback(query.data, CALLBACK)
    character = svc.catalogue.characters.get(match.group(1)) if match else None
    message = message_of(query)
    if character is None or message is None:
        await invalid_button(query, chat_language(svc, update))
        return
    chat = chat_of(svc, update)
    await acknowledge(query)
    svc.store.update_chat(chat.chat_id, character=character.id)
    await edit_text(message, t("character_chosen", chat.language, name=character.name))
    await admit(  # when busy, the choice is remembered and the preview skipped, silently
        svc,
        message,
        chat,
        character,
        [
            dict(
                chat_id=chat.chat_id,
                user_id=query.from_user.id,
                kind="preview",
                input=character.greeting_for(chat.language),
                character=character.id,
                language=chat.language,
                incoming_message_id=message.message_id,
            )
        ],
        quiet=True,
    )


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("characters", character_menu),
        CallbackQueryHandler(character_chosen, pattern=r"^char:"),
    ]
