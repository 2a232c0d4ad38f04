"""/story: a keyboard of bedtime stories; the chosen character tells the chosen one, in parts.

Beside the written stories (told by the character's TTS voice) come the stories an admin recorded
for the chat's character (``/newstory``, :mod:`bot.recorded_stories`): told in that real voice.

Each part is its own request (one video each), so the first part arrives within seconds while
the rest render, and the dispatcher sends them strictly in order.
"""

from __future__ import annotations

import asyncio
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from ..intake import admit, answering_character, chat_of
from ..services import services
from ..texts import DEFAULT_LANGUAGE, t
from .common import acknowledge, chat_language, edit_text, invalid_button, message_of, parse_callback

CALLBACK = re.compile(r"story:([a-z]{2,3}):([a-z0-9][a-z0-9_-]{0,40})")
RECORDED_CALLBACK = re.compile(r"rs:([a-z0-9][a-z0-9-]{0,39}):([a-z0-9][a-z0-9-]{0,15})")
"""A recorded story's button: ``rs:<character>:<slug>``, at most 60 bytes (Telegram allows 64)."""
RECORDED_MARK = "🎙 "


async def story_menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    message = update.effective_message
    assert message is not None
    chat = chat_of(svc, update)
    stories = svc.storybook.list(chat.language or DEFAULT_LANGUAGE) or svc.storybook.list(DEFAULT_LANGUAGE)
    recorded = await asyncio.to_thread(svc.recorded.list, chat.character) if chat.character else []
    if not stories and not recorded:
        await message.reply_text(t("no_stories", chat.language))
        return
    keyboard = [
        [
            InlineKeyboardButton(
                f"{RECORDED_MARK}{story.title}", callback_data=f"rs:{story.character}:{story.slug}"
            )
        ]
        for story in recorded
    ]
    keyboard += [
        [InlineKeyboardButton(story.title, callback_data=f"story:{story.language}:{story.slug}")]
        for story in stories
    ]
    await message.reply_text(t("stories_prompt", chat.language), reply_markup=InlineKeyboardMarkup(keyboard))


async def story_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    query = update.callback_query
    assert query is not None
    match = parse_callback(query.data, CALLBACK)
    story = svc.storybook.get(match.group(1), match.group(2)) if match else None
    message = message_of(query)
    if story is None or message is None:
        await invalid_button(query, chat_language(svc, update))
        return
    chat = chat_of(svc, update)
    await acknowledge(query)
    character = await answering_character(svc, chat, message)
    if character is None:
        return
    parts = story.parts(svc.settings.story_part_chars)
    rows = [
        dict(
            chat_id=chat.chat_id,
            user_id=query.from_user.id,
            kind="story",
            input=story.id,
            part=index,
            parts=len(parts),
            character=character.id,
            language=story.language,
            incoming_message_id=message.message_id,
        )
        for index in range(len(parts))
    ]
    if not await admit(svc, message, chat, character, rows):
        return  # no room (the chat was told), or the same press delivered twice
    key = "story_chosen" if len(parts) > 1 else "story_chosen_one"
    await edit_text(message, t(key, chat.language, name=character.name, title=story.title, parts=len(parts)))


async def recorded_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A story recorded in a real voice: told by the character it was recorded for, in parts."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    match = parse_callback(query.data, RECORDED_CALLBACK)
    if match is None:
        await invalid_button(query, chat_language(svc, update))
        return
    character_id, slug = match.group(1), match.group(2)
    story = await asyncio.to_thread(svc.recorded.get, character_id, slug)
    character = svc.catalogue.characters.get(character_id)
    message = message_of(query)
    if story is None or character is None or message is None:
        await invalid_button(query, chat_language(svc, update))
        return
    chat = chat_of(svc, update)
    await acknowledge(query)
    rows = [
        dict(
            chat_id=chat.chat_id,
            user_id=query.from_user.id,
            kind="story",
            input=story.id,
            part=index,
            parts=story.parts,
            character=character.id,
            language=story.language,
            incoming_message_id=message.message_id,
        )
        for index in range(story.parts)
    ]
    if not await admit(svc, message, chat, character, rows):
        return
    key = "story_chosen" if story.parts > 1 else "story_chosen_one"
    await edit_text(message, t(key, chat.language, name=character.name, title=story.title, parts=story.parts))


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("story", story_menu),
        CallbackQueryHandler(story_chosen, pattern=r"^story:"),
        CallbackQueryHandler(recorded_chosen, pattern=r"^rs:"),
    ]
