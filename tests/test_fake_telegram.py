"""End-to-end checks of the fake Bot API with the real python-telegram-bot stack.

These tests pin down that the fake behaves like Telegram *as PTB sees it* -- if they pass, a bot
test that runs an ``Application`` against :class:`FakeBotApi` exercises the same HTTP, multipart,
offset and error paths as production. No pytest-asyncio: each test drives its own loop with
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.helpers import escape_markdown

from tests.fake_telegram import DROP, FakeBotApi, make_ogg_opus, make_video_note_mp4

log = logging.getLogger(__name__)


@pytest.fixture(autouse=True)
def _timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns on every int-valued duration access unless this opt-in is set."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def make_bot(api: FakeBotApi, token: str | None = None) -> Bot:
    """A real ``telegram.Bot`` pointed at the fake server."""
    return Bot(token or api.token, base_url=api.base_url, base_file_url=api.base_file_url)


@contextlib.asynccontextmanager
async def running_app(
    api: FakeBotApi, *handlers: BaseHandler[Any, Any, Any]
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """A real polling ``Application`` for the duration of the block, shut down cleanly.

    ``timeout=1`` keeps long polls short so stopping never waits on the server.
    """
    app = (
        ApplicationBuilder().token(api.token).base_url(api.base_url).base_file_url(api.base_file_url).build()
    )
    for handler in handlers:
        app.add_handler(handler)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    log.debug("application polling %s", api.base_url)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        log.debug("application shut down")


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition set by a handler (which runs in this same loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def run(coro: Awaitable[None]) -> None:
    """``asyncio.run`` with a hard cap, so a hang fails the test instead of the suite."""

    async def capped() -> None:
        await asyncio.wait_for(coro, timeout=20)

    asyncio.run(capped())


# ---------------------------------------------------------------------- tests


def test_get_me_and_token_errors() -> None:
    """getMe answers the bot user; a wrong token is 401 -> InvalidToken; an unknown method is
    404, which PTB maps to InvalidToken too, refined to EndPointNotFound in do_api_request."""

    async def main() -> None:
        async with FakeBotApi() as api:
            async with make_bot(api) as bot:  # initialize() calls getMe
                me = await bot.get_me()
                assert me.is_bot and me.username == api.bot_username
                assert me.id == api.bot_id
                with pytest.raises(EndPointNotFound):
                    await bot.do_api_request("noSuchMethod")
            with pytest.raises(InvalidToken):
                async with make_bot(api, token="42:wrong"):
                    pass
            assert [c.status for c in api.calls] == [200, 200, 404, 401]

    run(main())


def test_text_reaches_message_handler_and_reply_is_recorded() -> None:
    """Injected text and /commands arrive through long polling; replies are recorded."""

    async def greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.effective_user
        await update.message.reply_text(f"Hello {update.effective_user.first_name}!")

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message
        await update.message.reply_text("*Welcome*", parse_mode="MarkdownV2")

    async def main() -> None:
        async with FakeBotApi() as api:
            api.add_user(42, "Mia", language_code="de")
            async with running_app(
                api,
                CommandHandler("start", start),
                MessageHandler(filters.TEXT & ~filters.COMMAND, greet),
            ):
                api.send_text(42, "/start")
                api.send_text(42, "hi there")
                await api.wait_for(api.sends_to(42), count=2, timeout=10)
            first, second = api.sent_messages(42)
            assert (first.text, first.parse_mode) == ("*Welcome*", "MarkdownV2")
            assert first.message["text"] == "Welcome"  # markup is parsed away, like Telegram
            assert second.text == "Hello Mia!"
            assert second.message_id > first.message_id > 0
            # PTB sends text without files as x-www-form-urlencoded; chat_id decodes to int.
            call = next(c for c in api.calls if c.method == "sendMessage")
            assert call.params["chat_id"] == 42 and call.files == {}

    run(main())


def test_voice_note_downloads_byte_identical_server_in_thread() -> None:
    """A voice note's file goes getFile -> /file/bot<token>/<path> unchanged; the server runs
    in its own thread and is waited on synchronously from another one."""
    ogg = make_ogg_opus(1.5, speech_like=True)
    got: list[bytes] = []

    async def on_voice(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.voice
        voice = update.message.voice
        assert voice.duration == dtm.timedelta(seconds=2) and voice.mime_type == "audio/ogg"
        got.append(bytes(await (await voice.get_file()).download_as_bytearray()))
        await update.message.reply_chat_action("record_video_note")

    with FakeBotApi() as api:
        update_id = api.send_voice(7, ogg, duration=2)
        file_id = api.update(update_id)["message"]["voice"]["file_id"]

        async def main() -> None:
            async with running_app(api, MessageHandler(filters.VOICE, on_voice)):
                await asyncio.to_thread(api.wait_for_sync, "sendChatAction", 1, 10)
            async with make_bot(api) as bot:
                direct = await (await bot.get_file(file_id)).download_as_bytearray()
                assert bytes(direct) == ogg

        run(main())
        assert got == [ogg]
        downloads = [c for c in api.calls if c.method == api.DOWNLOAD]
        assert len(downloads) == 2 and downloads[0].params["file_path"].startswith("voice/")


def test_send_video_note_uploads_mp4_and_server_stores_it() -> None:
    """sendVideoNote goes out as multipart; bytes, duration/length and an attach:// thumbnail
    arrive intact; the answer is a Message with a proper video_note; re-sending by file_id
    uploads nothing."""
    mp4 = make_video_note_mp4(1.0, size=240)

    async def main() -> None:
        async with FakeBotApi() as api:
            api.add_user(5)
            async with make_bot(api) as bot:
                msg = await bot.send_video_note(5, mp4, duration=1, length=240, thumbnail=b"thumb-jpeg")
                note = msg.video_note
                assert note is not None and note.file_id and note.file_unique_id
                assert note.length == 240 and note.duration == dtm.timedelta(seconds=1)
                assert note.file_size == len(mp4)

                (call,) = await api.wait_for("sendVideoNote")
                assert call.files["video_note"] == mp4
                assert call.files["thumbnail"] == b"thumb-jpeg"
                assert call.params["thumbnail"].startswith("attach://")
                assert call.params["duration"] == 1 and call.params["length"] == 240
                assert call.uploads["video_note"].filename == "application.octet-stream"
                (sent,) = api.sent_messages(5)
                assert sent.file == mp4 and sent.file_id == note.file_id

                again = await bot.send_video_note(5, note.file_id)
                assert again.video_note is not None
                assert again.video_note.file_unique_id == note.file_unique_id
                assert api.calls[-1].files == {}  # sent by file_id
                echoed = await (await bot.get_file(note.file_id)).download_as_bytearray()
                assert bytes(echoed) == mp4

    run(main())


def test_callback_query_reaches_callback_query_handler() -> None:
    """Inline buttons round-trip: keyboard sent, button pressed, query answered, text edited."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Fox", callback_data="fox"),
                    InlineKeyboardButton("Owl", callback_data="owl"),
                ]
            ]
        )
        await update.message.reply_text("Who should answer?", reply_markup=keyboard)

    async def chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text(f"You chose {query.data}")

    async def main() -> None:
        async with FakeBotApi() as api:
            async with running_app(api, CommandHandler("start", start), CallbackQueryHandler(chosen)):
                api.send_text(9, "/start")
                await api.wait_for(api.sends_to(9), timeout=10)
                (sent,) = api.sent_messages(9)
                assert sent.buttons == [("Fox", "fox"), ("Owl", "owl")]
                with pytest.raises(ValueError):
                    api.press_button(9, sent.message_id, "bear")
                api.press_button(9, sent.message_id, "owl")
                await api.wait_for("editMessageText", timeout=10)
            assert [c.ok for c in api.calls if c.method == "answerCallbackQuery"] == [True]
            edited = api.message(9, sent.message_id)
            assert edited is not None and edited["text"] == "You chose owl"
            assert "reply_markup" not in edited  # edit without markup drops the keyboard

    run(main())


