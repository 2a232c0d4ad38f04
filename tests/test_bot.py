"""End-to-end tests of the bot: the real application against a fake Telegram, real workers.

One fake Bot API server, one data directory and one worker process (2 render processes, the
embedded SQLite queue) serve the whole module; each test starts its own bot on that data
directory (so every test is also a restart of the one before) and uses its own chat ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import Update

from bot.store import Store
from bot.texts import t
from tests.bot_harness import (
    Stack,
    Worker,
    free_port,
    heartbeat,
    probe_mp4,
    run,
    running_bot,
    shared_assets,
    texts,
    until,
    videos,
)
from tests.fake_telegram import FakeBotApi, make_ogg_opus

LONG_TEXT = " ".join(
    f"Sentence number {n} is about the little fox who runs through the green forest." for n in range(1, 14)
)


@pytest.fixture(autouse=True)
def _timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("bot")
    characters, stories = shared_assets()
    with FakeBotApi() as api:
        stack = Stack(api, root / "data", characters, stories)
        stack.worker = Worker(stack.settings()).start()
        try:
            yield stack
        finally:
            stack.worker.stop()


def _answered(stack: Stack, *chats: int) -> bool:
    return all(r["status"] in ("sent", "failed") for chat in chats for r in stack.requests(chat))


# -- the happy paths -----------------------------------------------------------------------------


def test_voice_note_gets_a_lip_synced_video_note(stack: Stack, tmp_path: Path) -> None:
    api, chat = stack.api, 101
    api.add_user(chat, "Mia")
    sent: list[int] = []

    async def main() -> None:
        async with running_bot(stack.settings()):
            sent.append(api.send_voice(chat, make_ogg_opus(3.0, speech_like=True), duration=3))
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), timeout=90)
            await until(lambda: _answered(stack, chat), what="the request to be recorded as sent")

    run(main())
    (video,) = videos(api, chat)
    voice_message = api.update(sent[0])["message"]["message_id"]
    assert video.method == "sendVideoNote"
    assert video.params["reply_parameters"]["message_id"] == voice_message
    assert video.params["length"] == 128 and video.params["duration"] == 3
    info = probe_mp4(video.file, tmp_path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert abs(info.duration - 3.0) < 0.15 and (info.width, info.height) == (128, 128)
    actions = [
        c.params["action"] for c in api.calls if c.method == "sendChatAction" and c.params["chat_id"] == chat
    ]
    assert actions and set(actions) == {"record_video_note"}
    (row,) = stack.requests(chat)
    assert (row["status"], row["reply_message_id"], row["attempts"]) == ("sent", video.message_id, 1)
    assert not Path(row["result_path"]).exists() and not Path(row["input_path"]).exists()


def test_text_gets_a_video_note_and_long_text_a_video(stack: Stack, tmp_path: Path) -> None:
    api, short_chat, long_chat = stack.api, 111, 112

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(short_chat, "Hello little fox! How are you today?")
            api.send_text(long_chat, LONG_TEXT)
            await api.wait_for(api.sends_to(short_chat, "sendVideoNote"), timeout=90)
            await api.wait_for(api.sends_to(long_chat, "sendVideo"), timeout=120)
            await until(lambda: _answered(stack, short_chat, long_chat))

    run(main(), timeout=240)
    (note,) = videos(api, short_chat)
    short = probe_mp4(note.file, tmp_path)
    assert 1.0 < short.duration < 10 and short.audio_codec == "aac"
    (video,) = videos(api, long_chat)
    assert video.method == "sendVideo"
    long = probe_mp4(video.file, tmp_path)
    assert long.duration > 60 and (long.video_codec, long.audio_codec) == ("h264", "aac")
    assert abs(video.params["duration"] - long.duration) <= 1
    assert texts(api, long_chat) == []  # nothing to apologise for


def test_story_arrives_in_parts_in_order(stack: Stack) -> None:
    api, chat = stack.api, 121
    story = None

    async def main() -> None:
        nonlocal story
        async with running_bot(stack.settings()) as bot:
            story = bot.services.storybook.get("en", "three-bears")
            mark = api.mark()
            api.send_text(chat, "/story")
            await api.wait_for(api.sends_to(chat, "sendMessage"), since=mark, timeout=90)
            menu = api.sent_messages(chat)[-1]
            assert ("The Three Bears", "story:en:three-bears") in menu.buttons
            pressed, pressed_at = api.mark(), time.monotonic()
            api.press_button(chat, menu.message_id, "story:en:three-bears")
            parts = len(story.parts(stack.settings().story_part_chars))
            calls = await api.wait_for(
                api.sends_to(chat, "sendVideoNote"), count=parts, since=pressed, timeout=120
            )
            first_after = calls[0].time - pressed_at
            assert first_after < 30, f"the first part took {first_after:.1f} s"
            await until(lambda: _answered(stack, chat))
            edited = api.message(chat, menu.message_id)
            assert edited is not None and "The Three Bears" in edited["text"] and "reply_markup" not in edited

    run(main(), timeout=240)
    rows = stack.requests(chat)
    assert [r["part"] for r in rows] == list(range(len(rows))) and len(rows) >= 3
    assert all(r["status"] == "sent" and r["input"] == "en/three-bears" for r in rows)
    replies = [r["reply_message_id"] for r in rows]
    assert replies == sorted(replies), "parts were sent out of order"
    assert [v.message_id for v in videos(api, chat)] == replies


def test_a_story_part_sent_as_a_regular_video_carries_its_text(stack: Stack) -> None:
    api, chat = stack.api, 122

    async def main() -> None:
        async with running_bot(stack.settings(video_note_max_s=1)):  # every part too long for a note
            api.send_text(chat, "/story")
            await api.wait_for(api.sends_to(chat, "sendMessage"), timeout=90)
            menu = api.sent_messages(chat)[-1]
            api.press_button(chat, menu.message_id, "story:en:short")
            await api.wait_for(api.sends_to(chat, "sendVideo"), timeout=120)
            await until(lambda: _answered(stack, chat))

    run(main(), timeout=240)
    (video,) = videos(api, chat)
    assert video.method == "sendVideo"
    assert video.params["caption"] == "A Short One. The cat sat on the mat. The end.", video.params.get(
        "caption"
    )


def test_character_choice_survives_a_restart(stack: Stack) -> None:
    api, chat = stack.api, 131

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(chat, "/characters")
            await api.wait_for(api.sends_to(chat, "sendMessage"), timeout=90)
            menu = api.sent_messages(chat)[-1]
            assert [data for _, data in menu.buttons] == ["char:owl", "char:tester"]
            assert menu.buttons[0][0] == "Owl - A wise old owl" and menu.buttons[1][0].startswith("✓ Tester")
            assert "Owl: https://t.me/gramophone_test_bot?start=owl" in menu.text  # share links
            assert "Tester: https://t.me/gramophone_test_bot?start=tester" in menu.text
            api.press_button(chat, menu.message_id, "char:owl")
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), timeout=90)  # the owl says hello
            await until(lambda: _answered(stack, chat))
            assert api.message(chat, menu.message_id)["text"] == t("character_chosen", "en", name="Owl")
        async with running_bot(stack.settings()):  # a new bot process, same data
            mark = api.mark()
            api.send_text(chat, "/help")
            api.send_text(chat, "Who are you?")
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), since=mark, timeout=90)
            await until(lambda: _answered(stack, chat))

    run(main(), timeout=240)
    preview, text = stack.requests(chat)
    assert (preview["kind"], preview["character"]) == ("preview", "owl")
    assert (text["kind"], text["character"]) == ("text", "owl")
    assert any("Owl will say it back" in message for message in texts(api, chat))


def test_language_command_switches_texts_and_voice(stack: Stack) -> None:
    api, chat = stack.api, 141
    api.add_user(chat, "Ваня", language_code="ru")

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(chat, "/help")
            await api.wait_for(api.sends_to(chat, "sendMessage"), timeout=90)
            api.send_text(chat, "/language")
            await api.wait_for(api.sends_to(chat, "sendMessage"), count=2, timeout=90)
            menu = api.sent_messages(chat)[-1]
            assert menu.buttons == [("English", "lang:en"), ("Русский", "lang:ru")]
            mark = api.mark()
            api.press_button(chat, menu.message_id, "lang:en")
            await api.wait_for("editMessageText", since=mark, timeout=90)
            api.send_text(chat, "/language ru")
            await api.wait_for(api.sends_to(chat, "sendMessage"), count=3, timeout=90)

    run(main())
    said = texts(api, chat)
    assert said[0].startswith("Пришли мне голосовое")  # the Telegram language_code decided
    assert said[2] == t("language_set", "ru")
    assert api.message(chat, api.sent_messages(chat)[1].message_id)["text"] == t("language_set", "en")


# -- resilience ----------------------------------------------------------------------------------


def test_restart_with_requests_in_flight_answers_each_exactly_once(stack: Stack) -> None:
    api, chats = stack.api, (151, 152)
    voices: list[int] = []

    async def main() -> None:
        async with running_bot(stack.settings()):
            for chat in chats:
                for seconds in (6, 4):
                    voices.append(
                        api.send_voice(chat, make_ogg_opus(seconds, speech_like=True), duration=seconds)
                    )
            await until(
                lambda: any(r["status"] == "rendering" for c in chats for r in stack.requests(c)),
                what="a render in progress",
            )
        # Stopped mid-render; a new bot on the same data picks everything up.
        async with running_bot(stack.settings()):
            await until(
                lambda: len(stack.requests(151)) + len(stack.requests(152)) == 4 and _answered(stack, *chats),
                timeout=120,
            )
            await asyncio.sleep(1.0)  # anything sent twice would show up now

    run(main(), timeout=240)
    for chat in chats:
        answered = sorted(v.params["reply_parameters"]["message_id"] for v in videos(api, chat))
        asked = sorted(
            api.update(u)["message"]["message_id"]
            for u in voices
            if api.update(u)["message"]["chat"]["id"] == chat
        )
        assert answered == asked, f"chat {chat}: answers to {answered}, asked {asked}"
    assert all(r["status"] == "sent" for c in chats for r in stack.requests(c))


def _kill_worker_mid_render(stack: Stack, chat: int, **overrides: Any) -> None:
    api = stack.api
    settings = stack.settings(heartbeat_timeout_s=2, **overrides)
    killed: list[int] = []

    async def main() -> None:
        async with running_bot(settings):
            api.send_voice(chat, make_ogg_opus(20, speech_like=True), duration=20)
            await until(
                lambda: any(r["status"] == "rendering" for r in stack.requests(chat)),
                what="the render to start",
            )
            (row,) = stack.requests(chat)
            beat = heartbeat(settings, row["task_id"])
            assert beat is not None
            os.kill(beat["pid"], signal.SIGKILL)
            killed.append(beat["pid"])
            await until(
                lambda: _answered(stack, chat), timeout=45, what="the request to be answered or failed"
            )
            await asyncio.sleep(0.5)

    run(main(), timeout=240)
    assert killed


def test_worker_killed_mid_render_is_retried(stack: Stack) -> None:
    _kill_worker_mid_render(stack, 161)
    (row,) = stack.requests(161)
    assert row["status"] == "sent" and row["attempts"] == 2 and "silent" in row["error"]
    assert len(videos(stack.api, 161)) == 1


def test_last_attempt_failing_apologises(stack: Stack) -> None:
    _kill_worker_mid_render(stack, 162, render_attempts=1)
    (row,) = stack.requests(162)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert videos(stack.api, 162) == []
    assert texts(stack.api, 162) == [t("render_failed", "en", name="Tester")]


def test_bad_input_gets_a_friendly_reply_and_the_bot_keeps_serving(stack: Stack) -> None:
    api = stack.api
    settings = stack.settings()
    mb = settings.download_max_bytes // (1024 * 1024)
    expected = {
        171: t("audio_unreadable", "en"),
        172: t("audio_unreadable", "en"),
        173: t("audio_empty", "en"),
        174: t("audio_unreadable", "en"),
        175: t("file_too_big", "en", mb=mb),
        176: t("audio_too_long", "en", minutes=5),
        177: t("text_too_long", "en", limit=2000),
        178: t("text_empty", "en"),
        179: t("unsupported", "en"),
        180: t("unsupported", "en"),
        181: t("unsupported", "en"),
    }
    big: list[int] = []

    async def main() -> None:
        async with running_bot(settings):
            api.send_voice(171, b"OggS" + os.urandom(3000), duration=2)  # corrupt
            api.send_voice(172, b"", duration=1)  # empty file
            api.send_voice(173, make_ogg_opus(0.05), duration=0)  # a click, no speech
            api.send_document(174, b"this is not music at all " * 40, "song.mp3", "audio/mpeg")
            big.append(api.send_voice(175, b"OggS tiny", duration=10, declared_size=21 * 1024 * 1024))
            api.send_audio(176, make_ogg_opus(1.0), duration=400, file_name="long.ogg", mime_type="audio/ogg")
            api.send_text(177, "la " * 3400)
            api.send_text(178, "... !!! ???")
            api.send_sticker(179)
            api.send_photo(180, b"\xff\xd8\xff\xe0 not really a jpeg")
            api.send_document(181, b"hello", "notes.txt", "text/plain")
            api.send_text(182, "/dance")
            api.send_text(183, "Still there?")
            await api.wait_for(
                lambda c: c.method == "sendMessage" and 171 <= c.params["chat_id"] <= 182,
                count=12,
                timeout=90,
            )
            await api.wait_for(api.sends_to(183, "sendVideoNote"), timeout=90)
            await asyncio.sleep(0.5)

    run(main())
    for chat, text in expected.items():
        assert texts(api, chat) == [text], f"chat {chat}"
        rows = stack.requests(chat)
        if chat in (
            171,
            172,
            173,
            174,
        ):  # recorded before the download, then refused: nothing lost, nothing owed
            assert [row["status"] for row in rows] == ["failed"], f"chat {chat}"
            assert rows[0]["input_path"] is None and rows[0]["error"].split(":")[0] in (
                "audio_unreadable",
                "audio_empty",
            )
        else:
            assert rows == [], f"chat {chat} should have no request"
    assert not list((stack.data_dir / "inbox").iterdir()), "refused files must not stay in the inbox"
    assert texts(api, 182)[0].startswith(t("unknown_command", "en"))
    big_id = api.update(big[0])["message"]["voice"]["file_id"]  # the 21 MB voice note: never fetched
    assert not any(c.method == "getFile" and c.params.get("file_id") == big_id for c in api.calls)
    assert not any(t("error", "en") in m for chat in range(171, 184) for m in texts(api, chat))


def test_deleted_character_falls_back_to_the_default(stack: Stack) -> None:
    api, chat = stack.api, 191
    store = Store(stack.data_dir / "state.db")
    store.ensure_chat(chat, "en", "ghost")  # chose a character that has since been deleted
    store.close()

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(chat, "Are you there?")
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), timeout=90)
            await until(lambda: _answered(stack, chat))

    run(main())
    assert texts(api, chat) == [t("character_gone", "en", name="Tester")]
    (row,) = stack.requests(chat)
    assert row["character"] == "tester" and row["status"] == "sent"
    store = Store(stack.data_dir / "state.db")
    assert store.chat(chat).character == "tester"
    store.close()


def test_forged_callback_data_is_refused_politely(stack: Stack) -> None:
    api, chat = stack.api, 201
    forged = [
        "char:ghost",
        "char:../../etc",
        "story:en:nope",
        "story:xx:../../etc/passwd",
        "lang:de",
        "garbage",
        "x" * 64,
        "char:owl",
        "story:en:short",
    ]

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(chat, "/characters")
            await api.wait_for(api.sends_to(chat, "sendMessage"), timeout=90)
            menu = api.sent_messages(chat)[-1]
            mark = api.mark()
            for data in forged[:-2]:
                api.press_button(chat, menu.message_id, data, strict=False)
            for data in forged[-2:]:  # valid data, but on no message the bot can touch
                api.press_button(chat, 999_999, data, strict=False)
            await api.wait_for("answerCallbackQuery", count=len(forged), since=mark, timeout=90)
            await asyncio.sleep(0.3)

    run(main())
    answers = [c for c in api.calls if c.method == "answerCallbackQuery"][-len(forged) :]
    assert all(
        c.params.get("text") == t("button_invalid", "en") and c.params.get("show_alert") for c in answers
    )
    assert stack.requests(chat) == [] and len(texts(api, chat)) == 1
    assert texts(api, chat)[0].startswith(t("characters_prompt", "en"))


def test_a_redelivered_update_is_not_a_second_request(stack: Stack) -> None:
    api, chat = stack.api, 211
    ids: list[int] = []

    async def main() -> None:
        async with running_bot(stack.settings()) as bot:
            ids.append(api.send_voice(chat, make_ogg_opus(2.0, speech_like=True), duration=2))
            ids.append(api.send_text(chat, "Once more, please."))
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), count=2, timeout=90)
            await until(lambda: _answered(stack, chat))
            application = bot.application
            for update_id in ids:  # Telegram sends them again (as after a crash before confirming)
                await application.process_update(Update.de_json(api.update(update_id), application.bot))
            await asyncio.sleep(1.0)

    run(main())
    assert len(stack.requests(chat)) == 2 and len(videos(api, chat)) == 2


def test_fair_queue_and_position_message(stack: Stack) -> None:
    """A long story in one chat does not hold up a voice note in another, and the waiting child
    is told its place in line."""
    api, story_chat, voice_chat = stack.api, 221, 222
    settings = stack.settings(workers=1, story_part_chars=80)

    async def main() -> None:
        async with running_bot(settings) as bot:
            parts = len(bot.services.storybook.get("en", "three-bears").parts(80))
            api.send_text(story_chat, "/story")
            await api.wait_for(api.sends_to(story_chat, "sendMessage"), timeout=90)
            menu = api.sent_messages(story_chat)[-1]
            api.press_button(story_chat, menu.message_id, "story:en:three-bears")
            await until(lambda: len(stack.requests(story_chat)) == parts)
            api.send_voice(voice_chat, make_ogg_opus(2.0, speech_like=True), duration=2)
            await api.wait_for(api.sends_to(voice_chat, "sendVideoNote"), timeout=90)
            await api.wait_for(api.sends_to(story_chat, "sendVideoNote"), count=parts, timeout=120)
            await until(lambda: _answered(stack, story_chat, voice_chat))

    run(main(), timeout=240)
    voice_time = videos(api, voice_chat)[0].time
    story_times = [v.time for v in videos(api, story_chat)]
    assert voice_time < story_times[-1], "the voice note waited for the whole story"
    assert texts(api, voice_chat) == [t("position", "en", position=2, name="Tester")]


def test_limits_per_chat_and_overall(stack: Stack) -> None:
    api = stack.api
    settings = stack.settings(max_pending_per_chat=2, max_queue=3)

    async def main() -> None:
        async with running_bot(settings):
            for chat, count in ((231, 3), (232, 2)):
                for n in range(count):
                    api.send_text(chat, f"{LONG_TEXT[:300]} Number {n}.")
            await api.wait_for(
                lambda c: c.method == "sendMessage" and c.params["chat_id"] in (231, 232), count=2, timeout=90
            )
            await until(lambda: _answered(stack, 231, 232), timeout=120)

    run(main(), timeout=240)
    assert len(stack.requests(231)) == 2 and len(stack.requests(232)) == 1
    assert t("too_many_pending", "en", name="Tester") in texts(api, 231)
    assert t("busy", "en") in texts(api, 232)


def test_send_errors_are_retried_and_a_timed_out_upload_is_not_repeated(stack: Stack) -> None:
    api = stack.api
    settings = stack.settings(send_read_timeout_s=1)

    async def main() -> None:
        async with running_bot(settings):
            api.fail_next("sendVideoNote", status=502)
            api.fail_next("sendVideoNote", status=429, retry_after=1)
            api.send_text(241, "First one.")
            await api.wait_for(api.sends_to(241, "sendVideoNote"), timeout=90)
            await until(lambda: _answered(stack, 241))
            api.fail_next("sendVideoNote", status=None, delay=2.5)  # slow: the bot gives up waiting
            api.send_text(242, "Second one.")
            await until(lambda: _answered(stack, 242), timeout=90)
            await api.wait_for(
                api.sends_to(242, "sendVideoNote"), timeout=60
            )  # the slow call lands (late, under load)
            await asyncio.sleep(3)  # a resend would land too

    run(main(), timeout=240)
    statuses = [c.status for c in api.calls if c.method == "sendVideoNote" and c.params["chat_id"] == 241]
    assert statuses[:2] == [502, 429] and statuses.count(200) == 1
    assert len(videos(api, 241)) == 1
    assert len(videos(api, 242)) == 1, "a timed-out upload was sent again"
    (row,) = stack.requests(242)
    assert row["status"] == "sent" and "probably delivered" in row["error"]


def test_webhook_mode_checks_the_secret_token(stack: Stack) -> None:
    with FakeBotApi() as other:
        hooked = dataclasses.replace(stack, api=other)
        port = free_port()
        settings = hooked.settings(listen="127.0.0.1", port=port, webhook_secret="s3cret-Token_1")
        chat = 251

        async def main() -> None:
            async with running_bot(settings, webhook_url="https://bot.example.org/tg/hook"):
                assert other.webhook["url"] == "https://bot.example.org/tg/hook"
                assert other.webhook["secret_token"] == "s3cret-Token_1"
                update = other.update(other.send_text(chat, "Hello by webhook!"))
                url = f"http://127.0.0.1:{port}/tg/hook"
                async with httpx.AsyncClient() as client:
                    refused = await client.post(
                        url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
                    )
                    missing = await client.post(url, json=update)
                    accepted = await client.post(
                        url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
                    )
                assert (
                    refused.status_code == 403 and missing.status_code == 403 and accepted.status_code == 200
                )
                await other.wait_for(other.sends_to(chat, "sendVideoNote"), timeout=90)
                await until(lambda: _answered(hooked, chat))

        run(main())
        assert len(videos(other, chat)) == 1


def test_start_greets_with_a_video_note_and_sets_the_command_menu(stack: Stack) -> None:
    api, chat = stack.api, 261
    api.add_user(chat, "Lena", language_code="ru")

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(chat, "/start")
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), timeout=90)
            await until(lambda: _answered(stack, chat))

    run(main())
    (welcome,) = texts(api, chat)
    assert welcome.startswith("Привет, Lena!") and "/story" in welcome
    (greeting,) = stack.requests(chat)
    assert (greeting["kind"], greeting["language"], greeting["input"]) == (
        "greeting",
        "ru",
        "Привет! Я Tester.",
    )
    assert [c["command"] for c in api.commands()] == ["start", "story", "characters", "language", "help"]
    assert api.commands(language_code="ru")[1]["description"] == "Сказка на ночь"
    days = f"{stack.settings().retention_days:g}"
    assert api.description() == t("bot_description", "en", days=days) and f"{days} days" in api.description()
    assert api.description(language_code="ru") == t("bot_description", "ru", days=days)
    assert api.description("short_description") == t("bot_short_description", "en")


def test_a_deep_link_picks_its_character(stack: Stack) -> None:
    api, chat, other = stack.api, 262, 263

    async def main() -> None:
        async with running_bot(stack.settings()):
            api.send_text(chat, "/start owl")  # what t.me/<bot>?start=owl sends
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), timeout=90)
            await until(lambda: _answered(stack, chat))
            mark = api.mark()
            api.send_text(other, "/start ../../etc")
            await api.wait_for(api.sends_to(other, "sendVideoNote"), since=mark, timeout=90)
            await until(lambda: _answered(stack, other))

    run(main())
    (greeting,) = stack.requests(chat)
    assert (greeting["kind"], greeting["character"]) == ("greeting", "owl")
    with contextlib.closing(stack.state()) as connection:
        (chosen,) = connection.execute("SELECT character FROM chats WHERE chat_id = ?", (chat,)).fetchone()
    assert chosen == "owl"
    unknown, welcome = texts(api, other)
    assert unknown == t("deep_link_unknown", "en") and welcome.startswith("Hello")
    assert stack.requests(other)[0]["character"] == stack.settings().default_character
