"""End-to-end tests of the admin side: the real application against a fake Telegram, real workers.

One fake Bot API server and one data directory serve the module, with a render worker (one
process) and the CPU maker (``bot.worker --make``) as real processes; each test starts its own
bot on that data directory and uses its own chat ids. Admins are users 900-908. Pictures are
drawn here: a cartoon face (a face detector may or may not find it, as with real drawn
characters: the conversations take either turn) and a plain gradient (no face anywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from bot.texts import t
from tests.bot_harness import ROOT, Stack, Worker, run, running_bot, shared_assets, texts, until, videos
from tests.fake_telegram import FakeBotApi

ADMINS = [900, 901, 902, 903, 904, 905, 906, 907, 908]
HAS_MAKER = (ROOT / "engine" / "makers" / "make.py").is_file()
needs_maker = pytest.mark.skipif(
    not HAS_MAKER, reason="engine/makers/make.py (the engine side) is not there yet"
)


@pytest.fixture(autouse=True)
def _timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("admin")
    characters, stories = shared_assets()
    with FakeBotApi() as api:
        defaults = dict(admins=ADMINS, heartbeat_timeout_s=4, make_size=128, status_edit_interval_s=0.3)
        stack = Stack(api, root / "data", characters, stories, defaults=defaults)
        for admin in ADMINS:
            api.add_user(admin, "Admin")
        workers = [
            Worker(stack.settings(), workers=1).start(),
            Worker(stack.settings(), workers=1, route="cpu").start(),
        ]
        stack.worker = workers[1]
        try:
            yield stack
        finally:
            for worker in workers:
                worker.stop()


def cartoon(size: int = 160) -> bytes:
    """A drawn face (head, eyes, mouth) as PNG bytes: a picture a character can be made from."""
    image = np.full((size, size, 3), (200, 230, 250), np.uint8)
    centre = size // 2
    cv2.circle(image, (centre, centre), int(size * 0.38), (90, 150, 230), -1)
    for dx in (-1, 1):
        cv2.circle(image, (centre + dx * size // 7, int(size * 0.42)), size // 18, (30, 30, 30), -1)
    cv2.ellipse(image, (centre, int(size * 0.66)), (size // 7, size // 28), 0, 0, 360, (40, 40, 140), -1)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def faceless(size: int = 160) -> bytes:
    """A picture with nothing like a face in it (a plain gradient) as PNG bytes."""
    ramp = np.linspace(60, 220, size, dtype=np.uint8)
    image = np.dstack(
        [np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 128, np.uint8)]
    )
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def deep_png() -> bytes:
    """A real 40-megapixel PNG at 16 bits a channel with alpha: small on disk, 320 MB decoded."""
    ok, data = cv2.imencode(".png", np.zeros((5000, 8000, 4), np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return data.tobytes()


def jobs(stack: Stack) -> list[dict[str, Any]]:
    with contextlib.closing(stack.state()) as connection:
        try:
            return [dict(row) for row in connection.execute("SELECT * FROM make_jobs ORDER BY id")]
        except sqlite3.OperationalError:
            return []


async def reply(api: FakeBotApi, chat: int, since: int, timeout: float = 30) -> Any:
    """The bot's next message or photo (its ``text`` is the caption) in ``chat`` after ``since``."""
    said = ("sendMessage", "sendPhoto")
    await api.wait_for(
        lambda call: api.sends_to(chat)(call) and call.method in said, since=since, timeout=timeout
    )
    return [m for m in api.sent_messages(chat) if m.method in said][-1]


async def say(api: FakeBotApi, chat: int, text: str) -> Any:
    mark = api.mark()
    api.send_text(chat, text)
    return await reply(api, chat, mark)


async def ask_for_character(
    api: FakeBotApi,
    chat: int,
    name: str,
    picture: bytes,
    mouth: str | tuple[str, str] | None = "80,106",
    voice: str = "en-high",
) -> Any:
    """/newcharacter up to the confirmation (``mouth`` None: tap "usual cartoon proportions"; a
    pair: the cells on the whole picture, then on the closer look); returns the confirmation message."""
    assert (await say(api, chat, "/newcharacter")).text == t("nc_ask_name", "en")
    assert "Now send me a picture" in (await say(api, chat, name)).text
    mark = api.mark()
    api.send_photo(chat, picture)
    answer = await reply(api, chat, mark)
    if answer.text.startswith("I couldn't find a face"):  # drawn: a detector may not find it
        assert ("Usual cartoon proportions", "nc:pos:cartoon") in answer.buttons
        if mouth is None:
            mark = api.mark()
            api.press_button(chat, answer.message_id, "nc:pos:cartoon")
            answer = await reply(api, chat, mark)
        elif isinstance(mouth, tuple):
            closer = await say(api, chat, mouth[0])
            assert closer.method == "sendPhoto" and closer.text.startswith("Thank you! Now a closer look"), (
                closer.text
            )
            answer = await say(api, chat, mouth[1])
        else:
            answer = await say(api, chat, mouth)
    assert answer.text == t("nc_ask_voice", "en", name=name), answer.text
    mark = api.mark()
    api.press_button(chat, answer.message_id, f"nc:voice:{voice}")
    await api.wait_for("editMessageText", since=mark, timeout=30)
    confirm = api.message(chat, answer.message_id)
    assert confirm["text"].startswith("Ready to make:") and name in confirm["text"]
    return answer


def heartbeat(stack: Stack, task_id: str, route: str = "cpu") -> dict[str, Any] | None:
    """A make task's heartbeat as its maker wrote it (its pid is how a test kills that maker)."""
    from bot.tasks import MakeQueue

    queue = MakeQueue(stack.settings(), route)
    try:
        return queue.heartbeat(task_id)
    finally:
        queue.close()


def job_done(stack: Stack, job_id: int) -> bool:
    return any(
        job["id"] == job_id and job["status"] in ("ready", "failed", "cancelled") for job in jobs(stack)
    )