def test_faults_surface_as_ptb_errors() -> None:
    """429 -> RetryAfter with the server's retry_after; 500/502/dropped connection ->
    NetworkError; the fault is consumed and the next call works."""

    async def main() -> None:
        async with FakeBotApi() as api:
            api.add_user(1)
            async with make_bot(api) as bot:
                api.fail_next("sendMessage", status=429, retry_after=3)
                with pytest.raises(RetryAfter) as caught:
                    await bot.send_message(1, "too fast")
                assert caught.value.retry_after == dtm.timedelta(seconds=3)
                for status in (500, 502, DROP):
                    api.fail_next("sendVideoNote", status=status)
                    with pytest.raises(NetworkError) as failed:
                        await bot.send_video_note(1, b"not really mp4")
                    assert not isinstance(failed.value, RetryAfter)
                assert (await bot.send_message(1, "now ok")).text == "now ok"
            statuses = [c.status for c in api.calls if c.method in ("sendMessage", "sendVideoNote")]
            assert statuses == [429, 500, 502, 0, 200]
            assert [m.text for m in api.sent_messages()] == ["now ok"]

    run(main())


def test_bad_requests_match_telegram() -> None:
    """The 400s a bot really hits: unescaped MarkdownV2, 65-byte callback_data, getFile above
    20 MB, unknown chat. PTB strips "Bad Request: " and capitalize()s the rest."""

    async def main() -> None:
        async with FakeBotApi() as api:
            api.add_user(3, "Ana")
            async with make_bot(api) as bot:
                with pytest.raises(BadRequest, match="reserved"):
                    await bot.send_message(3, "Hi Ana. Ready!", parse_mode="MarkdownV2")
                ok = escape_markdown("Hi Ana. Ready!", version=2)
                assert (await bot.send_message(3, ok, parse_mode="MarkdownV2")).text == ("Hi Ana. Ready!")
                with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
                    markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
                    await bot.send_message(3, "pick", reply_markup=markup)
                big = api.send_voice(3, b"OggS tiny", duration=1, declared_size=21 * 1024 * 1024)
                with pytest.raises(BadRequest, match="File is too big"):
                    await bot.get_file(api.update(big)["message"]["voice"]["file_id"])
                with pytest.raises(BadRequest, match="Chat not found"):
                    await bot.send_message(999, "nobody")

    run(main())


