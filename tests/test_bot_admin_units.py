"""Fast checks of the admin side that need no Telegram: the make-jobs table and its migration,
names and ids, publishing a character atomically (and refusing a hostile result), deleting and
renaming, the make job a worker runs, and the settings for both makers."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
import time
from pathlib import Path

import pytest

from bot import store as store_module
from bot.character_store import CharacterStore, PublishError, clean_name, slugify, unique_id
from bot.make_jobs import make_make_job, tar_folder
from bot.settings import Settings
from bot.store import Store
from engine.characters import Catalogue
from tests.bot_harness import shared_assets

# -- the make-jobs table -------------------------------------------------------------------------


def _job(**values: object) -> dict[str, object]:
    row: dict[str, object] = dict(
        user_id=7,
        chat_id=7,
        name="Bunny",
        character_id="bunny",
        language="en",
        voice={"language": "en", "voice": "en-us+f3"},
        options={"mouth": [10, 20]},
        picture_path="/tmp/p.png",
        route="cpu",
        status_message_id=5,
    )
    row.update(values)
    return row


def test_make_jobs_compare_and_set_and_place_in_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    first = store.add_make_job(**_job())
    assert first is not None and first.status == "queued" and first.attempts == 0
    assert first.voice_settings["voice"] == "en-us+f3" and first.option_values["mouth"] == [10, 20]
    assert store.add_make_job(**_job()) is None  # the same confirmation twice: one job
    second = store.add_make_job(**_job(character_id="cat", status_message_id=6))
    gpu = store.add_make_job(**_job(character_id="dog", status_message_id=7, route="gpu"))
    assert second is not None and gpu is not None
    assert (store.make_jobs_ahead(first), store.make_jobs_ahead(second), store.make_jobs_ahead(gpu)) == (
        0,
        1,
        0,
    )
    assert store.annotate_make_job(first.id, "queued", task_id="t1", attempts=1)
    assert store.transition_make_job(first.id, "queued", "running", stage="puppet", progress=0.5)
    assert not store.transition_make_job(first.id, "queued", "cancelled")  # stale: no effect
    assert store.transition_make_job(first.id, ("queued", "running"), "ready", path_used="puppet")
    assert store.reserved_character_ids() == {"bunny", "cat", "dog"}
    assert [job.id for job in store.make_jobs("queued", "running")] == [second.id, gpu.id]
    assert [job.id for job in store.make_jobs(limit=2, newest_first=True)] == [gpu.id, second.id]
    with pytest.raises(ValueError):
        store.transition_make_job(first.id, "ready", "exploded")
    with pytest.raises(ValueError):
        store.add_make_job(**_job(route="tpu", status_message_id=8))
    store.close()


def test_store_upgrades_a_version_2_file_keeping_its_data(tmp_path: Path) -> None:
    import sqlite_utils

    path = tmp_path / "state.db"
    connection = sqlite3.connect(path, isolation_level=None)
    for migration in store_module.MIGRATIONS[:2]:
        migration(sqlite_utils.Database(connection))
    connection.execute("PRAGMA user_version = 2")
    now = time.time()
    connection.execute("INSERT INTO chats VALUES (5, 'ru', 'owl', ?, ?)", [now, now])
    connection.execute(
        "INSERT INTO requests (chat_id, kind, status, input, incoming_message_id, created, updated, "
        "input_path) "
        "VALUES (5, 'voice', 'queued', 'FILE', 3, ?, ?, '/x.ogg')",
        [now, now],
    )
    connection.close()
    store = Store(path)
    assert store.version == store_module.SCHEMA_VERSION == 4
    assert store.chat(5).character == "owl"
    (request,) = store.active()
    assert (request.input, request.input_path) == ("FILE", "/x.ogg")
    assert store.make_jobs() == [] and store.add_make_job(**_job()) is not None
    store.close()


# -- names and ids -------------------------------------------------------------------------------


def test_names_are_cleaned_and_ids_are_safe_unique_slugs() -> None:
    assert clean_name("  Mr.\tBunny \u200b ") == "Mr. Bunny"
    assert clean_name("Ёжик\nв тумане") == "Ёжик в тумане"
    assert (
        clean_name("") is None
        and clean_name("   ") is None
        and clean_name("x" * 41) is None
        and clean_name(None) is None
    )
    assert slugify("Mr. Бобр Ёжиков!") == "mr-bobr-ezhikov"
    assert slugify("Café Olé") == "cafe-ole"
    for hostile in ("../../etc/passwd", "..", "/", ".tmp-x-1", "CON", "🦊🦊"):
        slug = slugify(hostile)
        assert slug and "/" not in slug and not slug.startswith((".", "-")), slug
    assert slugify("🦊") == "character"
    assert len(slugify("a" * 100)) == 40
    assert unique_id("Fox", {"fox"}) == "fox-2" and unique_id("Fox", {"fox", "fox-2"}) == "fox-3"
    assert unique_id("Fox", set()) == "fox"
    long = unique_id("b" * 60, {"b" * 40})
    assert long == "b" * 38 + "-2" and len(long) == 40


# -- publishing ----------------------------------------------------------------------------------


def _character_folder(tmp_path: Path, identifier: str = "bunny", name: str = "Bunny") -> Path:
    """A built character folder (the shared tiny test face under another id)."""
    characters, _ = shared_assets()
    folder = tmp_path / "made" / identifier
    folder.mkdir(parents=True)
    for file in ("speech.mp4", "idle.mp4", "library.gchar"):
        shutil.copy(characters / "tester" / file, folder / file)
    (folder / "character.toml").write_text(
        f'id = "{identifier}"\nname = "{name}"\nlanguage = "en"\n\n[greeting]\nen = "Hello! I am {name}."\n'
        f'ru = "Привет!"\n\n[library]\nsource = "video"\nspeech_video = "speech.mp4"\n'
        'idle_video = "idle.mp4"\nsize = 128\n',
        encoding="utf-8",
    )
    return folder


def test_publish_is_atomic_idempotent_and_refuses_collisions(tmp_path: Path) -> None:
    root = tmp_path / "characters"
    store = CharacterStore(root)
    data = tar_folder(_character_folder(tmp_path))
    character = store.publish("bunny", 3, data, {"path": "puppet"})
    assert character.id == "bunny" and character.is_built and character.folder == root / "bunny"
    assert store.made_by("bunny")["job"] == 3 and store.made_by("bunny")["path"] == "puppet"
    assert [path.name for path in root.iterdir()] == ["bunny"]  # no staging left behind
    assert store.publish("bunny", 3, data, {}).id == "bunny"  # after a restart: already there
    with pytest.raises(PublishError, match="exists already"):
        store.publish("bunny", 4, data, {})
    assert "bunny" in Catalogue(root).characters and store.owns(Catalogue(root).get("bunny"))
    with pytest.raises(PublishError, match="id 'bunny'"):
        store.publish("other", 5, data, {})
    assert sorted(path.name for path in root.iterdir()) == ["bunny"]


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, payload in entries:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def test_publish_refuses_hostile_or_broken_results(tmp_path: Path) -> None:
    root = tmp_path / "characters"
    store = CharacterStore(root)
    escape = tarfile.TarInfo("../../evil.txt")
    escape.size = 4
    link = tarfile.TarInfo("library.gchar")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    absolute = tarfile.TarInfo("/tmp/evil.txt")
    absolute.size = 4
    for entries in ([(escape, b"evil")], [(link, None)], [(absolute, b"evil")]):
        with pytest.raises(PublishError):
            store.publish("bunny", 1, _tar(entries), {})
    with pytest.raises(PublishError, match="does not load"):
        store.publish("bunny", 2, _tar([]), {})
    with pytest.raises((PublishError, tarfile.TarError)):
        store.publish("bunny", 3, b"not a tar at all", {})
    assert not (tmp_path / "evil.txt").exists() and not root.joinpath("bunny").exists()
    assert [path.name for path in root.iterdir()] == []


def test_delete_and_rename(tmp_path: Path) -> None:
    root = tmp_path / "characters"
    store = CharacterStore(root)
    store.publish("bunny", 1, tar_folder(_character_folder(tmp_path)), {})
    old, new = store.rename("bunny", 'Big "Bad" Bunny')
    assert (old, new) == ("Bunny", 'Big "Bad" Bunny')
    character = Catalogue(root).get("bunny")
    assert (
        character.name == 'Big "Bad" Bunny' and character.greeting_for("en") == 'Hello! I am Big "Bad" Bunny.'
    )
    assert character.greeting_for("ru") == "Привет!" and character.is_built
    with pytest.raises(ValueError):
        store.rename("../x", "X")
    with pytest.raises(PublishError):
        store.rename("nobody", "X")
    assert store.delete("bunny") and not store.delete("bunny")
    assert "bunny" not in Catalogue(root).characters and list(root.iterdir()) == []
    (root / ".tmp-cat-9" / "cat").mkdir(parents=True)
    (root / ".tmp-dog-8").mkdir()
    store.clean_up(keep={".tmp-dog-8"})
    assert [path.name for path in root.iterdir()] == [".tmp-dog-8"]


# -- the make job and settings -------------------------------------------------------------------


def test_make_job_dict_is_plain_and_checked() -> None:
    job = make_make_job(
        job_id=1,
        character_id="bunny",
        name="Bunny",
        language="en",
        voice={"language": "en"},
        picture=b"\x89PNG...",
        picture_suffix="PNG",
        mouth=[10, 20],
        eyes=[[1, 2], [3, 4]],
        route="gpu",
    )
    assert (
        job["picture_suffix"] == ".png"
        and job["mouth"] == (10.0, 20.0)
        and job["eyes"] == ((1.0, 2.0), (3.0, 4.0))
    )
    assert (
        make_make_job(
            job_id=1, character_id="b", name="B", language="en", voice={}, picture=b"x", picture_suffix=".exe"
        )["picture_suffix"]
        == ".img"
    )
    with pytest.raises(ValueError):
        make_make_job(job_id=1, character_id="b", name="B", language="en", voice={}, picture=b"")
    with pytest.raises(ValueError):
        make_make_job(
            job_id=1, character_id="b", name="B", language="en", voice={}, picture=b"x", route="tpu"
        )


def test_settings_for_makers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GRAMOPHONE_FLP_MODE", "GRAMOPHONE_DATA_DIR", "GRAMOPHONE_CHARACTERS_DIRS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, characters_dirs=[tmp_path / "mine"], data_dir=tmp_path / "data")
    assert settings.character_roots == [tmp_path / "mine", tmp_path / "data" / "characters"]
    assert not settings.gpu_configured and settings.flp_config() is None and settings.flp_reference() is None
    default = Settings(_env_file=None, data_dir=tmp_path / "data")
    assert default.character_roots == default.characters_dirs  # the made folder is a default root already
    monkeypatch.setenv("GRAMOPHONE_FLP_MODE", "http")
    monkeypatch.setenv("GRAMOPHONE_FLP_URL", "http://gpu:9871")
    monkeypatch.setenv("GRAMOPHONE_FLP_REFERENCE_SPEECH", "/ref/speech.mp4")
    monkeypatch.setenv("GRAMOPHONE_FLP_REFERENCE_IDLE", "/ref/idle.mp4")
    gpu = Settings(_env_file=None)
    assert gpu.gpu_configured and gpu.flp_reference() == (Path("/ref/speech.mp4"), Path("/ref/idle.mp4"))
    assert "GPU (FLP http)" in gpu.describe() and "gpu:9871" not in repr(gpu)
    with pytest.raises(ValueError):
        Settings(_env_file=None, flp_mode="tpu")
    json.dumps(
        make_make_job(job_id=1, character_id="b", name="B", language="en", voice={}, picture=b"x")["voice"]
    )


def test_stages_and_when_the_cpu_can_take_over(tmp_path: Path) -> None:
    from bot.job_view import stage_text
    from bot.making import _cpu_can_make
    from engine.makers import make

    assert stage_text(make.STAGE_GPU, "gpu", "en") == "animating on GPU"
    assert stage_text(make.STAGE_CPU, "cpu", "ru") == "оживляем на процессоре"
    assert stage_text(make.STAGE_BUILD, "cpu", "en") == "building library"
    assert (
        stage_text(None, "cpu", "en") == "starting"
        and stage_text("something new", "cpu", "en") == "something new"
    )
    store = Store(tmp_path / "state.db")
    face = store.add_make_job(**_job(options={"landmarks": "face"}))
    manual = store.add_make_job(
        **_job(status_message_id=6, options={"landmarks": "mouth", "mouth": [1, 2], "eyes": [[0, 0], [2, 0]]})
    )
    gpu_only = store.add_make_job(
        **_job(status_message_id=7, options={"landmarks": "gpu", "mouth": None, "eyes": None})
    )
    assert face and manual and gpu_only
    assert _cpu_can_make(face) and _cpu_can_make(manual) and not _cpu_can_make(gpu_only)
    store.close()


def test_an_admins_updates_are_handled_one_at_a_time() -> None:
    """Children's updates run concurrently; one admin's run in order (the conversation needs it)."""
    import asyncio
    from types import SimpleNamespace

    from bot.app import UpdateProcessor

    order: list[str] = []

    async def handle(name: str, pause: float) -> None:
        order.append(f"{name} start")
        await asyncio.sleep(pause)
        order.append(f"{name} end")

    def update(user: int) -> object:
        return SimpleNamespace(effective_user=SimpleNamespace(id=user))

    async def main() -> None:
        processor = UpdateProcessor(8, serial_users=[1])
        await asyncio.gather(
            processor.process_update(update(1), handle("admin-a", 0.05)),
            processor.process_update(update(1), handle("admin-b", 0.0)),
            processor.process_update(update(2), handle("child-a", 0.05)),
            processor.process_update(update(2), handle("child-b", 0.0)),
        )

    asyncio.run(main())
    assert order.index("admin-a end") < order.index("admin-b start")
    assert order.index("child-b end") < order.index("child-a end")


def test_a_draft_pickled_by_an_earlier_version_as_a_dict_still_loads() -> None:
    """Admins' half-finished /newcharacter drafts survive an upgrade: a dict becomes a Draft, keys
    it no longer knows are dropped, and a Draft round-trips through pickle (PicklePersistence)."""
    import pickle

    from bot.handlers.newcharacter import Draft

    old = {
        "name": "Rose",
        "id": "rose",
        "takes": ["/data/pictures/1-2-speech.mp4"],
        "parts": ["a", "b"],
        "landmarks": "person",
        "an_old_key": 3,
    }
    draft = Draft.of(old)
    assert (draft.name, draft.takes, draft.parts, draft.voice) == ("Rose", old["takes"], ["a", "b"], None)
    assert pickle.loads(pickle.dumps(draft)) == draft
    with pytest.raises(AttributeError):
        draft.update(nmae="typo")
