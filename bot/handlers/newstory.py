"""/newstory: an admin records a bedtime story in a real voice, for one character to tell.

character (buttons) -> the story (a voice note or an audio file) -> its title. The file is
checked like every user's file (its container from its bytes, one demuxer, local files only,
its length measured by decoding and capped at ``recorded_story_max_s``) and decoded into our own
WAV before anything keeps it; :mod:`bot.recorded_stories` owns what is stored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, NetworkError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from engine.errors import GramophoneError

from ..character_store import clean_name
from ..files import remove_quietly, write_atomic
from ..services import services
from ..texts import t
from .admin import admin_only, quiet_conversation
from .common import (
    acknowledge,
    chat_language,
    edit_text,
    invalid_button,
    message_context,
    message_of,
    parse_callback,
    query_context,
)

log = logging.getLogger(__name__)

CHARACTER, AUDIO, TITLE = range(3)
DRAFT = "newstory"
CALLBACK = re.compile(r"ns:char:([a-z0-9][a-z0-9-]{0,39})")


def _draft(context: ContextTypes.DEFAULT_TYPE) -> dict[str, Any]:
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


def _drop(context: ContextTypes.DEFAULT_TYPE) -> None:
    draft = context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    if draft and draft.get("wav"):
        remove_quietly(draft["wav"])


@admin_only
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, message, language = message_context(update, context)
    _drop(context)
    svc.catalogue.reload()
    listed = svc.catalogue.list()
    if not listed:
        await message.reply_text(t("no_characters", language))
        return ConversationHandler.END
    _draft(context)
    keyboard = [[InlineKeyboardButton(c.name, callback_data=f"ns:char:{c.id}")] for c in listed]
    await message.reply_text(t("ns_ask_character", language), reply_markup=InlineKeyboardMarkup(keyboard))
    return CHARACTER


@admin_only
async def character_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, query, language = query_context(update, context)
    match = parse_callback(query.data, CALLBACK)
    character = svc.catalogue.characters.get(match.group(1)) if match else None
    message = message_of(query)
    if character is None or message is None:
        await invalid_button(query, language)
        return None
    await acknowledge(query)
    _draft(context)["character"] = character.id
    await edit_text(
        message,
        t(
            "ns_ask_audio",
            language,
            name=character.name,
            minutes=round(svc.settings.recorded_story_max_s / 60),
        ),
    )
    return AUDIO


@admin_only
async def audio_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    from engine.effects import shift_pitch
    from engine.media import DECODE_MARGIN_S, inspect_untrusted_audio

    svc, message, language = message_context(update, context)
    attachment = message.voice or message.audio or message.document
    if attachment is None:
        await message.reply_text(t("ns_send_audio", language))
        return None
    limit = svc.settings.download_max_bytes
    size = getattr(attachment, "file_size", None)
    if size and size > limit:
        await message.reply_text(t("ns_too_big", language, mb=max(1, round(limit / 1e6))))
        return None
    try:
        file = await attachment.get_file()
        data = bytes(await file.download_as_bytearray())
    except (BadRequest, NetworkError) as error:
        log.warning("admin %s: story download failed: %s", message.chat_id, error)
        await message.reply_text(t("download_failed", language))
        return None
    folder = svc.settings.recorded_stories_dir / ".incoming"
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"{message.chat_id}-{message.message_id}.raw"
    wav = folder / f"{message.chat_id}-{message.message_id}.wav"
    await write_atomic(raw, data[:limit])
    max_s = svc.settings.recorded_story_max_s
    try:
        measured = await asyncio.to_thread(
            inspect_untrusted_audio, raw, max_seconds=max_s, timeout_s=svc.settings.probe_timeout_s
        )
        if measured.too_long:
            await message.reply_text(t("ns_too_long", language, minutes=round(max_s / 60)))
            return None
        if measured.duration_s < 5:
            await message.reply_text(t("ns_too_short", language))
            return None
        await asyncio.to_thread(
            shift_pitch,
            raw,
            wav,
            0.0,
            container=measured.container,
            max_seconds=max_s + DECODE_MARGIN_S,
            timeout_s=max(60.0, max_s / 4),
        )
    except GramophoneError as error:
        log.info("admin %s: story refused: %s", message.chat_id, error)
        remove_quietly(str(wav))
        await message.reply_text(t("ns_unreadable", language))
        return None
    finally:
        remove_quietly(str(raw))
    draft = _draft(context)
    if draft.get("wav"):
        remove_quietly(draft["wav"])
    draft.update(wav=str(wav), seconds=measured.duration_s)
    await message.reply_text(t("ns_ask_title", language, minutes=max(1, round(measured.duration_s / 60))))
    return TITLE


@admin_only
async def titled(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, message, language = message_context(update, context)
    title = clean_name(message.text)
    draft = _draft(context)
    if title is None:
        await message.reply_text(t("ns_bad_title", language))
        return None
    character = svc.catalogue.characters.get(draft.get("character", ""))
    if character is None or not draft.get("wav"):
        _drop(context)
        await message.reply_text(t("ns_gone", language))
        return ConversationHandler.END
    try:
        story = await asyncio.to_thread(svc.recorded.add, character.id, title, language, Path(draft["wav"]))
    finally:
        _drop(context)
    log.info(
        "admin %s recorded story %s (%.0f s, %d parts)",
        message.chat_id,
        story.id,
        story.duration_s,
        story.parts,
    )
    await message.reply_text(
        t("ns_saved", language, title=story.title, name=character.name, parts=story.parts)
    )
    return ConversationHandler.END


async def cancelled(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    _drop(context)
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("ns_cancelled", chat_language(services(context), update)))
    return ConversationHandler.END


@admin_only
async def use_buttons(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("nc_use_buttons", chat_language(services(context), update)))


def handlers() -> list[BaseHandler]:
    new = filters.UpdateType.MESSAGE
    return [
        quiet_conversation(
            entry_points=[CommandHandler("newstory", start)],
            states={
                CHARACTER: [
                    CallbackQueryHandler(character_chosen, pattern=r"^ns:char:"),
                    MessageHandler(new & ~filters.COMMAND, use_buttons),
                ],
                AUDIO: [MessageHandler(new & ~filters.COMMAND, audio_received)],
                TITLE: [MessageHandler(new & filters.TEXT & ~filters.COMMAND, titled)],
            },
            fallbacks=[CommandHandler("cancel", cancelled)],
            allow_reentry=True,
            name="newstory",
            persistent=True,
        )
    ]