def test_offsets_confirm_updates_across_restart() -> None:
    """Stopping the Updater confirms what it fetched: a new Application sees only new updates,
    and one getUpdates 500 does not stop polling."""
    handled: list[str] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.text
        handled.append(update.message.text)

    async def main() -> None:
        async with FakeBotApi() as api:
            api.send_text(11, "one")
            api.send_text(11, "two")
            async with running_app(api, MessageHandler(filters.TEXT, record)):
                await until(lambda: len(handled) == 2)
            assert handled == ["one", "two"]
            assert api.pending_update_count == 0  # confirmed by PTB's final getUpdates

            api.send_text(11, "three")
            api.fail_next("getUpdates", status=500)
            async with running_app(api, MessageHandler(filters.TEXT, record)):
                await until(lambda: len(handled) == 3)
                mark = api.mark()
                await api.wait_for("getUpdates", since=mark, timeout=5)  # one more poll cycle
            assert handled == ["one", "two", "three"]
            offsets = [c.params.get("offset") for c in api.calls if c.method == "getUpdates"]
            assert offsets[0] == 0 and max(offsets) == api.updates[-1]["update_id"] + 1

    run(main())


def test_long_poll_waits_returns_early_and_conflicts() -> None:
    """getUpdates holds for ``timeout`` seconds, returns as soon as an update is injected
    (from another thread), and a concurrent poll ends the older one with 409 Conflict."""

    async def main() -> None:
        async with FakeBotApi() as api:
            async with make_bot(api) as bot, make_bot(api) as rival:
                started = time.monotonic()
                assert await bot.get_updates(timeout=1) == ()
                assert time.monotonic() - started >= 0.9

                threading.Timer(0.2, api.send_text, args=(8, "late")).start()
                started = time.monotonic()
                updates = await bot.get_updates(timeout=5)
                assert time.monotonic() - started < 2
                assert [u.message.text for u in updates if u.message] == ["late"]
                assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()
                assert api.pending_update_count == 0

                waiting = asyncio.create_task(bot.get_updates(timeout=3))
                await asyncio.sleep(0.2)  # let the first poll reach the server
                assert await rival.get_updates(timeout=0) == ()
                with pytest.raises(Conflict):
                    await waiting

    run(main())


def test_make_ogg_opus_is_a_real_voice_note() -> None:
    """OGG container, Opus codec, mono; the speech-like variant differs from the plain tone."""
    tone = make_ogg_opus(0.5)
    speech = make_ogg_opus(0.5, speech_like=True)
    for data in (tone, speech):
        assert data.startswith(b"OggS")
        head = data.index(b"OpusHead")
        assert data[head + 9] == 1  # channel count
    assert tone != speech
