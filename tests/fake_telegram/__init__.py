"""Fake Telegram Bot API for end-to-end tests of the bot with the real python-telegram-bot stack.

See :mod:`tests.fake_telegram.server` for what is emulated and why.
"""

from .server import (
    DOWNLOAD,
    DROP,
    GET_FILE_LIMIT,
    SEND_METHODS,
    UPLOAD_LIMIT,
    ApiError,
    Call,
    FakeBotApi,
    SentMessage,
    StoredFile,
    Upload,
    make_ogg_opus,
    make_video_note_mp4,
)

__all__ = [
    "DOWNLOAD",
    "DROP",
    "GET_FILE_LIMIT",
    "SEND_METHODS",
    "UPLOAD_LIMIT",
    "ApiError",
    "Call",
    "FakeBotApi",
    "SentMessage",
    "StoredFile",
    "Upload",
    "make_ogg_opus",
    "make_video_note_mp4",
]
