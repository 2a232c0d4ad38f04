"""Voice notes, audio files, video notes and text: the character says it back in a video.

Everything a child can get wrong is answered here, at once, in words a child understands: a
file over the download limit (checked from ``file_size`` before ``getFile``, which would refuse
it anyway), a recording too long, a file that is not audio whatever its extension, an empty
recording, too much text, text with no words. Only then is a request recorded; the rendering is
the dispatcher's business.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import GramophoneError
from engine.speech import split_sentences
from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, NetworkError
from telegram.ext import BaseHandler, ContextTypes, MessageHandler, filters

from ..files import write_atomic
from ..intake import answering_character, chat_of, refusal, submit, tell_position
from ..services import Services, services
from ..texts import language_of_text, t

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset(
    ".ogg .oga .opus .mp3 .m4a .aac .wav .flac .webm .amr .mp4 .mka .wma .aiff .aif .caf .3gp".split()
)
MIN_AUDIO_S = 0.2


@dataclass(frozen=True)
class Media:
    """The audio-bearing attachment of a message, whichever kind it is."""

    attachment: Any
    suffix: str
    declared_duration_s: float | None


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)


def media_of(message: Message) -> Media | None:
    """The audio of a voice note, audio file, video note, or a document that claims to be audio."""
    if message.voice:
        return Media(message.voice, ".ogg", _seconds(message.voice.duration))
    if message.video_note:
        return Media(message.video_note, ".mp4", _seconds(message.video_note.duration))
    if message.audio:
        suffix = Path(message.audio.file_name or "").suffix.lower() or ".mp3"
        return Media(message.audio, suffix, _seconds(message.audio.duration))
    document = message.document
    if document:
        suffix = Path(document.file_name or "").suffix.lower()
        if (document.mime_type or "").startswith("audio/") or suffix in AUDIO_SUFFIXES:
            return Media(document, suffix if suffix in AUDIO_SUFFIXES else ".bin", None)
    return None


def check_audio(path: Path, max_s: float) -> str | None:
    """Why this file cannot be answered (a texts key), or None. Runs ffmpeg: call it in a thread."""
    from engine.media import probe

    try:
        info = probe(path)
    except GramophoneError:
        return "audio_unreadable"
    if not info.has_audio:
        return "audio_unreadable"
    if info.duration is None or info.duration < MIN_AUDIO_S:
        return "audio_empty"
    if info.duration > max_s:
        return "audio_too_long"
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
    if (reason := refusal(svc, chat, character)) is not None:
        await message.reply_text(reason)
        return
    await message.reply_chat_action(ChatAction.RECORD_VIDEO_NOTE)
    path = await _download(svc, message, media, language)
    if path is None:
        return
    problem = await asyncio.to_thread(check_audio, path, settings.voice_max_s)
    if problem is not None:
        path.unlink(missing_ok=True)
        log.info("chat %s message %s: %s", chat.chat_id, message.message_id, problem)
        await message.reply_text(
            t(problem, language, minutes=round(settings.voice_max_s / 60), mb=settings.download_max_bytes // (1024 * 1024))
        )
        return
    requests = submit(
        svc,
        [
            dict(
                chat_id=chat.chat_id,
                user_id=update.effective_user.id if update.effective_user else None,
                kind="voice",
                input=media.attachment.file_id,
                input_path=str(path),
                character=character.id,
                language=language,
                incoming_message_id=message.message_id,
            )
        ],
    )
    if requests:
        await tell_position(svc, message, requests[0], chat, character)


async def _download(svc: Services, message: Message, media: Media, language: str) -> Path | None:
    """Fetch the file into the inbox; None (and the child told why) when it cannot be had."""
    try:
        file = await media.attachment.get_file()
        data = bytes(await file.download_as_bytearray())
    except BadRequest as error:
        key = "file_too_big" if "too big" in error.message.lower() else "download_failed"
        log.info("chat %s message %s: getFile refused: %s", message.chat_id, message.message_id, error.message)
        await message.reply_text(t(key, language, mb=svc.settings.download_max_bytes // (1024 * 1024)))
        return None
    except NetworkError as error:
        log.warning("chat %s message %s: download failed: %s", message.chat_id, message.message_id, error)
        await message.reply_text(t("download_failed", language))
        return None
    if len(data) > svc.settings.download_max_bytes:
        await message.reply_text(t("file_too_big", language, mb=svc.settings.download_max_bytes // (1024 * 1024)))
        return None
    svc.settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    path = svc.settings.inbox_dir / f"{message.chat_id}-{message.message_id}{media.suffix}"
    await write_atomic(path, data)
    return path


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
    if (reason := refusal(svc, chat, character)) is not None:
        await message.reply_text(reason)
        return
    requests = submit(
        svc,
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
        MessageHandler(new & (filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE | filters.Document.ALL), on_media),
        MessageHandler(new & filters.TEXT & ~filters.COMMAND, on_text),
    ]
