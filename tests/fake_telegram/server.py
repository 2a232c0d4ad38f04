"""A fake Telegram Bot API server that the real python-telegram-bot stack can talk to.

Why a real HTTP server rather than mocking ``telegram.Bot``: the bot's bugs live in the seams
PTB hides from unit tests -- multipart uploads, JSON-encoded form fields, long-polling offsets,
timeouts, 429 back-off, file downloads. Running PTB's own ``HTTPXRequest`` against this server on
127.0.0.1 exercises all of them without the network.

The server speaks the Bot API wire protocol as PTB 22 uses it:

* ``POST``/``GET`` ``/bot<TOKEN>/<method>``; bodies are ``application/x-www-form-urlencoded``
  (PTB without files), ``multipart/form-data`` (PTB with files) or ``application/json``.
  Form values are strings: non-string parameters arrive JSON-encoded (``"123"``, ``"true"``,
  ``'{"inline_keyboard": ...}'``), plain strings arrive as-is. They are decoded per field name.
* answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": ...}``
  with the same HTTP status, exactly the shape ``telegram.request.BaseRequest`` parses.
* files are downloaded with ``GET /file/bot<TOKEN>/<file_path>``.

It runs either in the caller's event loop (``async with FakeBotApi() as api``) or in a background
thread with its own loop (``with FakeBotApi() as api`` / ``FakeBotApi.start_in_thread()``); the
test-side API is thread-safe in both modes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import html
import itertools
import json
import logging
import mimetypes
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from aiohttp import web

log = logging.getLogger("fake_telegram")

DROP: Final[str] = "drop"
"""``fail_next(..., status=DROP)``: close the TCP connection without answering."""

DOWNLOAD: Final[str] = "download"
"""Pseudo method name under which file downloads are recorded and can be made to fail."""

GET_FILE_LIMIT: Final[int] = 20 * 1024 * 1024
"""The real cloud Bot API refuses ``getFile`` above 20 MB."""

UPLOAD_LIMIT: Final[int] = 50 * 1024 * 1024
"""The real cloud Bot API accepts uploads up to 50 MB (413 above)."""

SEND_METHODS: Final[frozenset[str]] = frozenset(
    {
        "sendMessage",
        "sendVideoNote",
        "sendVideo",
        "sendPhoto",
        "sendAudio",
        "sendVoice",
        "sendDocument",
    }
)
"""Methods that create a message in a chat (what :meth:`FakeBotApi.sent_messages` lists)."""

# --- per-field decoding of form values (PTB JSON-encodes every non-str value) -----------------

_JSON_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
        "media",
        "results",
        "options",
        "reaction",
        "suggested_post_parameters",
    }
)
_INT_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "user_id",
        "message_id",
        "reply_to_message_id",
        "message_thread_id",
        "offset",
        "limit",
        "duration",
        "length",
        "width",
        "height",
        "cache_time",
        "max_connections",
        "direct_messages_topic_id",
    }
)
_FLOAT_FIELDS: Final[frozenset[str]] = frozenset({"timeout"})
_BOOL_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "supports_streaming",
        "has_spoiler",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "allow_paid_broadcast",
        "show_caption_above_media",
    }
)

_CHAT_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_BUTTON_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_DEFAULT_MIME: Final[dict[str, str]] = {
    "voice": "audio/ogg",
    "audio": "audio/mpeg",
    "video_note": "video/mp4",
    "video": "video/mp4",
    "photo": "image/jpeg",
}
_COMMAND_RE: Final[re.Pattern[str]] = re.compile(r"^[a-z0-9_]{1,32}$")
_FILE_PATH_DIRS: Final[dict[str, tuple[str, str]]] = {
    # kind -> (directory on the real server, default extension)
    "voice": ("voice", "oga"),
    "audio": ("music", "mp3"),
    "video_note": ("video_notes", "mp4"),
    "video": ("videos", "mp4"),
    "photo": ("photos", "jpg"),
    "document": ("documents", "bin"),
    "sticker": ("stickers", "webp"),
}


class ApiError(Exception):
    """An error answer of the Bot API: becomes ``{"ok": false, ...}`` with HTTP status ``code``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclasses.dataclass(frozen=True)
class Upload:
    """One file part of a multipart request, as the bot sent it."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class Call:
    """One recorded request to the fake server.

    ``params`` are decoded (ints, bools, JSON objects as Python values); ``files`` maps a
    parameter name (``video_note``, ``thumbnail``...) to the uploaded bytes, ``uploads`` keeps
    the file names and content types. ``time`` is ``time.monotonic()`` when the request arrived,
    so retry spacing can be measured. ``status`` is the HTTP status answered (0: connection
    dropped); ``result`` the ``result`` field on success, ``description`` the error text.
    """

    method: str
    params: dict[str, Any]
    files: dict[str, bytes]
    time: float
    status: int = 200
    result: Any = None
    description: str | None = None
    uploads: dict[str, Upload] = dataclasses.field(default_factory=dict)
    http_method: str = "POST"

    @property
    def ok(self) -> bool:
        """Whether the server answered ``ok: true``."""
        return self.status == 200


@dataclasses.dataclass(frozen=True)
class SentMessage:
    """A message the bot created with a ``send*`` method (as answered, not as later edited)."""

    method: str
    chat_id: int
    message_id: int
    text: str | None
    """``text`` for sendMessage, else the ``caption`` (raw, as sent, markup included)."""
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    file: bytes | None
    """Uploaded bytes (or the stored bytes when a known ``file_id`` was re-sent)."""
    file_id: str | None
    file_name: str | None
    params: dict[str, Any]
    message: dict[str, Any]
    """The Message JSON that was answered."""
    time: float

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """Inline keyboard buttons as ``(text, callback_data)``, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(b.get("text", ""), b.get("callback_data")) for row in rows for b in row]


