"""Voice notes, audio files, video notes and text: the character says it back in a video.

Everything a child can get wrong is answered in words a child understands. What Telegram tells
about a file (its size, its duration) is checked at once, before ``getFile``; then the request
is recorded with its file id (a ``fetching`` row, so a bot killed during the download still
answers it after the restart), and :class:`bot.inbox.Inbox` downloads it and checks what the
bytes really are: an audio container we accept, of a length measured by decoding it. Text is
checked for length and for words. The rendering is the dispatcher's business.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import BaseHandler, ContextTypes, MessageHandler, filters

from engine.speech import split_sentences

from ..intake import admit, answering_character, chat_of, tell_position
from ..services import services
from ..texts import language_of_text, t

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset(
    ".ogg .oga .opus .mp3 .m4a .aac .wav .flac .webm .amr .mp4 .mka .wma .aiff .aif .caf .3gp".split()
)
"""A document with one of these names (or an audio/* type) is meant as audio: only a hint that
the sender wants an answer. What the file is comes from its bytes (:mod:`bot.inbox`)."""


@dataclass(frozen=True)
class Media:
    """The audio-bearing attachment of a message, whichever kind it is."""

    attachment: Any
    declared_duration_s: float | None


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)


def media_of(message: Message) -> Media | None:
    """The audio of a voice note, audio file, video note, or a document that claims to be audio."""
    if message.voice:
        return Media(message.voice, _seconds(message.voice.duration))
    if message.video_note:
        return Media(message.video_note, _seconds(message.video_note.duration))
    if message.audio:
        return Media(message.audio, _seconds(message.audio.duration))
    document = message.document
    if document:
        suffix = Path(document.file_name or "").suffix.lower()
        if (document.mime_type or "").startswith("audio/") or suffix in AUDIO_SUFFIXES:
            return Media(document, None)
    return None


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    settings = svc.settings
    message = update.effective_message
    assert message is not None
    chat = chat_of(svc, update)
    language = chat.language
    media = media_of(message)
    if media is None:
        await message.reply_text(t("unsupported", language))
        return
    size = getattr(media.attachment, "file_size", None)
    if size is not None and size > settings.download_max_bytes:
        await message.reply_text(t("file_too_big", language, mb=settings.download_max_bytes // (1024 * 1024)))
        return
    if media.declared_duration_s is not None and media.declared_duration_s > settings.voice_max_s:
        await message.reply_text(t("audio_too_long", language, minutes=round(settings.voice_max_s / 60)))
        return
    if svc.store.find(chat.chat_id, message.message_id, "voice") is not None:
        return  # a redelivered update: already recorded
    character = await answering_character(svc, chat, message)
    if character is None:
        return
    requests = await admit(
        svc,
        message,
        chat,
        character,
        [
            dict(
                chat_id=chat.chat_id,
                user_id=update.effective_user.id if update.effective_user else None,
                kind="voice",
                input=media.attachment.file_id,
                character=character.id,
                language=language,
                incoming_message_id=message.message_id,
            )
        ],
        status="fetching",
    )
    if not requests or not svc.inbox.claim(requests[0]):  # claimed before any await: ours to fetch
        return
    try:
        await message.reply_chat_action(ChatAction.RECORD_VIDEO_NOTE)
    except TelegramError as error:  # a nicety: the claim must reach fetch_claimed, which ends it
        log.info("chat %s: no chat action: %s", chat.chat_id, error)
    if await svc.inbox.fetch_claimed(requests[0]):
        await tell_position(svc, message, requests[0], chat, character)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    settings = svc.settings
    message = update.effective_message
    assert message is not None and message.text is not None
    chat = chat_of(svc, update)
    text = message.text.strip()
    if len(text) > settings.text_max_chars:
        await message.reply_text(t("text_too_long", chat.language, limit=settings.text_max_chars))
        return
    if not split_sentences(text):
        await message.reply_text(t("text_empty", chat.language))
        return
    character = await answering_character(svc, chat, message)
    if character is None:
        return
    requests = await admit(
        svc,
        message,
        chat,
        character,
        [
            dict(
                chat_id=chat.chat_id,
                user_id=update.effective_user.id if update.effective_user else None,
                kind="text",
                input=text,
                character=character.id,
                language=language_of_text(text, chat.language),
                incoming_message_id=message.message_id,
            )
        ],
    )
    if requests:
        await tell_position(svc, message, requests[0], chat, character)


def handlers() -> list[BaseHandler]:
    new = filters.UpdateType.MESSAGE
    return [
        MessageHandler(
            new & (filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE | filters.Document.ALL), on_media
        ),
        MessageHandler(new & filters.TEXT & ~filters.COMMAND, on_text),
    ]