# -- who may -------------------------------------------------------------------------------------


def test_non_admins_are_refused_even_with_forged_buttons(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    api, chat = stack.api, 301
    commands = [
        "/newcharacter",
        "/newstory",
        "/jobs",
        "/cancel 1",
        "/delcharacter tester",
        "/renamecharacter tester",
    ]
    forged = [
        "nc:make",
        "nc:voice:en-high",
        "nc:pos:gpu",
        "nc:src:person",
        "nc:consent",
        "ns:char:tester",
        "del:tester:yes",
        "del:owl",
        "ren:tester",
        "nc:../../x",
    ]

    async def main() -> None:
        async with running_bot(stack.settings()):
            for command in commands:
                api.send_text(chat, command)
            await api.wait_for(api.sends_to(chat, "sendMessage"), count=len(commands), timeout=30)
            mark = api.mark()
            for data in forged:
                api.press_button(chat, 999_999, data, strict=False)
            await api.wait_for("answerCallbackQuery", count=len(forged), since=mark, timeout=30)
            api.send_text(chat, "Are you still there?")  # the refusals did not start any conversation
            await api.wait_for(api.sends_to(chat, "sendVideoNote"), timeout=60)

    with caplog.at_level(logging.WARNING, logger="bot.handlers.admin"):
        run(main())
    assert texts(api, chat) == [t("admin_only", "en")] * len(commands)
    answers = [c for c in api.calls if c.method == "answerCallbackQuery"][-len(forged) :]
    assert all(c.params.get("text") == t("admin_only", "en") and c.params.get("show_alert") for c in answers)
    logged = [r.getMessage() for r in caplog.records if "non-admin user 301" in r.getMessage()]
    assert len(logged) == len(commands) + len(forged)
    assert jobs(stack) == [] and (stack.characters / "tester" / "character.toml").is_file()


# -- pictures ------------------------------------------------------------------------------------


def test_bad_pictures_are_refused_before_anything_is_queued(stack: Stack) -> None:
    api, chat = stack.api, 900

    async def main() -> None:
        async with running_bot(stack.settings()):
            await say(api, chat, "/newcharacter")
            await say(api, chat, "Nobody")
            mark = api.mark()
            api.send_document(chat, b"this is not a picture at all" * 20, "bunny.png", "image/png")
            said = await reply(api, chat, mark)
            assert said.text.startswith("I can't use that picture: this is not a picture"), said.text
            mark = api.mark()
            api.send_document(chat, faceless(), "huge.png", "image/png", declared_size=11_000_000)
            assert (await reply(api, chat, mark)).text == t("nc_picture_too_big", "en", mb=10)
            mark = api.mark()
            api.send_document(chat, bomb_png(), "bomb.png", "image/png")
            said = await reply(api, chat, mark)
            assert "100000x100000 pixels, too large" in said.text, said.text
            mark = api.mark()
            api.send_document(chat, deep_png(), "deep.png", "image/png")  # 476 KB, 40 MP at 16 bits + alpha
            said = await reply(api, chat, mark)
            assert "8 bytes a pixel" in said.text and "too heavy" in said.text, said.text
            mark = api.mark()
            api.send_photo(chat, b"\xff\xd8\xff\xe0 not really a jpeg")
            assert (await reply(api, chat, mark)).text.startswith("I can't use that picture")
            assert (await say(api, chat, "hello?")).text == t("nc_not_a_picture", "en")
            mark = api.mark()
            api.send_photo(chat, faceless())  # whatever face detector this OpenCV has, no face
            said = await reply(api, chat, mark)
            assert said.method == "sendPhoto" and said.text.startswith(
                "I couldn't find a face in this picture"
            )
            assert said.buttons == [("Usual cartoon proportions", "nc:pos:cartoon")]  # no GPU configured
            grid = cv2.imdecode(np.frombuffer(said.file, np.uint8), cv2.IMREAD_COLOR)
            assert (
                grid is not None and max(grid.shape[:2]) > 1024
            )  # the picture at 1024 px, with a labelled margin
            assert (await say(api, chat, "500,500")).text.startswith("Send the mouth position as two numbers")
            for forged, reason in [
                ("A1 B2 C3", "that is 3 cell(s)"),
                ("Z1 B2 C3 D4", "Z1 is not on the grid"),
                ("'; DROP TABLE make_jobs; --", "only cell names"),
                ("A" * 500, "send four cells"),
            ]:
                answer = (await say(api, chat, forged)).text
                assert answer.startswith("I can't use that: ") and reason in answer, (forged, answer)
            closer = await say(api, chat, "F11 K11 F7 K7")  # the whole picture's answer: where to look closer
            assert closer.method == "sendPhoto" and closer.text.startswith("Thank you! Now a closer look")
            for forged, reason in [
                ("A1 A1 C3 D4", "different"),
                ("E4 H4 E9 H9", "below the eyes"),
                ("Q1 B2 C3 D4", "not on the grid"),
            ]:
                answer = (await say(api, chat, forged)).text
                assert answer.startswith("I can't use that: ") and reason in answer, (forged, answer)
            # eyes three cells apart on the closer look: too coarse still, one more look
            closest = await say(api, chat, "G9 J9 G6 J6")
            assert closest.method == "sendPhoto" and closest.text.startswith("Closer still"), closest.text
            assert (await say(api, chat, "/cancel")).text == t("nc_cancelled", "en")
            assert (await say(api, chat, "/jobs")).text == t("jobs_none", "en")

    run(main())
    assert jobs(stack) == []
    assert list(stack.settings().pictures_dir.iterdir()) == []  # nothing kept from a cancelled conversation
    assert not any(c.method == "sendVideoNote" and c.params["chat_id"] == chat for c in api.calls)


# -- making one ----------------------------------------------------------------------------------


@needs_maker
def test_new_character_on_the_cpu_path_from_name_to_preview(stack: Stack) -> None:
    api, admin, child = stack.api, 901, 311
    status: list[int] = []

    async def main() -> None:
        async with running_bot(stack.settings()):
            # no face anywhere: the admin points at the mouth corners and eyes on the grid (the manual
            # path), and at the top and bottom of the mouth, open in the picture
            confirm = await ask_for_character(
                api,
                admin,
                "Bunny Rabbit",
                faceless(),
                mouth=("F11 K11 F7 K7 H11 H12", "d9 j9, d4 j4, g8 g10"),
            )
            text = api.message(admin, confirm.message_id)["text"]
            assert "Made on: the CPU (puppet)" in text and "mouth and eyes at D9 J9 D4 J4 G8 G10" in text, (
                text
            )
            mark = api.mark()
            api.press_button(admin, confirm.message_id, "nc:make")
            status.append(confirm.message_id)
            await until(
                lambda: bool(jobs(stack)) and job_done(stack, jobs(stack)[-1]["id"]),
                timeout=80,
                what="the job",
            )
            await api.wait_for(api.sends_to(admin, "sendVideoNote"), since=mark, timeout=60)
            api.send_text(child, "/characters")
            await api.wait_for(api.sends_to(child, "sendMessage"), timeout=30)

    run(main(), timeout=200)
    (job,) = [j for j in jobs(stack) if j["chat_id"] == admin]
    assert (job["status"], job["path_used"], job["character_id"], job["route"]) == (
        "ready",
        "puppet",
        "bunny-rabbit",
        "cpu",
    ), job
    assert job["picture_path"] is None and job["attempts"] == 1
    # the closer look's cells (a 75 px square from 42,52 in 16 cells: the first answer's points
    # span 50 px, half as much again around them), as mouth centre and width and eye centres; its
    # eyes six cells apart, no third look was needed
    options = json.loads(job["options"])
    cell, x0, y0 = 75 / 16, 42, 52
    assert options["landmarks"] == "pointed" and options["mouth_width"] == pytest.approx(6 * cell), options
    assert options["mouth"] == pytest.approx([x0 + 6.5 * cell, y0 + 8.5 * cell]), options
    assert np.allclose(
        options["eyes"], [[x0 + 3.5 * cell, y0 + 3.5 * cell], [x0 + 9.5 * cell, y0 + 3.5 * cell]]
    ), options
    assert np.allclose(
        options["open_mouth"], [[x0 + 6.5 * cell, y0 + 7.5 * cell], [x0 + 6.5 * cell, y0 + 9.5 * cell]]
    ), options
    edits = [
        c.params["text"]
        for c in api.calls
        if c.method == "editMessageText" and c.params.get("message_id") == status[0]
    ]
    assert edits[0].startswith("Ready to make:")  # the voice keyboard became the confirmation
    assert edits[1].startswith(
        f"New character Bunny Rabbit (bunny-rabbit), job {job['id']}:\nwaiting, number 1 in line"
    )
    assert "ready! Made on the CPU (puppet) in " in edits[-1], edits
    assert any("%" in edit for edit in edits[2:-1]), edits  # progress was shown on the way
    (preview,) = videos(api, admin)
    assert preview.method == "sendVideoNote" and preview.params["reply_parameters"]["message_id"] == status[0]
    menu = api.sent_messages(child)[-1]
    assert "char:bunny-rabbit" in [data for _, data in menu.buttons]
    folder = stack.data_dir / "characters" / "bunny-rabbit"
    assert (folder / "library.gchar").is_file() and (folder / "made-by.json").is_file()
    assert not [p for p in (stack.data_dir / "characters").iterdir() if p.name.startswith(".")]


@needs_maker
def test_jobs_and_cancel_stop_a_running_maker(stack: Stack) -> None:
    api, admin = stack.api, 902
    said: dict[str, str] = {}

    async def main() -> None:
        async with running_bot(stack.settings(make_size=512)):  # slow enough to be cancelled mid-way
            confirm = await ask_for_character(api, admin, "Slowpoke", cartoon(), voice="ru-low")
            api.press_button(admin, confirm.message_id, "nc:make")
            await until(
                lambda: any(
                    j["name"] == "Slowpoke" and j["status"] == "running" and j["stage"] for j in jobs(stack)
                ),
                what="the maker to start",
            )
            job = next(j for j in jobs(stack) if j["name"] == "Slowpoke")
            said["jobs"] = (await say(api, admin, "/jobs")).text
            said["usage"] = (await say(api, admin, "/cancel")).text
            said["unknown"] = (await say(api, admin, "/cancel 999")).text
            said["cancel"] = (await say(api, admin, f"/cancel {job['id']}")).text
            said["again"] = (await say(api, admin, f"/cancel {job['id']}")).text
            await until(
                lambda: api.message(admin, confirm.message_id)["text"].endswith("cancelled."),
                what="the status edit",
            )
            await until(
                lambda: next(j for j in jobs(stack) if j["id"] == job["id"])["task_id"] is None,
                timeout=30,
                what="the maker to stop and its task to be dropped",
            )
            said["after"] = (await say(api, admin, "/jobs")).text

    run(main(), timeout=120)
    job = next(j for j in jobs(stack) if j["name"] == "Slowpoke")
    assert job["status"] == "cancelled" and job["language"] == "ru" and job["picture_path"] is None
    assert (
        said["jobs"].startswith("Character jobs:")
        and f"{job['id']}. Slowpoke (slowpoke): animating on CPU" in said["jobs"]
    )
    assert said["usage"].startswith("Which job? Send /cancel JOB")
    assert said["unknown"] == t("cancel_unknown", "en", job=999)
    assert said["cancel"] == t("cancel_done", "en", job=job["id"], name="Slowpoke")
    assert said["again"] == t("cancel_not_active", "en", job=job["id"], status="cancelled")
    assert f"{job['id']}. Slowpoke (slowpoke): cancelled." in said["after"]
    assert not (stack.data_dir / "characters" / "slowpoke").exists()
    assert "cancelled" in stack.worker.output()  # the maker itself stopped, not just the bot


def _publish(stack: Stack, identifier: str, name: str) -> None:
    """A made character put in place directly (the tiny test face under another name)."""
    from bot.character_store import CharacterStore
    from bot.make_jobs import tar_folder
    from tests.test_bot_admin_units import _character_folder

    folder = _character_folder(stack.data_dir / f"src-{identifier}", identifier, name)
    CharacterStore(stack.data_dir / "characters").publish(
        identifier, 0, tar_folder(folder), {"path": "puppet"}
    )


def test_rename_and_delete_with_confirmation(stack: Stack) -> None:
    api, admin, child = stack.api, 903, 321
    _publish(stack, "kitty", "Kitty")
    said: dict[str, Any] = {}

    async def main() -> None:
        async with running_bot(stack.settings()):
            menu = await say(api, admin, "/renamecharacter")
            said["rename_menu"] = menu.buttons
            mark = api.mark()
            api.press_button(admin, menu.message_id, "ren:kitty")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            said["ask"] = api.message(admin, menu.message_id)["text"]
            said["renamed"] = (await say(api, admin, "Kitty Cat")).text
            api.send_text(child, "/characters")
            await api.wait_for(api.sends_to(child, "sendMessage"), timeout=30)
            said["child_menu"] = api.sent_messages(child)[-1].buttons
            menu = await say(api, admin, "/delcharacter")
            said["delete_menu"] = menu.buttons
            mark = api.mark()
            api.press_button(admin, menu.message_id, "del:kitty")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            said["confirm"] = api.message(admin, menu.message_id)
            mark = api.mark()
            api.press_button(admin, menu.message_id, "del:kitty:no")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            said["kept"] = api.message(admin, menu.message_id)["text"]
            confirm = await say(api, admin, "/delcharacter kitty")
            mark = api.mark()
            api.press_button(admin, confirm.message_id, "del:kitty:yes")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            said["deleted"] = api.message(admin, confirm.message_id)["text"]
            mark = api.mark()
            api.press_button(admin, confirm.message_id, "del:tester:yes", strict=False)  # built-in: not ours
            await api.wait_for("answerCallbackQuery", since=mark, timeout=30)
            api.send_text(child, "/characters")
            await api.wait_for(api.sends_to(child, "sendMessage"), count=2, timeout=30)
            said["child_after"] = api.sent_messages(child)[-1].buttons

    run(main())
    assert ("Kitty (kitty)", "ren:kitty") in said["rename_menu"]
    assert not any(
        data in ("ren:tester", "ren:owl") for _, data in said["rename_menu"]
    )  # built-in ones are not listed
    assert said["ask"] == t("rename_ask", "en", name="Kitty")
    assert said["renamed"] == t("rename_done", "en", old="Kitty", new="Kitty Cat")
    assert ("Kitty Cat", "char:kitty") in said["child_menu"]
    assert ("Kitty Cat (kitty)", "del:kitty") in said["delete_menu"]
    assert said["confirm"]["text"] == t("del_confirm", "en", name="Kitty Cat", id="kitty")
    assert said["kept"] == t("del_kept", "en", name="Kitty Cat")
    assert said["deleted"] == t("del_done", "en", name="Kitty Cat")
    assert "char:kitty" not in [data for _, data in said["child_after"]] and ("Tester", "char:tester") in [
        (label.removeprefix("✓ ").split(" - ")[0], data) for label, data in said["child_after"]
    ]
    assert not (stack.data_dir / "characters" / "kitty").exists() and (stack.characters / "tester").is_dir()
    last = [c for c in api.calls if c.method == "answerCallbackQuery"][-1]
    assert last.params.get("text") == t("button_invalid", "en")


@needs_maker
def test_a_gpu_job_no_gpu_worker_takes_is_made_on_the_cpu(stack: Stack) -> None:
    api, admin = stack.api, 906
    settings = stack.settings(flp_mode="http", flp_url="http://127.0.0.1:9/", gpu_start_timeout_s=1.0)

    async def main() -> None:
        async with running_bot(settings):
            confirm = await ask_for_character(api, admin, "Lonely", cartoon(), mouth=None)
            assert "Made on: the GPU (FasterLivePortrait)" in api.message(admin, confirm.message_id)["text"]
            api.press_button(admin, confirm.message_id, "nc:make")
            await until(
                lambda: any(
                    j["name"] == "Lonely" and j["status"] in ("ready", "failed") for j in jobs(stack)
                ),
                timeout=80,
                what="the job",
            )

    run(main(), timeout=150)
    job = next(j for j in jobs(stack) if j["name"] == "Lonely")
    assert (job["status"], job["route"], job["path_used"], job["attempts"]) == (
        "ready",
        "cpu",
        "puppet",
        1,
    ), job
    assert job["error"] == "no GPU worker took it in 1 s: made on the CPU"


# -- nothing lost --------------------------------------------------------------------------------


@needs_maker
def test_a_restart_mid_job_and_a_killed_maker_still_end_in_ready(stack: Stack) -> None:
    """The bot stops while the maker works; the maker is then killed too. The next bot sees
    the silent heartbeat, makes the character again, and the admin gets one preview."""
    api, admin = stack.api, 904
    killed: list[int] = []
    status: list[int] = []

    async def main() -> None:
        async with running_bot(stack.settings()):
            confirm = await ask_for_character(api, admin, "Phoenix", cartoon())
            status.append(confirm.message_id)
            api.press_button(admin, confirm.message_id, "nc:make")
            await until(
                lambda: any(j["name"] == "Phoenix" and j["status"] == "running" for j in jobs(stack)),
                what="the maker to start",
            )
        job = next(j for j in jobs(stack) if j["name"] == "Phoenix")
        beat = heartbeat(stack, job["task_id"])
        assert beat is not None
        os.kill(beat["pid"], signal.SIGKILL)  # the consumer replaces its process; the task is gone
        killed.append(beat["pid"])
        async with running_bot(stack.settings()):
            await until(lambda: job_done(stack, job["id"]), timeout=90, what="the job to end")
            await api.wait_for(api.sends_to(admin, "sendVideoNote"), timeout=60)
            await asyncio.sleep(1.0)  # a second preview would show up now

    run(main(), timeout=200)
    job = next(j for j in jobs(stack) if j["name"] == "Phoenix")
    assert (job["status"], job["attempts"]) == ("ready", 2), job
    assert "went silent" in job["error"] or "lost" in job["error"]
    assert len(videos(api, admin)) == 1
    assert "ready! Made on the CPU (puppet)" in api.message(admin, status[0])["text"]
    assert "(on the way: worker" in api.message(admin, status[0])["text"]


# -- the GPU queue -------------------------------------------------------------------------------

STANDIN = ROOT / "tests" / "flp_standin"


@needs_maker
@pytest.mark.skipif(
    not (STANDIN / "run.py").is_file(), reason="the FLP stand-in (tests/flp_standin/run.py) is not there yet"
)
def test_gpu_jobs_go_to_the_gpu_worker_only(stack: Stack, tmp_path: Path) -> None:
    """With FLP configured, the job goes to the ``gpu`` queue; a ``--gpu`` worker (FLP's CLI,
    played by the stand-in) makes it, and the CPU maker, idle beside it, never takes it."""
    from engine import synthetic

    api, admin = stack.api, 905
    checkout = tmp_path / "flp"
    (checkout / "configs").mkdir(parents=True)
    (checkout / "run.py").symlink_to(STANDIN / "run.py")
    (checkout / "configs" / "trt_infer.yaml").write_text("# the stand-in reads no config\n")
    speech, idle = synthetic.write_character_videos(
        tmp_path / "reference", seed=3, duration_s=6.0, size=256, idle_s=2.5
    )
    gpu = dict(
        flp_mode="cli",
        flp_checkout=checkout,
        flp_python=sys.executable,
        flp_cfg="configs/trt_infer.yaml",
        flp_reference_speech=speech,
        flp_reference_idle=idle,
    )
    worker = Worker(stack.settings(**gpu), workers=1, route="gpu").start()
    picture = cv2.imencode(".png", synthetic.draw_face(synthetic.FaceParams(), 256))[1].tobytes()
    status: list[int] = []

    async def main() -> None:
        async with running_bot(stack.settings(**gpu)):
            assert (await say(api, admin, "/newcharacter")).text == t("nc_ask_name", "en")
            await say(api, admin, "Robo")
            mark = api.mark()
            api.send_photo(admin, picture)
            answer = await reply(api, admin, mark)
            if answer.text.startswith("I couldn't find a face"):
                assert ("Let the GPU find the face", "nc:pos:gpu") in answer.buttons
                mark = api.mark()
                api.press_button(admin, answer.message_id, "nc:pos:gpu")
                answer = await reply(api, admin, mark)
            mark = api.mark()
            api.press_button(admin, answer.message_id, "nc:voice:en-low")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            assert "Made on: the GPU (FasterLivePortrait)" in api.message(admin, answer.message_id)["text"]
            status.append(answer.message_id)
            api.press_button(admin, answer.message_id, "nc:make")
            await until(
                lambda: any(j["name"] == "Robo" and j["status"] in ("ready", "failed") for j in jobs(stack)),
                timeout=120,
                what="the GPU job",
            )
            await api.wait_for(api.sends_to(admin, "sendVideoNote"), timeout=60)

    try:
        run(main(), timeout=200)
    finally:
        worker.stop()
    job = next(j for j in jobs(stack) if j["name"] == "Robo")
    assert (job["status"], job["route"], job["path_used"], job["attempts"]) == ("ready", "gpu", "flp", 1), (
        job,
        worker.output()[-2000:],
    )
    assert "ready! Made on the GPU (FasterLivePortrait)" in api.message(admin, status[0])["text"]
    made_by = json.loads((stack.data_dir / "characters" / "robo" / "made-by.json").read_text())
    assert made_by["path"] == "flp" and made_by["job"] == job["id"]
    assert "gramophone-gpu" in worker.output() and "make job" in worker.output()
    assert f"make job {job['id']}" not in stack.worker.output()  # the CPU maker never saw it


@needs_maker
def test_a_publish_that_hits_a_full_disk_is_published_on_a_later_pass(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The made character's result stays in the queue when publishing it fails for the
    machine's sake (ENOSPC); the next try publishes it, and the admin gets the preview."""
    import errno

    from bot import making
    from bot.character_store import CharacterStore

    api, admin = stack.api, 907
    real_publish = CharacterStore.publish
    failures: list[str] = []

    def publish_or_fail(self: CharacterStore, character_id: str, *args: Any, **kwargs: Any) -> Any:
        if len(failures) < 2:
            failures.append(character_id)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_publish(self, character_id, *args, **kwargs)

    monkeypatch.setattr(CharacterStore, "publish", publish_or_fail)
    monkeypatch.setattr(making, "PUBLISH_RETRY_S", 0.5)

    async def main() -> None:
        async with running_bot(stack.settings()):
            confirm = await ask_for_character(api, admin, "Disk Full", cartoon())
            mark = api.mark()
            api.press_button(admin, confirm.message_id, "nc:make")
            await until(
                lambda: any(j["chat_id"] == admin and job_done(stack, j["id"]) for j in jobs(stack)),
                timeout=80,
            )
            await api.wait_for(api.sends_to(admin, "sendVideoNote"), since=mark, timeout=60)

    run(main(), timeout=200)
    (job,) = [j for j in jobs(stack) if j["chat_id"] == admin]
    assert failures == ["disk-full", "disk-full"]
    assert (job["status"], job["attempts"]) == ("ready", 1), job


def test_a_draft_survives_a_restart_and_an_idle_one_is_dropped(stack: Stack) -> None:
    api, admin, idle = stack.api, 906, 907

    async def main() -> None:
        async with running_bot(stack.settings()):
            assert (await say(api, admin, "/newcharacter")).text == t("nc_ask_name", "en")
            assert "Now send me a picture" in (await say(api, admin, "Patient Pup")).text
        async with running_bot(stack.settings()):  # a new bot process: the conversation goes on
            mark = api.mark()
            api.send_photo(admin, faceless())
            said = await reply(api, admin, mark)
            assert said.text.startswith("I couldn't find a face in this picture"), said.text
            assert (await say(api, admin, "/cancel")).text == t("nc_cancelled", "en")
        async with running_bot(stack.settings(draft_timeout_s=1.0)):
            assert (await say(api, idle, "/newcharacter")).text == t("nc_ask_name", "en")
            mark = api.mark()
            api.send_text(idle, "Sleepy Sloth")
            await reply(api, idle, mark)
            mark = api.mark()
            api.send_photo(idle, faceless())
            await reply(api, idle, mark)  # the grid: a picture is now kept for the draft
            assert len(list(stack.settings().pictures_dir.glob(f"{idle}-*"))) == 1
            mark = api.mark()
            said = await reply(api, idle, mark, timeout=20)  # nothing typed: the draft times out
            assert said.text == t("nc_timed_out", "en")
            assert list(stack.settings().pictures_dir.glob(f"{idle}-*")) == []  # its picture went too

    run(main(), timeout=120)
    assert stack.settings().conversations_path.is_file()


@pytest.fixture(scope="module")
def person_takes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes, bytes]:
    """Two takes of the rig reading (long enough for the passage's two parts), its silent take,
    and a take too short and silent to be a reading."""
    from engine import synthetic

    root = tmp_path_factory.mktemp("person")
    takes = []
    for seed in (1, 2):
        speech, idle = synthetic.write_character_videos(
            root / str(seed), seed=seed, duration_s=10.0, size=240, idle_s=7.0
        )
        takes.append(speech.read_bytes())
    _, short = synthetic.write_character_videos(root / "short", seed=3, duration_s=5.0, size=240, idle_s=4.0)
    return takes, idle.read_bytes(), short.read_bytes()


@pytest.fixture
def fast_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fast reader (40 characters a second): each part's take may be 10 s, which keeps the
    suite short; the checks are the same."""
    from bot.handlers import newcharacter

    monkeypatch.setattr(newcharacter, "READING_CHARS_PER_S", 40.0)


@needs_maker
def test_a_person_records_themselves_in_round_videos_and_becomes_a_character(
    stack: Stack, person_takes, fast_reader
) -> None:
    api, admin, child = stack.api, 905, 315
    takes, idle, short = person_takes
    timings: dict[str, float] = {}

    async def main() -> None:
        async with running_bot(stack.settings()):
            assert (await say(api, admin, "/newcharacter")).text == t("nc_ask_name", "en")
            named = await say(api, admin, "Grandma Rose")
            assert ("Or: record a person instead", "nc:src:person") in named.buttons
            mark = api.mark()
            api.press_button(admin, named.message_id, "nc:src:person")
            await api.wait_for(api.sends_to(admin, "sendMessage"), count=2, since=mark, timeout=30)
            intro, part_one = api.sent_messages(admin)[-2:]
            assert "2 parts" in intro.text and part_one.text.startswith(
                "Part 1 of 2. Record a round video reading this:"
            )
            mark = api.mark()
            api.send_video_note(admin, short, duration=4)  # too short, and no reading in it
            again = await reply(api, admin, mark, timeout=60)
            assert (
                again.text.startswith("Could you record that one again?") and "only 4 s long" in again.text
            ), again.text
            mark = api.mark()
            api.send_video_note(admin, takes[0], duration=10)
            await api.wait_for(api.sends_to(admin, "sendMessage"), count=2, since=mark, timeout=60)
            done, part_two = api.sent_messages(admin)[-2:]
            assert done.text == "Part 1 of 2: recorded, thank you." and part_two.text.startswith(
                "Part 2 of 2."
            )
            assert (await say(api, admin, "hello?")).text == t("nc_send_take", "en")
            mark = api.mark()
            api.send_video(admin, takes[1], duration=10, width=240, height=240)  # an ordinary video works too
            assert (await reply(api, admin, mark, timeout=60)).text == t("nc_ask_idle", "en")
            mark = api.mark()
            api.send_video_note(admin, idle, duration=7)
            consent = await reply(api, admin, mark, timeout=60)
            assert consent.text == t("nc_consent", "en", name="Grandma Rose")
            assert [data for _, data in consent.buttons] == ["nc:consent", "nc:stop"]
            mark = api.mark()
            api.press_button(admin, consent.message_id, "nc:consent")
            voice = await reply(api, admin, mark)
            assert voice.text == t("nc_ask_voice", "en", name="Grandma Rose")
            mark = api.mark()
            api.press_button(admin, voice.message_id, "nc:voice:en-low")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            confirm = api.message(admin, voice.message_id)
            assert "Made from: 2 recorded parts and a silent one" in confirm["text"], confirm["text"]
            mark, pressed = api.mark(), asyncio.get_running_loop().time()
            api.press_button(admin, voice.message_id, "nc:make")
            await until(
                lambda: bool(jobs(stack)) and job_done(stack, jobs(stack)[-1]["id"]),
                timeout=150,
                what="the job",
            )
            await api.wait_for(api.sends_to(admin, "sendVideoNote"), since=mark, timeout=60)
            timings["preview"] = asyncio.get_running_loop().time() - pressed
            api.send_text(child, "/characters")
            await api.wait_for(api.sends_to(child, "sendMessage"), timeout=30)

    run(main(), timeout=400)
    (job,) = [j for j in jobs(stack) if j["chat_id"] == admin and j["name"] == "Grandma Rose"]
    assert (job["status"], job["path_used"], job["route"]) == ("ready", "person", "cpu"), job
    options = json.loads(job["options"])
    assert options["consent"] is True and len(options["takes"]) == 2
    assert not any(
        Path(take).exists() for take in options["takes"]
    )  # the recordings live in the character now
    assert not [p for p in stack.settings().pictures_dir.iterdir() if p.name.startswith(f"{admin}-")]
    folder = stack.data_dir / "characters" / "grandma-rose"
    assert {"speech.mp4", "idle.mp4", "library.gchar", "portrait.jpg"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "made-by.json").read_text())["path"] == "person"
    menu = api.sent_messages(child)[-1]
    assert ("🎥 Grandma Rose", "char:grandma-rose") in menu.buttons and "a real person" in menu.text
    edits = [
        c.params["text"]
        for c in api.calls
        if c.method == "editMessageText" and c.params.get("message_id") == voice_id(api, admin)
    ]
    assert any("ready! Made on the CPU, from the recorded videos" in edit for edit in edits), edits
    logging.getLogger(__name__).info("person: make pressed -> preview in %.1f s", timings["preview"])


@needs_maker
def test_one_ordinary_video_of_the_whole_passage_is_enough(
    stack: Stack, person_takes, fast_reader, tmp_path: Path
) -> None:
    """Instead of one round video per part, one ordinary video reading the whole passage: the bot
    asks for nothing more to read, names the path, and makes the character from that video. Before
    it, a reading with no face in it and a silent take are each refused with their reason."""
    import subprocess

    from engine import synthetic
    from engine.media import ffmpeg_exe

    api, admin = stack.api, 908
    takes, idle, _ = person_takes
    (tmp_path / "reading.mp4").write_bytes(takes[0])
    faceless_reading = tmp_path / "faceless.mp4"  # the reading's sound over a plain grey picture
    subprocess.run(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=gray:s=240x240:r=25",
            "-i",
            str(tmp_path / "reading.mp4"),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(faceless_reading),
        ],
        check=True,
    )
    whole, _ = synthetic.write_character_videos(
        tmp_path / "whole", seed=5, duration_s=22.0, size=240, idle_s=4.0
    )

    async def main() -> None:
        async with running_bot(stack.settings()):
            await say(api, admin, "/newcharacter")
            named = await say(api, admin, "Grandpa Joe")
            mark = api.mark()
            api.press_button(admin, named.message_id, "nc:src:person")
            await api.wait_for(api.sends_to(admin, "sendMessage"), count=2, since=mark, timeout=30)
            for video, reason in (
                (faceless_reading.read_bytes(), "the face is out of the picture"),
                (idle, "I can hardly hear any reading"),
            ):
                mark = api.mark()
                api.send_video_note(admin, video, duration=10 if video is not idle else 7)
                again = await reply(api, admin, mark, timeout=60)
                assert again.text.startswith("Could you record that one again?") and reason in again.text, (
                    again.text
                )
            mark = api.mark()
            api.send_video(admin, whole.read_bytes(), duration=22, width=240, height=240)
            assert (await reply(api, admin, mark, timeout=60)).text == t(
                "nc_ask_idle", "en"
            )  # no part 2 to read
            mark = api.mark()
            api.send_video_note(admin, idle, duration=7)
            consent = await reply(api, admin, mark, timeout=60)
            mark = api.mark()
            api.press_button(admin, consent.message_id, "nc:consent")
            voice = await reply(api, admin, mark)
            mark = api.mark()
            api.press_button(admin, voice.message_id, "nc:voice:en-low")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            confirm = api.message(admin, voice.message_id)
            assert "Made from: one video of the whole passage and a silent one" in confirm["text"], confirm[
                "text"
            ]
            mark = api.mark()
            api.press_button(admin, voice.message_id, "nc:make")
            await until(
                lambda: any(j["name"] == "Grandpa Joe" and job_done(stack, j["id"]) for j in jobs(stack)),
                timeout=150,
                what="the job",
            )
            await api.wait_for(api.sends_to(admin, "sendVideoNote"), since=mark, timeout=60)

    run(main(), timeout=300)
    (job,) = [j for j in jobs(stack) if j["name"] == "Grandpa Joe"]
    assert (job["status"], job["path_used"]) == ("ready", "person"), job
    assert len(json.loads(job["options"])["takes"]) == 1
    folder = stack.data_dir / "characters" / "grandpa-joe"
    assert json.loads((folder / "made-by.json").read_text())["path"] == "person"


def voice_id(api: FakeBotApi, chat: int) -> int:
    """The message that asked for the voice and became the job's status message."""
    return [m for m in api.sent_messages(chat) if m.text == t("nc_ask_voice", "en", name="Grandma Rose")][
        -1
    ].message_id


def test_a_story_recorded_in_a_real_voice_is_told_in_parts_in_order(stack: Stack, tmp_path: Path) -> None:
    """Dad records a 3-minute story once; a child picks it in /story and gets it in parts, the
    first within seconds, every part in order, told in that voice."""
    import soundfile

    from engine import synthetic

    api, admin, child = stack.api, 904, 316
    audio = np.concatenate(
        [
            np.concatenate(
                [synthetic.synth_speech(14.0, seed=seed, sample_rate=16_000), np.zeros(8000, np.float32)]
            )
            for seed in range(13)
        ]
    )  # ~188 s, pauses
    wav = tmp_path / "story.wav"
    soundfile.write(wav, audio, 16_000, subtype="PCM_16")
    seconds: dict[str, float] = {}

    async def main() -> None:
        async with running_bot(stack.settings()):
            asked = await say(api, admin, "/newstory")
            assert asked.text == t("ns_ask_character", "en") and ("Tester", "ns:char:tester") in asked.buttons
            mark = api.mark()
            api.press_button(admin, asked.message_id, "ns:char:tester")
            await api.wait_for("editMessageText", since=mark, timeout=30)
            assert (await say(api, admin, "not a story")).text == t("ns_send_audio", "en")
            mark = api.mark()
            api.send_document(
                admin, b"#EXTM3U\nfile:///etc/passwd\n" * 10, "story.mp3", "audio/mpeg"
            )  # hostile
            assert (await reply(api, admin, mark, timeout=60)).text == t("ns_unreadable", "en")
            mark = api.mark()
            api.send_audio(admin, wav.read_bytes(), duration=188, file_name="story.wav")
            assert (await reply(api, admin, mark, timeout=60)).text == t("ns_ask_title", "en", minutes=3)
            saved = (await say(api, admin, "Bear Night")).text
            assert saved.startswith('Saved! "Bear Night"') and "for children who chose Tester" in saved, saved
            api.send_text(child, "/story")
            await api.wait_for(api.sends_to(child, "sendMessage"), timeout=30)
            menu = api.sent_messages(child)[-1]
            assert menu.buttons[0] == ("🎙 Bear Night", "rs:tester:bear-night"), menu.buttons
            mark, pressed = api.mark(), asyncio.get_running_loop().time()
            api.press_button(child, menu.message_id, "rs:tester:bear-night")
            first = await api.wait_for(
                lambda call: api.sends_to(child)(call) and call.method in ("sendVideo", "sendVideoNote"),
                since=mark,
                timeout=60,
            )
            seconds["first"] = first[0].time - pressed if hasattr(first[0], "time") else 0.0
            await until(lambda: _all_sent(stack, child), timeout=240, what="every part")

    run(main(), timeout=420)
    rows = stack.requests(child)
    assert len(rows) >= 6 and all(
        r["status"] == "sent" and r["input"] == "rec/tester/bear-night" for r in rows
    )
    assert [r["part"] for r in rows] == list(range(len(rows)))
    replies = [r["reply_message_id"] for r in rows]
    assert replies == sorted(replies), "parts were sent out of order"
    assert seconds["first"] < 10, f"the first part took {seconds['first']:.1f} s"
    told = sum(r["duration_s"] for r in rows)
    assert abs(told - len(audio) / 16_000) < 1.0, told  # all of it, told once
    captions = [v.params.get("caption") for v in videos(api, child) if v.method == "sendVideo"]
    assert all(caption.startswith("Bear Night (") for caption in captions)


def _all_sent(stack: Stack, chat: int) -> bool:
    rows = stack.requests(chat)
    return (
        bool(rows) and all(r["status"] in ("sent", "failed") for r in rows) and len(rows) == rows[0]["parts"]
    )


def test_takes_survive_a_restart_and_deleting_a_person_removes_everything(
    stack: Stack, person_takes, fast_reader
) -> None:
    """A restart in the middle of the takes keeps the ones received; /delcharacter then removes
    the person's recordings, library and the stories recorded in their voice."""
    from bot.character_store import CharacterStore
    from bot.make_jobs import tar_folder
    from bot.recorded_stories import RecordedStories

    api, admin = stack.api, 903
    takes, idle, _ = person_takes

    async def main() -> None:
        async with running_bot(stack.settings()):
            await say(api, admin, "/newcharacter")
            named = await say(api, admin, "Uncle Bob")
            mark = api.mark()
            api.press_button(admin, named.message_id, "nc:src:person")
            await api.wait_for(api.sends_to(admin, "sendMessage"), count=2, since=mark, timeout=30)
            mark = api.mark()
            api.send_video_note(admin, takes[0], duration=10)
            await api.wait_for(api.sends_to(admin, "sendMessage"), count=2, since=mark, timeout=60)
            assert api.sent_messages(admin)[-1].text.startswith("Part 2 of 2.")
        async with running_bot(stack.settings()):  # restarted: part 1 is still there
            mark = api.mark()
            api.send_video_note(admin, takes[1], duration=10)
            assert (await reply(api, admin, mark, timeout=60)).text == t("nc_ask_idle", "en")
            assert (await say(api, admin, "/cancel")).text == t("nc_cancelled", "en")

    run(main(), timeout=240)
    assert not [
        p for p in stack.settings().pictures_dir.iterdir() if p.name.startswith(f"{admin}-")
    ]  # cancelled: gone

    # a published person character with a story in its voice, then /delcharacter
    folder = stack.data_dir / "scratch-bob" / "uncle-bob"
    folder.mkdir(parents=True)
    (folder / "character.toml").write_text(
        'id = "uncle-bob"\nname = "Uncle Bob"\nlanguage = "en"\n[library]\nsource = "video"\n'
    )
    (folder / "speech.mp4").write_bytes(takes[0])
    (folder / "library.gchar").write_bytes(b"")
    CharacterStore(stack.data_dir / "characters").publish(
        "uncle-bob", 0, tar_folder(folder), {"path": "person"}
    )
    wav = stack.data_dir / "scratch-bob" / "story.wav"
    import soundfile

    from engine import synthetic

    soundfile.write(wav, synthetic.synth_speech(12.0, seed=4, sample_rate=16_000), 16_000)
    RecordedStories(stack.settings().recorded_stories_dir).add("uncle-bob", "Bob's Tale", "en", wav)

    async def delete() -> None:
        async with running_bot(stack.settings()):
            confirm = await say(api, admin, "/delcharacter uncle-bob")
            mark = api.mark()
            api.press_button(admin, confirm.message_id, "del:uncle-bob:yes")
            await api.wait_for("editMessageText", since=mark, timeout=30)

    run(delete())
    assert not (stack.data_dir / "characters" / "uncle-bob").exists()
    assert not (stack.settings().recorded_stories_dir / "uncle-bob").exists()
