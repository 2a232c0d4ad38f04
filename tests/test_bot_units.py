"""Fast checks of the bot's parts that need no Telegram: settings, state database, stories, texts,
and the worker's job function on a real (tiny) character."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from bot import store as store_module
from bot.jobs import CharacterCache, make_job, run_job
from bot.settings import Settings
from bot.store import Store
from bot.storybook import Storybook, split_parts
from bot.texts import LANGUAGES, TEXTS, from_telegram, language_of_text, t
from tests.bot_harness import shared_assets, write_stories
from tests.fake_telegram import make_ogg_opus


@pytest.fixture(scope="module")
def characters() -> Path:
    return shared_assets()[0]


# -- settings ------------------------------------------------------------------------------------


def test_settings_defaults_work_out_of_the_box(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "GRAMOPHONE_DATA_DIR", "GRAMOPHONE_REDIS_URL", "GRAMOPHONE_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.data_dir == Path("data") and settings.redis_url is None
    assert settings.workers >= 1 and settings.in_flight_limit == 2 * settings.workers
    assert settings.base_url == "https://api.telegram.org/bot"
    assert settings.base_file_url == "https://api.telegram.org/file/bot"
    assert settings.characters_dirs[-1] == Path("data") / "characters"
    assert (settings.max_pending_per_chat, settings.max_queue, settings.video_note_max_s) == (3, 50, 60)
    assert settings.download_max_bytes == 20 * 1024 * 1024 and settings.text_max_chars == 2000
    with pytest.raises(SystemExit, match="TELEGRAM_BOT_TOKEN"):
        settings.token()


def test_settings_from_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:from-dotenv\nGRAMOPHONE_WORKERS=3\n")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.setenv("GRAMOPHONE_BOT_API_URL", "http://localhost:8081/")
    monkeypatch.setenv("GRAMOPHONE_ADMINS", "1, 2")
    monkeypatch.setenv("GRAMOPHONE_CHARACTERS_DIRS", "/a:/b")
    monkeypatch.setenv("GRAMOPHONE_REDIS_URL", "redis://:hunter2@cache:6379/0")
    settings = Settings()
    assert settings.token() == "123:from-dotenv" and settings.workers == 3
    assert settings.base_url == "http://localhost:8081/bot"
    assert settings.admins == [1, 2] and settings.characters_dirs == [Path("/a"), Path("/b")]
    monkeypatch.setenv("GRAMOPHONE_ADMINS", "[7]")
    assert Settings().admins == [7]
    described = settings.describe() + repr(settings)
    assert "from-dotenv" not in described and "hunter2" not in described


# -- state database ------------------------------------------------------------------------------


def _row(**values: object) -> dict[str, object]:
    row: dict[str, object] = dict(
        chat_id=1,
        user_id=1,
        kind="text",
        input="hi",
        character="tester",
        language="en",
        incoming_message_id=10,
    )
    row.update(values)
    return row


def test_store_duplicates_and_compare_and_set(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    (request,) = store.add_requests([_row()])
    assert request.status == "received" and store.version == store_module.SCHEMA_VERSION
    assert store.add_requests([_row()]) == []  # the same update again: no second request
    assert store.transition(request.id, "received", "queued", task_id="t1", attempts=1)
    assert not store.transition(request.id, "received", "queued", task_id="t2")  # stale: no effect
    assert store.get(request.id).task_id == "t1"
    assert store.active_groups(1) == 1
    parts = store.add_requests(
        [_row(kind="story", incoming_message_id=11, part=i, parts=3) for i in range(3)]
    )
    assert [p.part for p in parts] == [0, 1, 2]
    assert store.active_groups() == 2  # a story counts once
    assert store.groups_ahead(parts[2]) == 1 and store.groups_ahead(parts[2], other_chats=True) == 0
    with pytest.raises(ValueError):
        store.transition(request.id, "queued", "exploded")
    store.close()


def test_the_life_cycle_table_refuses_moves_it_does_not_have(tmp_path: Path) -> None:
    from bot.store import TRANSITIONS, MakeStatus, Status

    store = Store(tmp_path / "state.db")
    (request,) = store.add_requests([_row()])
    assert set(TRANSITIONS) == set(Status) and not TRANSITIONS[Status.SENT] and not TRANSITIONS[Status.FAILED]
    for source, target in [
        ("sent", "queued"),
        ("failed", "received"),
        ("fetching", "rendered"),
        ("received", "sent"),
    ]:
        with pytest.raises(ValueError, match=f"cannot move from {source} to {target}"):
            store.transition(request.id, source, target)
    with pytest.raises(ValueError, match="from sent to"):  # one illegal source in a set is enough
        store.transition(request.id, ("rendered", "sent"), "received")
    assert store.annotate(request.id, "received", error="noted")  # staying put only sets fields
    for source, target in [
        ("received", "queued"),
        ("queued", "rendering"),
        ("rendering", "rendered"),
        ("rendered", "sent"),
    ]:
        assert store.transition(request.id, source, target)
    assert store.get(request.id).status == Status.SENT == "sent"
    job = store.add_make_job(
        user_id=1,
        chat_id=1,
        name="Owl",
        character_id="owl",
        language="en",
        voice={},
        options={},
        picture_path=str(tmp_path / "p.png"),
        route="cpu",
        status_message_id=None,
    )
    assert store.transition_make_job(job.id, MakeStatus.QUEUED, MakeStatus.RUNNING)
    assert store.transition_make_job(job.id, "running", "ready")
    with pytest.raises(ValueError, match="make job cannot move from ready to queued"):
        store.transition_make_job(job.id, "ready", "queued")
    store.close()


def test_store_upgrades_a_version_1_file_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    connection = sqlite3.connect(path, isolation_level=None)
    import sqlite_utils

    store_module.MIGRATIONS[0](sqlite_utils.Database(connection))
    connection.execute("PRAGMA user_version = 1")
    now = time.time()
    connection.execute("INSERT INTO chats VALUES (5, 'ru', 'owl', ?, ?)", [now, now])
    connection.execute(
        "INSERT INTO requests (chat_id, kind, status, input, incoming_message_id, created, updated) "
        "VALUES (5, 'text', 'queued', 'привет', 3, ?, ?)",
        [now, now],
    )
    connection.close()
    store = Store(path)
    assert store.version == store_module.SCHEMA_VERSION
    assert store.chat(5).character == "owl"
    (request,) = store.active()
    assert (request.input, request.status, request.video_note) == ("привет", "queued", None)
    assert store.transition(request.id, "queued", "rendered", video_note=1, duration_s=2.0, size=128)
    store.close()


# -- stories and texts ---------------------------------------------------------------------------


def test_story_parts_end_at_sentences_and_first_is_short(tmp_path: Path) -> None:
    book = Storybook(write_stories(tmp_path))
    story = book.get("en", "three-bears")
    assert story is not None and story.title == "The Three Bears"
    parts = story.parts(120)
    assert len(parts) >= 3 and parts[0].startswith("The Three Bears.")
    assert len(parts[0]) <= 80 and all(len(p) <= 130 for p in parts)
    assert all(p.rstrip()[-1] in ".!?" for p in parts)
    assert " ".join(parts).endswith("The end.")
    assert [s.slug for s in book.list("ru")] == ["repka"]
    for forged in ("../en", "EN", "en/../../etc"):
        assert book.get(forged, "short") is None
    assert book.get("en", "../short") is None and book.get_id("en/nothing") is None
    assert split_parts("One. Two. Three.", 200) == ["One. Two. Three."]


def test_every_text_has_both_languages_and_language_guessing() -> None:
    for key, table in TEXTS.items():
        assert set(LANGUAGES) <= set(table), key
    assert t("position", "ru", position=3, name="Сова").startswith("Ты 3")
    assert t("busy", "de") == TEXTS["busy"]["en"]
    assert (from_telegram("ru"), from_telegram("uk"), from_telegram("en-GB"), from_telegram(None)) == (
        "ru",
        "ru",
        "en",
        "en",
    )
    assert language_of_text("Привет, лисёнок!", "en") == "ru"
    assert language_of_text("Hello, fox!", "ru") == "en"
    assert language_of_text("123 !!!", "ru") == "ru"


# -- the worker's job ----------------------------------------------------------------------------


def test_jobs_render_voice_and_text_and_report_bad_audio(characters: Path, tmp_path: Path) -> None:
    cache = CharacterCache([characters])
    voice = run_job(
        make_job(
            request_id=1,
            character="tester",
            language="en",
            kind="voice",
            audio=make_ogg_opus(2.0, speech_like=True),
            pitch=3.0,
        ),
        cache,
    )
    assert voice["ok"] and voice["video_note"] and voice["size"] == 128
    assert abs(voice["duration_s"] - 2.0) < 0.1 and voice["mp4"][4:8] == b"ftyp"
    text = run_job(
        make_job(request_id=2, character="owl", language="ru", kind="text", text="Привет! Как дела?"), cache
    )
    assert text["ok"] and 0.5 < text["duration_s"] < 5
    bad = run_job(
        make_job(request_id=3, character="tester", language="en", kind="voice", audio=b"OggS" + b"\0" * 300),
        cache,
    )
    assert not bad["ok"] and bad["error_kind"] == "MediaError"
    gone = run_job(make_job(request_id=4, character="nobody", language="en", kind="text", text="Hi."), cache)
    assert not gone["ok"] and "nobody" in gone["error"]
    with pytest.raises(ValueError):
        make_job(request_id=5, character="tester", language="en", kind="voice")