@dataclasses.dataclass
class StoredFile:
    """A file known to the server: injected by the test or uploaded by the bot."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes | None
    file_path: str | None
    file_name: str | None
    mime_type: str | None
    declared_size: int | None = None

    @property
    def size(self) -> int:
        """Size Telegram reports (``declared_size`` lets a test fake a huge file cheaply)."""
        if self.declared_size is not None:
            return self.declared_size
        return len(self.data) if self.data is not None else 0


@dataclasses.dataclass
class _Fault:
    status: int | str | None
    retry_after: float
    description: str | None
    delay: float


@dataclasses.dataclass
class _Poller:
    """A waiting ``getUpdates``; a newer one terminates it with 409 like the real server."""

    event: asyncio.Event
    superseded: bool = False


class _HybridStart:
    """``FakeBotApi.start_in_thread(**kw)`` builds and starts; ``api.start_in_thread()`` starts."""

    def __get__(self, obj: FakeBotApi | None, cls: type[FakeBotApi]) -> Callable[..., FakeBotApi]:
        if obj is None:
            return lambda **kwargs: cls(**kwargs)._start_in_thread()
        return obj._start_in_thread


class FakeBotApi:
    """In-process fake of the Telegram Bot API (cloud server behaviour, private chats only).

    Use ``async with FakeBotApi() as api`` to serve from the current event loop, or
    ``with FakeBotApi() as api`` (or ``api = FakeBotApi.start_in_thread()`` ... ``api.stop()``)
    to serve from a background thread -- needed when the code under test blocks its loop or runs
    its own (``Application.run_polling``).
    """

    DROP: Final[str] = DROP
    DOWNLOAD: Final[str] = DOWNLOAD

    start_in_thread = _HybridStart()

    def __init__(
        self,
        token: str = "123456789:FAKE-gramophone-token",
        *,
        bot_username: str = "gramophone_test_bot",
        bot_name: str = "Gramophone",
        get_file_limit: int = GET_FILE_LIMIT,
        strict_markup: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        """``strict_markup``: reject text whose ``parse_mode`` markup Telegram would reject
        (unescaped MarkdownV2 characters, unbalanced HTML tags) -- an approximation of the real
        parser, good enough to catch the classic "a '.' in a kid's name" failure."""
        self.token = token
        bot_id_text = token.split(":", 1)[0]
        self.bot_id = int(bot_id_text) if bot_id_text.isdigit() else 123456789
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.get_file_limit = get_file_limit
        self.strict_markup = strict_markup
        self._host = host
        self._port = port

        self._lock = threading.RLock()
        self._calls_changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._sent: list[SentMessage] = []
        self._users: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._pending: list[dict[str, Any]] = []
        self._injected: dict[int, dict[str, Any]] = {}
        self._update_ids = itertools.count(100_000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._files: dict[str, StoredFile] = {}
        self._paths: dict[str, str] = {}
        self._file_counter = itertools.count(1)
        self._faults: dict[str, collections.deque[_Fault]] = {}
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._webhook: dict[str, Any] = {}
        self._allowed_updates: list[str] | None = None

        self._descriptions: dict[tuple[str, str], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._pollers: list[_Poller] = []  # touched only in the server loop
        self._closing = False
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        self._actual_port: int | None = None

        self._handlers: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, Upload]], Any]]]
        self._handlers = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "logOut": self._true,
                "close": self._true,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "setMyDescription": self._set_my_description,
                "setMyShortDescription": self._set_my_short_description,
                "getMyDescription": self._get_my_description,
                "getMyShortDescription": self._get_my_short_description,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "sendVideoNote": self._send_video_note,
                "sendVideo": self._send_video,
                "sendPhoto": self._send_photo,
                "sendAudio": self._send_audio,
                "sendVoice": self._send_voice,
                "sendDocument": self._send_document,
                "getFile": self._get_file,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The TCP port actually bound (ephemeral unless ``port=`` was given)."""
        if self._actual_port is None:
            raise RuntimeError("FakeBotApi is not running")
        return self._actual_port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``Bot(base_url=...)`` / ``ApplicationBuilder().base_url(...)``: PTB appends the
        token itself."""
        return f"{self.root_url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Bot(base_file_url=...)``: PTB builds ``<base_file_url><token>/<file_path>``."""
        return f"{self.root_url}/file/bot"

    async def start(self) -> FakeBotApi:
        """Serve from the running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeBotApi already started")
        self._loop = asyncio.get_running_loop()
        self._closing = False
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_download)
        # access_log=None: one line per long poll would drown the test output.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        await site.start()
        server = site._server  # noqa: SLF001 -- aiohttp exposes no public getter for the port
        assert server is not None and server.sockets
        self._actual_port = server.sockets[0].getsockname()[1]
        self._runner = runner
        log.debug("fake Bot API listening on %s", self.root_url)
        return self

    async def aclose(self) -> None:
        """Stop serving (in-loop mode). Waiting long polls are answered with no updates."""
        if self._runner is None:
            return
        self._closing = True
        self._wake_pollers_in_loop()
        await self._runner.cleanup()
        self._runner = None
        log.debug("fake Bot API on port %s stopped", self._actual_port)

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _start_in_thread(self) -> FakeBotApi:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("FakeBotApi already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:  # noqa: BLE001 -- handed to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._thread_stop.wait()
            finally:
                await self.aclose()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="fake-telegram", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("fake Bot API thread did not start")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background-thread server started by :meth:`start_in_thread`."""
        thread, loop, stop = self._thread, self._loop, self._thread_stop
        if thread is None or loop is None or stop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("fake Bot API thread did not stop within %.1f s", timeout)
        self._thread = None

    def __enter__(self) -> FakeBotApi:
        return self._start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test-side: users, faults

    def add_user(
        self,
        user_id: int,
        first_name: str = "Kid",
        language_code: str | None = "en",
        *,
        username: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """Register a user; their private chat has ``id == user_id``. Returns the User JSON."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        with self._lock:
            self._users[user_id] = user
        return dict(user)

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """Make sends to this user fail with 403 "Forbidden: bot was blocked by the user"."""
        with self._lock:
            (self._blocked.add if blocked else self._blocked.discard)(user_id)

    def fail_next(
        self,
        method: str,
        status: int | str | None = 429,
        retry_after: float = 1,
        times: int = 1,
        *,
        description: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (after reading the request).

        ``status``: 429 (answers ``parameters.retry_after`` -> ``telegram.error.RetryAfter``),
        any other HTTP code (JSON error body; 502 answers an nginx-style HTML page like the real
        front end does), :data:`DROP` (close the connection unanswered) or ``None`` (answer
        normally, after ``delay`` seconds -- a slow server; the call still takes effect even if
        the client gave up, like the real one). ``method`` may be :data:`DOWNLOAD`.
        """
        fault = _Fault(status, retry_after, description, delay)
        with self._lock:
            queue = self._faults.setdefault(method.lower(), collections.deque())
            queue.extend(fault for _ in range(times))

    def reset(self) -> None:
        """Forget recorded traffic, pending updates, messages and faults.

        Users, files, commands and the id counters survive: ids never go backwards, like on the
        real server.
        """
        with self._lock:
            self._calls.clear()
            self._sent.clear()
            self._pending.clear()
            self._injected.clear()
            self._messages.clear()
            self._callback_queries.clear()
            self._faults.clear()
            self._blocked.clear()

    # ------------------------------------------------------------------ test-side: injection

    def send_text(self, chat_id: int, text: str, user_id: int | None = None) -> int:
        """Inject a text message from the user; ``/commands`` get a ``bot_command`` entity."""
        message = self._new_user_message(chat_id, user_id)
        message["text"] = text
        match = re.match(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?", text)
        if match:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group(0))}]
        return self._inject_message(message)

    def send_group_text(
        self, chat_id: int, text: str, user_id: int, *, chat_type: str = "group", title: str = "A group"
    ) -> int:
        """Inject a text message from ``user_id`` in a group (``chat_id`` negative, as Telegram's are)."""
        message = self._new_user_message(chat_id, user_id)
        message["chat"] = {"id": chat_id, "type": chat_type, "title": title}
        message["text"] = text
        return self._inject_message(message)

    def send_voice(
        self,
        chat_id: int,
        ogg_bytes: bytes,
        duration: int,
        user_id: int | None = None,
        *,
        mime_type: str = "audio/ogg",
        declared_size: int | None = None,
    ) -> int:
        """Inject a voice note (OGG/Opus); its file is then available to getFile + download."""
        stored = self.add_file(ogg_bytes, "voice", mime_type=mime_type, declared_size=declared_size)
        message = self._new_user_message(chat_id, user_id)
        message["voice"] = {
            **self._file_json(stored),
            "duration": int(duration),
            "mime_type": mime_type,
        }
        return self._inject_message(message)

    def send_audio(
        self,
        chat_id: int,
        data: bytes,
        duration: int,
        user_id: int | None = None,
        *,
        file_name: str = "audio.mp3",
        mime_type: str = "audio/mpeg",
        title: str | None = None,
        performer: str | None = None,
        declared_size: int | None = None,
    ) -> int:
        """Inject an audio file (music player attachment, not a voice note)."""
        stored = self.add_file(
            data, "audio", file_name=file_name, mime_type=mime_type, declared_size=declared_size
        )
        audio: dict[str, Any] = {
            **self._file_json(stored),
            "duration": int(duration),
            "mime_type": mime_type,
            "file_name": file_name,
        }
        if title:
            audio["title"] = title
        if performer:
            audio["performer"] = performer
        message = self._new_user_message(chat_id, user_id)
        message["audio"] = audio
        return self._inject_message(message)

    def send_video_note(
        self,
        chat_id: int,
        mp4_bytes: bytes,
        duration: int,
        length: int = 240,
        user_id: int | None = None,
        *,
        declared_size: int | None = None,
    ) -> int:
        """Inject a round video message from the user."""
        stored = self.add_file(mp4_bytes, "video_note", mime_type="video/mp4", declared_size=declared_size)
        message = self._new_user_message(chat_id, user_id)
        message["video_note"] = {
            **self._file_json(stored),
            "duration": int(duration),
            "length": int(length),
        }
        return self._inject_message(message)

    def send_video(
        self,
        chat_id: int,
        mp4_bytes: bytes,
        duration: int,
        width: int = 640,
        height: int = 480,
        user_id: int | None = None,
        *,
        file_name: str = "video.mp4",
        declared_size: int | None = None,
    ) -> int:
        """Inject a regular video from the user."""
        stored = self.add_file(
            mp4_bytes,
            "video",
            file_name=file_name,
            mime_type="video/mp4",
            declared_size=declared_size,
        )
        message = self._new_user_message(chat_id, user_id)
        message["video"] = {
            **self._file_json(stored),
            "duration": int(duration),
            "width": width,
            "height": height,
            "file_name": file_name,
            "mime_type": "video/mp4",
        }
        return self._inject_message(message)

    def send_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        user_id: int | None = None,
        *,
        caption: str | None = None,
        declared_size: int | None = None,
    ) -> int:
        """Inject a file sent "as file" (e.g. a .wav or an .ogg that is not a voice note)."""
        mime_type = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = self.add_file(
            data,
            "document",
            file_name=file_name,
            mime_type=mime_type,
            declared_size=declared_size,
        )
        message = self._new_user_message(chat_id, user_id)
        message["document"] = {
            **self._file_json(stored),
            "file_name": file_name,
            "mime_type": mime_type,
        }
        if caption is not None:
            message["caption"] = caption
        return self._inject_message(message)

    def send_photo(
        self,
        chat_id: int,
        jpeg_bytes: bytes,
        user_id: int | None = None,
        *,
        caption: str | None = None,
    ) -> int:
        """Inject a compressed photo (one PhotoSize; size read from the JPEG/PNG header)."""
        width, height = _image_size(jpeg_bytes) or (512, 512)
        stored = self.add_file(jpeg_bytes, "photo", mime_type="image/jpeg")
        message = self._new_user_message(chat_id, user_id)
        message["photo"] = [{**self._file_json(stored), "width": width, "height": height}]
        if caption is not None:
            message["caption"] = caption
        return self._inject_message(message)

    def send_sticker(
        self,
        chat_id: int,
        user_id: int | None = None,
        *,
        emoji: str = "\N{SLIGHTLY SMILING FACE}",
        data: bytes = b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    ) -> int:
        """Inject a sticker: a message type the bot does not support."""
        stored = self.add_file(data, "sticker", mime_type="image/webp")
        message = self._new_user_message(chat_id, user_id)
        message["sticker"] = {
            **self._file_json(stored),
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": emoji,
        }
        return self._inject_message(message)

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        user_id: int | None = None,
        *,
        strict: bool = True,
    ) -> int:
        """Inject a callback_query for an inline button of a message the bot sent.

        With ``strict`` the message must exist and carry a button with this ``callback_data``
        (a real client cannot press a button that is not there -- e.g. after the bot edited the
        keyboard away); raises ``ValueError`` otherwise.
        """
        user_id = chat_id if user_id is None else user_id
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if strict:
                if message is None:
                    raise ValueError(f"no message {message_id} in chat {chat_id} to press on")
                rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
                datas = [b.get("callback_data") for row in rows for b in row]
                if data not in datas:
                    raise ValueError(f"message {message_id} has no button {data!r}: {datas}")
            query_id = str(next(self._callback_ids))
            self._callback_queries[query_id] = False
            query: dict[str, Any] = {
                "id": query_id,
                "from": self._user(user_id),
                "chat_instance": str(-(abs(chat_id) * 7919 % 10**18) - 1),
                "data": data,
            }
            if message is not None:
                query["message"] = json.loads(json.dumps(message))
            return self._inject({"callback_query": query})

    def add_file(
        self,
        data: bytes | None,
        kind: str = "document",
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        declared_size: int | None = None,
    ) -> StoredFile:
        """Register bytes as a Telegram file (downloadable via getFile) and return it.

        ``declared_size`` makes getFile and the message report that size instead of
        ``len(data)`` -- to test the 20 MB limit without allocating 20 MB.
        """
        with self._lock:
            number = next(self._file_counter)
            digest = hashlib.sha1(data or str(number).encode()).hexdigest()
            directory, ext = _FILE_PATH_DIRS.get(kind, ("documents", "bin"))
            if file_name and "." in file_name:
                ext = file_name.rsplit(".", 1)[1]
            stored = StoredFile(
                file_id=f"FAKE-{kind}-{number}-{digest[:12]}",
                file_unique_id=f"U{digest[:15]}",
                kind=kind,
                data=data,
                file_path=f"{directory}/file_{number}.{ext}" if data is not None else None,
                file_name=file_name,
                mime_type=mime_type,
                declared_size=declared_size,
            )
            self._files[stored.file_id] = stored
            if stored.file_path:
                self._paths[stored.file_path] = stored.file_id
            return stored

    # ------------------------------------------------------------------ test-side: inspection

    @property
    def calls(self) -> list[Call]:
        """Every request so far (a copy), oldest first."""
        with self._lock:
            return list(self._calls)

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Every injected update (a copy), oldest first, confirmed or not."""
        with self._lock:
            return [json.loads(json.dumps(u)) for u in self._injected.values()]

    def update(self, update_id: int) -> dict[str, Any]:
        """The injected update with this id, e.g. to read a voice note's ``file_id``."""
        with self._lock:
            return json.loads(json.dumps(self._injected[update_id]))

    @property
    def pending_update_count(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return len(self._pending)

    def file(self, file_id: str) -> StoredFile:
        """A stored file by id (uploaded by the bot or injected)."""
        with self._lock:
            return self._files[file_id]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """Current state of a message (after edits); None once deleted."""
        with self._lock:
            found = self._messages.get((chat_id, message_id))
            return json.loads(json.dumps(found)) if found is not None else None

    def sent_messages(self, chat_id: int | None = None) -> list[SentMessage]:
        """Messages the bot created with send* methods, optionally for one chat."""
        with self._lock:
            return [m for m in self._sent if chat_id is None or m.chat_id == chat_id]

    def commands(self, scope_type: str = "default", language_code: str = "") -> list[dict[str, Any]]:
        """Commands last set with setMyCommands for this scope/language."""
        with self._lock:
            return list(self._commands.get(f"{scope_type}|{language_code}", []))

    @property
    def webhook(self) -> dict[str, Any]:
        """Parameters of the last setWebhook (empty after deleteWebhook)."""
        with self._lock:
            return dict(self._webhook)

    def mark(self) -> int:
        """Index to pass as ``since=`` to :meth:`wait_for`: only later calls count."""
        with self._lock:
            return len(self._calls)

    @staticmethod
    def sends_to(chat_id: int, method: str | None = None) -> Callable[[Call], bool]:
        """Predicate for :meth:`wait_for`: a successful send* call to ``chat_id``."""

        def predicate(call: Call) -> bool:
            return (
                call.method in SEND_METHODS
                and (method is None or call.method == method)
                and call.params.get("chat_id") == chat_id
            )

        return predicate

    def _matching(self, what: str | Callable[[Call], bool], since: int, include_failed: bool) -> list[Call]:
        if isinstance(what, str):
            name = what.lower()

            def predicate(call: Call) -> bool:
                return call.method.lower() == name
        else:
            predicate = what
        return [c for c in self._calls[since:] if (include_failed or c.ok) and predicate(c)]

    async def wait_for(
        self,
        what: str | Callable[[Call], bool],
        count: int = 1,
        timeout: float = 30.0,
        *,
        since: int = 0,
        include_failed: bool = False,
    ) -> list[Call]:
        """Wait until ``count`` calls match (a method name or a predicate on :class:`Call`).

        Only successful calls count unless ``include_failed``; only calls after index ``since``
        (see :meth:`mark`). Returns the matching calls; raises ``TimeoutError`` listing what was
        recorded, so a failing test says what the bot did instead.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = self._matching(what, since, include_failed)
                if len(found) >= count:
                    return found
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(what, count, len(found), timeout))
            await asyncio.sleep(0.01)

    def wait_for_sync(
        self,
        what: str | Callable[[Call], bool],
        count: int = 1,
        timeout: float = 30.0,
        *,
        since: int = 0,
        include_failed: bool = False,
    ) -> list[Call]:
        """Blocking :meth:`wait_for`, for a thread other than the server's."""
        if self._thread is None and self._loop is not None and _in_loop(self._loop):
            raise RuntimeError("wait_for_sync would block the server's own loop: await wait_for")
        with self._calls_changed:
            found: list[Call] = []

            def done() -> bool:
                nonlocal found
                found = self._matching(what, since, include_failed)
                return len(found) >= count

            if not self._calls_changed.wait_for(done, timeout):
                raise TimeoutError(self._timeout_message(what, count, len(found), timeout))
            return found

    def _timeout_message(
        self, what: str | Callable[[Call], bool], count: int, found: int, timeout: float
    ) -> str:
        with self._lock:
            seen = ", ".join(f"{c.method}:{c.status}" for c in self._calls[-30:])
        label = what if isinstance(what, str) else getattr(what, "__name__", "predicate")
        return f"waited {timeout:.1f}s for {count} x {label}, got {found}; last calls: [{seen}]"

    # ------------------------------------------------------------------ internals: state

    def _user(self, user_id: int) -> dict[str, Any]:
        with self._lock:
            if user_id not in self._users:
                self.add_user(user_id)
            return dict(self._users[user_id])

    def _chat(self, chat_id: int) -> dict[str, Any]:
        user = self._user(chat_id)
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return chat

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    def _next_message_id(self, chat_id: int) -> int:
        with self._lock:
            return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _new_user_message(self, chat_id: int, user_id: int | None) -> dict[str, Any]:
        return {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self._user(chat_id if user_id is None else user_id),
        }

    def _inject_message(self, message: dict[str, Any]) -> int:
        with self._lock:
            self._messages[(message["chat"]["id"], message["message_id"])] = message
            return self._inject({"message": message})

    def _inject(self, body: dict[str, Any]) -> int:
        with self._lock:
            update_id = next(self._update_ids)
            update = {"update_id": update_id, **json.loads(json.dumps(body))}
            self._pending.append(update)
            self._injected[update_id] = update
        log.debug("injected update %s: %s", update_id, next(iter(body)))
        self._wake_pollers()
        return update_id

    def _file_json(self, stored: StoredFile) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
        }
        if stored.data is not None:
            out["file_size"] = stored.size
        return out

    def _wake_pollers(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake_pollers_in_loop)
        except RuntimeError:  # loop closed between the check and the call
            pass

    def _wake_pollers_in_loop(self) -> None:
        for poller in self._pollers:
            poller.event.set()

    def _record(self, call: Call) -> None:
        with self._calls_changed:
            self._calls.append(call)
            self._calls_changed.notify_all()

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method.lower())
            return queue.popleft() if queue else None

    # ------------------------------------------------------------------ internals: HTTP

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        try:
            params, uploads = await _read_params(request)
        except ApiError as exc:
            return _error_response(exc)
        if token != self.token:
            self._record(
                Call(raw_method, params, {}, arrived, 401, None, "Unauthorized", http_method=request.method)
            )
            return _error_response(ApiError(401, "Unauthorized"))
        entry = self._handlers.get(raw_method.lower())
        if entry is None:
            log.warning("fake Bot API does not implement %r: answering 404 Not Found", raw_method)
            self._record(
                Call(raw_method, params, {}, arrived, 404, None, "Not Found", http_method=request.method)
            )
            return _error_response(ApiError(404, "Not Found"))
        method, handler = entry
        files = {name: up.data for name, up in uploads.items()}
        call = Call(method, params, files, arrived, uploads=uploads, http_method=request.method)

        fault = self._take_fault(method)
        if fault is not None:
            injected = await self._apply_fault(request, fault, call)
            if injected is not None:
                return injected
        try:
            result = await handler(params, uploads)
        except ApiError as exc:
            self._record(dataclasses.replace(call, status=exc.code, description=exc.description))
            return _error_response(exc)
        except Exception as exc:  # noqa: BLE001 -- a bug in the fake must not look like a hang
            log.exception("fake Bot API crashed in %s", method)
            err = ApiError(500, f"Internal Server Error: fake server bug: {exc!r}")
            self._record(dataclasses.replace(call, status=500, description=err.description))
            return _error_response(err)
        self._record(dataclasses.replace(call, result=result))
        return web.json_response({"ok": True, "result": result})

    async def _apply_fault(
        self, request: web.Request, fault: _Fault, call: Call
    ) -> web.StreamResponse | None:
        """Answer per ``fault``; None means "go on and answer normally"."""
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        if fault.status == DROP:
            self._record(dataclasses.replace(call, status=0, description="connection dropped"))
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        status = int(fault.status)
        if status == 429:
            retry = int(fault.retry_after) if float(fault.retry_after).is_integer() else (fault.retry_after)
            err = ApiError(
                429,
                fault.description or f"Too Many Requests: retry after {retry}",
                {"retry_after": retry},
            )
        elif status == 502 and fault.description is None:
            self._record(dataclasses.replace(call, status=502, description="Bad Gateway"))
            return web.Response(status=502, text=_NGINX_502, content_type="text/html")
        else:
            err = ApiError(status, fault.description or _default_description(status))
        self._record(dataclasses.replace(call, status=err.code, description=err.description))
        return _error_response(err)

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        path = request.match_info["path"]
        call = Call(DOWNLOAD, {"file_path": path}, {}, arrived, http_method="GET")
        if request.match_info["token"] != self.token:
            self._record(dataclasses.replace(call, status=401, description="Unauthorized"))
            return _error_response(ApiError(401, "Unauthorized"))
        fault = self._take_fault(DOWNLOAD)
        if fault is not None:
            injected = await self._apply_fault(request, fault, call)
            if injected is not None:
                return injected
        with self._lock:
            file_id = self._paths.get(path)
            stored = self._files.get(file_id) if file_id else None
        if stored is None or stored.data is None:
            self._record(dataclasses.replace(call, status=404, description="Not Found"))
            return _error_response(ApiError(404, "Not Found"))
        self._record(dataclasses.replace(call, result=len(stored.data)))
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # ------------------------------------------------------------------ Bot API methods

    async def _true(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any], uploads: dict[str, Upload]) -> list[dict[str, Any]]:
        """Long polling as the real server does it, including 409 for a concurrent poll."""
        with self._lock:
            if self._webhook.get("url"):
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        if "allowed_updates" in params and params["allowed_updates"] is not None:
            with self._lock:
                self._allowed_updates = list(params["allowed_updates"]) or None

        # A newer getUpdates terminates one still waiting (the real server's 409).
        for old in self._pollers:
            old.superseded = True
            old.event.set()
        self._confirm(offset)
        found = self._select(limit)
        if found or timeout <= 0 or self._closing:
            return found
        poller = _Poller(asyncio.Event())
        self._pollers.append(poller)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not found:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(poller.event.wait(), remaining)
                except TimeoutError:
                    break
                poller.event.clear()
                if poller.superseded:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that "
                        "only one bot instance is running",
                    )
                if self._closing:
                    break
                found = self._select(limit)
        finally:
            self._pollers.remove(poller)
        return found

    def _confirm(self, offset: int) -> None:
        with self._lock:
            if offset > 0:
                self._pending = [u for u in self._pending if u["update_id"] >= offset]
            elif offset < 0:
                self._pending = self._pending[offset:]

    def _select(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            allowed = self._allowed_updates
            if allowed:
                # The real server never creates updates of types not allowed.
                self._pending = [u for u in self._pending if any(k in allowed for k in u if k != "update_id")]
            return json.loads(json.dumps(self._pending[:limit]))

    async def _set_webhook(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        url = params.get("url") or ""
        if url and not url.startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        with self._lock:
            self._webhook = {k: v for k, v in params.items()} if url else {}
            if params.get("drop_pending_updates"):
                self._pending.clear()
            if "allowed_updates" in params:
                self._allowed_updates = list(params["allowed_updates"] or []) or None
        return True

    async def _delete_webhook(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        with self._lock:
            self._webhook = {}
            if params.get("drop_pending_updates"):
                self._pending.clear()
        return True

    async def _get_webhook_info(self, params: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        with self._lock:
            info: dict[str, Any] = {
                "url": self._webhook.get("url", ""),
                "has_custom_certificate": "certificate" in uploads,
                "pending_update_count": len(self._pending),
            }
            if self._webhook.get("max_connections"):
                info["max_connections"] = self._webhook["max_connections"]
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> str:
        scope = params.get("scope") or {}
        return f"{scope.get('type', 'default')}|{params.get('language_code') or ''}"

    async def _set_my_commands(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        for command in commands:
            if not _COMMAND_RE.match(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self._commands[self._commands_key(params)] = commands
        return True

    async def _set_my_description(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        return self._set_description("description", params, 512)

    async def _set_my_short_description(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        return self._set_description("short_description", params, 120)

    def _set_description(self, kind: str, params: dict[str, Any], limit: int) -> bool:
        """Like the Bot API: 0-``limit`` characters per language; empty clears it."""
        text = str(params.get(kind) or "")
        if len(text) > limit:
            raise ApiError(400, f"Bad Request: {kind} is too long")
        with self._lock:
            self._descriptions[(kind, params.get("language_code") or "")] = text
        return True

    async def _get_my_description(self, params: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, str]:
        return {"description": self.description(language_code=params.get("language_code") or "")}

    async def _get_my_short_description(
        self, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> dict[str, str]:
        return {"short_description": self.description("short_description", params.get("language_code") or "")}

    def description(self, kind: str = "description", language_code: str = "") -> str:
        """The bot's description (or ``short_description``) last set for a language."""
        with self._lock:
            return self._descriptions.get((kind, language_code), "")

    async def _get_my_commands(
        self, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        with self._lock:
            self._commands.pop(self._commands_key(params), None)
        return True

    def _target_chat(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        with self._lock:
            if not isinstance(chat_id, int) or chat_id not in self._users:
                raise ApiError(400, "Bad Request: chat not found")
            if chat_id in self._blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _check_text(self, text: Any, parse_mode: Any, *, caption: bool) -> str:
        """Validate text/caption + parse_mode like the server; returns the plain text."""
        text = "" if text is None else str(text)
        plain = _parse_markup(text, parse_mode, strict=self.strict_markup)
        if caption:
            if _utf16_len(plain) > 1024:
                raise ApiError(400, "Bad Request: message caption is too long")
        else:
            if not plain.strip():
                raise ApiError(400, "Bad Request: message text is empty")
            if _utf16_len(plain) > 4096:
                raise ApiError(400, "Bad Request: message is too long")
        return plain

    def _new_bot_message(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
        }
        reply = params.get("reply_parameters")
        if isinstance(reply, dict) and reply.get("message_id"):
            target_chat = reply.get("chat_id", chat_id)
            with self._lock:
                target = self._messages.get((target_chat, int(reply["message_id"])))
            if target is not None:
                message["reply_to_message"] = {k: v for k, v in target.items() if k != "reply_to_message"}
            elif not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
        markup = params.get("reply_markup")
        if markup is not None:
            _check_reply_markup(markup)
            if isinstance(markup, dict) and "inline_keyboard" in markup:
                message["reply_markup"] = markup
        return message

    def _store_sent(
        self,
        method: str,
        chat_id: int,
        params: dict[str, Any],
        message: dict[str, Any],
        stored: StoredFile | None,
    ) -> dict[str, Any]:
        with self._lock:
            self._messages[(chat_id, message["message_id"])] = message
            self._sent.append(
                SentMessage(
                    method=method,
                    chat_id=chat_id,
                    message_id=message["message_id"],
                    text=params.get("text") if method == "sendMessage" else params.get("caption"),
                    parse_mode=params.get("parse_mode"),
                    reply_markup=params.get("reply_markup"),
                    file=stored.data if stored else None,
                    file_id=stored.file_id if stored else None,
                    file_name=stored.file_name if stored else None,
                    params=dict(params),
                    message=json.loads(json.dumps(message)),
                    time=time.monotonic(),
                )
            )
        return json.loads(json.dumps(message))

    async def _send_message(self, params: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        chat_id = self._target_chat(params)
        plain = self._check_text(params.get("text"), params.get("parse_mode"), caption=False)
        message = self._new_bot_message(chat_id, params)
        message["text"] = plain
        return self._store_sent("sendMessage", chat_id, params, message, None)

    def _existing_bot_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: inline messages are not supported by the fake")
        chat_id = self._target_chat(params)
        message_id = params.get("message_id")
        with self._lock:
            message = self._messages.get((chat_id, message_id))  # type: ignore[arg-type]
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return chat_id, message

    def _apply_edit(
        self, chat_id: int, message: dict[str, Any], changes: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        markup = params.get("reply_markup")
        if markup is not None:
            _check_reply_markup(markup)
        new = {k: v for k, v in message.items()}
        new.update(changes)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            new["reply_markup"] = markup
        else:
            new.pop("reply_markup", None)
        comparable = ("text", "caption", "reply_markup")
        if all(new.get(k) == message.get(k) for k in comparable):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        new["edit_date"] = int(time.time())
        with self._lock:
            self._messages[(chat_id, new["message_id"])] = new
        return json.loads(json.dumps(new))

    async def _edit_message_text(self, params: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        chat_id, message = self._existing_bot_message(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        plain = self._check_text(params.get("text"), params.get("parse_mode"), caption=False)
        return self._apply_edit(chat_id, message, {"text": plain}, params)

    async def _edit_message_caption(
        self, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> dict[str, Any]:
        chat_id, message = self._existing_bot_message(params)
        if "text" in message:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        plain = self._check_text(params.get("caption"), params.get("parse_mode"), caption=True)
        return self._apply_edit(chat_id, message, {"caption": plain}, params)

    async def _edit_message_reply_markup(
        self, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> dict[str, Any]:
        chat_id, message = self._existing_bot_message(params)
        return self._apply_edit(chat_id, message, {}, params)

    async def _delete_message(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        chat_id = self._target_chat(params)
        with self._lock:
            if self._messages.pop((chat_id, params.get("message_id")), None) is None:  # type: ignore[arg-type]
                raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _answer_callback_query(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        with self._lock:
            if self._callback_queries.get(query_id) is not False:
                raise ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                )
            self._callback_queries[query_id] = True
        if len(str(params.get("text") or "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    async def _send_chat_action(self, params: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _resolve_file(self, kind: str, params: dict[str, Any], uploads: dict[str, Upload]) -> StoredFile:
        """The file for ``kind``: a multipart upload, attach://, a known file_id or a URL."""
        upload = uploads.get(kind)
        value = params.get(kind)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value[len("attach://") :])
        if upload is not None:
            if not upload.data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            mime_type = upload.content_type
            if mime_type in ("", "application/octet-stream") and kind in _DEFAULT_MIME:
                mime_type = _DEFAULT_MIME[kind]  # the real server sniffs the content
            return self.add_file(upload.data, kind, file_name=upload.filename, mime_type=mime_type)
        if isinstance(value, str) and value:
            with self._lock:
                known = self._files.get(value)
            if known is not None:
                if known.kind != kind:
                    raise ApiError(400, "Bad Request: type of file mismatch")
                return known
            if value.startswith(("http://", "https://")):
                return self.add_file(None, kind, file_name=value.rsplit("/", 1)[-1])
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        noun = kind.replace("_", " ")
        raise ApiError(400, f"Bad Request: there is no {noun} in the request")

    async def _send_media(
        self, method: str, kind: str, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> dict[str, Any]:
        chat_id = self._target_chat(params)
        caption_plain = None
        if kind != "video_note" and params.get("caption") is not None:
            caption_plain = self._check_text(params.get("caption"), params.get("parse_mode"), caption=True)
        stored = self._resolve_file(kind, params, uploads)
        message = self._new_bot_message(chat_id, params)
        media = self._file_json(stored)
        data = stored.data or b""
        if kind in ("video_note", "video"):
            info = _mp4_info(data)
            duration = params.get("duration")
            if duration is None:
                duration = round(info[0]) if info and info[0] is not None else 0
            media["duration"] = int(duration)
            if kind == "video_note":
                length = params.get("length")
                if length is None:
                    length = info[1] if info and info[1] else 240
                media["length"] = int(length)
            else:
                width = params.get("width") or (info[1] if info and info[1] else 0)
                height = params.get("height") or (info[2] if info and info[2] else 0)
                media.update(width=int(width), height=int(height), mime_type="video/mp4")
                if stored.file_name:
                    media["file_name"] = stored.file_name
        elif kind in ("voice", "audio"):
            media["duration"] = int(params.get("duration") or 0)
            media["mime_type"] = stored.mime_type or ("audio/ogg" if kind == "voice" else "audio/mpeg")
            if kind == "audio":
                for key in ("title", "performer"):
                    if params.get(key):
                        media[key] = params[key]
                if stored.file_name:
                    media["file_name"] = stored.file_name
        elif kind == "document":
            if stored.file_name:
                media["file_name"] = stored.file_name
            if stored.mime_type:
                media["mime_type"] = stored.mime_type
        if kind == "photo":
            width, height = _image_size(data) or (512, 512)
            message["photo"] = [{**media, "width": width, "height": height}]
        else:
            message[kind] = media
        if caption_plain is not None:
            message["caption"] = caption_plain
        return self._store_sent(method, chat_id, params, message, stored)

    async def _send_video_note(self, p: dict[str, Any], u: dict[str, Upload]) -> dict[str, Any]:
        # Undocumented, but what the real server answers (pyTelegramBotAPI pull 338): 640 or more.
        if p.get("length") is not None and not 0 < int(p["length"]) < 640:
            raise ApiError(400, "Bad Request: wrong video note length")
        return await self._send_media("sendVideoNote", "video_note", p, u)

    async def _send_video(self, p: dict[str, Any], u: dict[str, Upload]) -> dict[str, Any]:
        return await self._send_media("sendVideo", "video", p, u)

    async def _send_photo(self, p: dict[str, Any], u: dict[str, Upload]) -> dict[str, Any]:
        return await self._send_media("sendPhoto", "photo", p, u)

    async def _send_audio(self, p: dict[str, Any], u: dict[str, Upload]) -> dict[str, Any]:
        return await self._send_media("sendAudio", "audio", p, u)

    async def _send_voice(self, p: dict[str, Any], u: dict[str, Upload]) -> dict[str, Any]:
        return await self._send_media("sendVoice", "voice", p, u)

    async def _send_document(self, p: dict[str, Any], u: dict[str, Upload]) -> dict[str, Any]:
        return await self._send_media("sendDocument", "document", p, u)

    async def _get_file(self, params: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.size > self.get_file_limit:
            raise ApiError(400, "Bad Request: file is too big")
        result = self._file_json(stored)
        if stored.file_path:
            result["file_path"] = stored.file_path
        return result


# ---------------------------------------------------------------------- request decoding


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Parameters from query string + body (form, multipart or JSON), decoded per field."""
    raw: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    typed: dict[str, Any] = {}
    if request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse JSON object") from exc
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: JSON object expected")
            typed.update(body)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge as exc:
                raise ApiError(413, "Request Entity Too Large") from exc
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[name] = Upload(name, value.filename, value.content_type, value.file.read())
                else:
                    raw[name] = value if isinstance(value, str) else bytes(value).decode()
    params = {name: _decode_field(name, value) for name, value in raw.items()}
    # JSON bodies are typed already, but clients may still send "123" for an int field.
    params.update({k: _decode_field(k, v) if isinstance(v, str) else v for k, v in typed.items()})
    # attach://name references: expose the file under the parameter's own name as well.
    for name, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            target = uploads.get(value[len("attach://") :])
            if target is not None and name not in uploads:
                uploads[name] = dataclasses.replace(target, field=name)
    return params, uploads


def _decode_field(name: str, value: str) -> Any:
    """Undo PTB's per-field encoding: JSON for objects, digits for ints, ``true`` for bools."""
    try:
        if name in _JSON_FIELDS:
            return json.loads(value)
        if name in _INT_FIELDS:
            return int(value) if re.fullmatch(r"-?\d+", value) else value
        if name in _FLOAT_FIELDS:
            number = float(value)
            return int(number) if number.is_integer() else number
        if name in _BOOL_FIELDS:
            return value.strip().lower() in ("true", "1")
    except ValueError as exc:
        if name == "reply_markup":
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object") from exc
        raise ApiError(400, f"Bad Request: can't parse {name}") from exc
    return value


def _error_response(exc: ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.code)


def _default_description(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
        "instance is running",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }.get(status, f"Error {status}")


_NGINX_502: Final[str] = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _utf16_len(text: str) -> int:
    """Telegram measures lengths and offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# ---------------------------------------------------------------------- markup validation


def _check_reply_markup(markup: Any) -> None:
    """The structural checks of the real server that bots trip over (64-byte callback_data)."""
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ApiError(
            400, "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise ApiError(400, "Bad Request: can't parse inline keyboard button: Text must be non-empty")
            actions = [key for key in button if key in _BUTTON_ACTIONS]
            if not actions:
                raise ApiError(
                    400,
                    "Bad Request: can't parse inline keyboard button: Text "
                    "buttons are unallowed in the inline keyboard",
                )
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _parse_markup(text: str, parse_mode: Any, *, strict: bool) -> str:
    """Plain text of ``text`` under ``parse_mode``; ApiError where Telegram would refuse it.

    An approximation of the server's parsers (offsets are UTF-8 byte offsets into the source),
    aimed at the mistakes a bot really makes: unescaped ``. ! - ( )`` in MarkdownV2, unclosed
    ``*``/``_``, stray ``<`` in HTML.
    """
    if parse_mode is None or parse_mode == "":
        return text
    mode = str(parse_mode).lower()
    if mode not in ("markdownv2", "markdown", "html"):
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    try:
        if mode == "markdownv2":
            return _parse_markdown_v2(text)
        if mode == "markdown":
            return _parse_markdown_legacy(text)
        return _parse_html(text)
    except ApiError:
        if strict:
            raise
        return text


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _entities_error(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {detail}")


_MDV2_NAMES: Final[dict[str, str]] = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
}


def _parse_markdown_v2(text: str) -> str:
    out: list[str] = []
    stack: list[tuple[str, int]] = []  # (marker, index) of open entities; "[" for link text
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        at_line_start, line_start = line_start, c == "\n"
        if c == "\\":
            if i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                out.append(text[i + 1])
                i += 2
                continue
            raise _entities_error("Character '\\' is reserved and must be escaped with the preceding '\\'")
        if c == "`":
            fence = "```" if text.startswith("```", i) else "`"
            j = i + len(fence)
            while j < n and not text.startswith(fence, j):
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                name = "Pre" if fence == "```" else "Code"
                raise _entities_error(
                    f"Can't find end of {name} entity at byte offset {_byte_offset(text, i)}"
                )
            body = text[i + len(fence) : j]
            if fence == "```" and "\n" in body:
                first, rest = body.split("\n", 1)
                if first and " " not in first:  # language tag
                    body = rest
            out.append(re.sub(r"\\(.)", r"\1", body))
            i = j + len(fence)
            continue
        if c == "[":
            stack.append(("[", i))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "[":
            stack.pop()
            if i + 1 < n and text[i + 1] == "(":
                j = i + 2
                while j < n and text[j] != ")":
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    raise _entities_error(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}"
                    )
                i = j + 1
                continue
            raise _entities_error("Character ']' is reserved and must be escaped with the preceding '\\'")
        marker = None
        if c == "_":
            marker = "__" if text.startswith("__", i) else "_"
        elif c in "*~":
            marker = c
        elif c == "|" and text.startswith("||", i):
            marker = "||"
        if marker is not None:
            if stack and stack[-1][0] == marker:
                stack.pop()
            elif any(m == marker for m, _ in stack):
                open_marker, index = stack[-1]
                raise _entities_error(
                    f"Can't find end of {_MDV2_NAMES.get(open_marker, 'TextUrl')} entity at "
                    f"byte offset {_byte_offset(text, index)}"
                )
            else:
                stack.append((marker, i))
            i += len(marker)
            continue
        if c == ">" and at_line_start:
            i += 1
            continue
        if c in "_*[]()~`>#+-=|{}.!":
            raise _entities_error(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.append(c)
        i += 1
    if stack:
        marker, index = stack[-1]
        if marker == "[":
            raise _entities_error("Character '[' is reserved and must be escaped with the preceding '\\'")
        raise _entities_error(
            f"Can't find end of {_MDV2_NAMES[marker]} entity at byte offset {_byte_offset(text, index)}"
        )
    return "".join(out)


def _parse_markdown_legacy(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if c in "*_`":
            fence = "```" if text.startswith("```", i) else c
            j = text.find(fence, i + len(fence))
            if j < 0:
                raise _entities_error(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            out.append(text[i + len(fence) : j])
            i = j + len(fence)
            continue
        if c == "[":
            close = text.find("](", i)
            end = text.find(")", close) if close >= 0 else -1
            if close >= 0 and end >= 0:
                out.append(text[i + 1 : close])
                i = end + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


_HTML_TAGS: Final[frozenset[str]] = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_HTML_TAG_RE: Final[re.Pattern[str]] = re.compile(r"<(/?)([a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")


def _parse_html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while True:
        j = text.find("<", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        match = _HTML_TAG_RE.match(text, j)
        name = match.group(2).lower() if match else ""
        if match is None or name not in _HTML_TAGS:
            shown = name or re.match(r"<([^\s<>]*)", text[j:]).group(1)  # type: ignore[union-attr]
            raise _entities_error(f'Unsupported start tag "{shown}" at byte offset {_byte_offset(text, j)}')
        if match.group(1):
            if not stack or stack[-1] != name:
                raise _entities_error(f"Unexpected end tag at byte offset {_byte_offset(text, j)}")
            stack.pop()
        else:
            stack.append(name)
        i = match.end()
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return html.unescape("".join(out))


# ---------------------------------------------------------------------- media sniffing


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG SOF or PNG IHDR header; None when neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (size,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + size
    return None


def _mp4_info(data: bytes) -> tuple[float | None, int, int] | None:
    """(duration seconds, width, height) from the mvhd/tkhd boxes of an MP4; None if not MP4."""
    if b"ftyp" not in data[:64]:
        return None
    duration: float | None = None
    at = data.find(b"mvhd")
    if at >= 0 and at + 36 <= len(data):
        base = at + 4
        if data[base] == 1:
            timescale, length = struct.unpack(">IQ", data[base + 20 : base + 32])
        else:
            timescale, length = struct.unpack(">II", data[base + 12 : base + 20])
        duration = length / timescale if timescale else None
    width = height = 0
    at = data.find(b"tkhd")
    while at >= 0 and not width:
        base = at + 4
        offset = base + (88 if data[base : base + 1] == b"\x01" else 76)
        if offset + 8 <= len(data):
            w, h = struct.unpack(">II", data[offset : offset + 8])
            width, height = w >> 16, h >> 16
        at = data.find(b"tkhd", at + 4)
    return duration, width, height


# ---------------------------------------------------------------------- media generation


def _ffmpeg() -> str:
    try:
        from engine.media import ffmpeg_exe  # the project's choice of binary
    except ImportError:  # tests run without the repo root on sys.path
        import shutil

        found = shutil.which("ffmpeg")
        if found:
            return found
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    return ffmpeg_exe()


def _run_ffmpeg(args: Iterable[str], *, expect_stdout: bool = True) -> bytes:
    """Run ffmpeg quietly; returns stdout (the encoded media when writing to ``pipe:1``)."""
    command = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", *args]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or (expect_stdout and not done.stdout):
        raise RuntimeError(
            f"ffmpeg failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}"
        )
    return done.stdout


def make_ogg_opus(seconds: float, freq: float = 220.0, *, speech_like: bool = False) -> bytes:
    """A real Telegram-style voice note: OGG/Opus, mono, 48 kHz, ~32 kbit/s.

    ``speech_like`` adds harmonics and a ~4 Hz syllable-rate amplitude envelope with short
    pauses, so voice-activity and lip-sync code sees something that moves like speech.
    """
    if speech_like:
        expr = (
            f"(0.6*sin(2*PI*{freq}*t)+0.3*sin(4*PI*{freq}*t)+0.1*sin(6*PI*{freq}*t))"
            f"*max(0,sin(2*PI*4*t))*(0.6+0.4*sin(2*PI*0.7*t))*0.6"
        )
    else:
        expr = f"0.5*sin(2*PI*{freq}*t)"
    return _run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc='{expr}':s=48000:d={seconds}",
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-application",
            "voip",
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-f",
            "ogg",
            "pipe:1",
        ]
    )


def make_video_note_mp4(seconds: float = 1.0, size: int = 240, freq: float = 330.0) -> bytes:
    """A small square H.264 + AAC MP4 (test pattern + tone), the shape of a video note.

    ``+faststart`` puts the moov box first, as Telegram clients want for streaming. Written to
    a temporary file because the MP4 muxer must seek back to finish the file.
    """
    with tempfile.TemporaryDirectory(prefix="fake-telegram-") as tmp:
        path = os.path.join(tmp, "note.mp4")
        _run_ffmpeg(
            [
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}x{size}:rate=25:duration={seconds}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={freq}:sample_rate=48000:duration={seconds}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-shortest",
                "-movflags",
                "+faststart",
                "-threads",
                "1",
                "-y",
                path,
            ],
            expect_stdout=False,
        )
        with open(path, "rb") as handle:
            return handle.read()
