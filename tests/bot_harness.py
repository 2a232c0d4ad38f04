"""What the bot's end-to-end tests share: small characters, stories, a fake Telegram, real workers.

Nothing here is mocked: the bot under test is :class:`bot.app.GramophoneBot` (the same object
``gramophone bot`` runs), talking HTTP to :class:`tests.fake_telegram.FakeBotApi`, queueing to a
real huey queue consumed by real ``python -m bot.worker`` processes that render with the engine.
Characters are 128 px so renders take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import GramophoneBot
from bot.settings import Settings
from bot.worker import worker_environment
from engine import synthetic
from engine.characters import Catalogue, ensure_library
from tests.fake_telegram import FakeBotApi

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128

CHARACTER_TOML = """\
id = "{id}"
name = "{name}"
description = "{description}"
language = "en"
pitch_semitones = {pitch}

[greeting]
en = "Hello! I am {name}."
ru = "Привет! Я {name}."

[voices.ru]
voice = "ru"

[library]
source = "video"
crop = "centre"
speech_video = "speech.mp4"
idle_video = "idle.mp4"
size = {size}
"""

STORIES = {
    "en/three-bears": (
        "The Three Bears\n\n"
        "Once there were three bears. They lived in a house in the wood. "
        "One day they made some porridge. It was too hot, so they went for a walk. "
        "A girl called Goldilocks came to the house. She ate the porridge of the little bear. "
        "Then she sat in his chair, and it broke. She went upstairs and fell asleep. "
        "The bears came home and found her. She woke up and ran away. The end."
    ),
    "en/short": "A Short One\n\nThe cat sat on the mat. The end.",
    "ru/repka": (
        "Репка\n\nПосадил дед репку. Выросла репка большая-пребольшая. "
        "Стал дед репку из земли тянуть. Тянет-потянет, вытянуть не может."
    ),
}


def write_character(
    folder: Path, identifier: str, name: str, description: str, pitch: float = 3.0, size: int = SIZE
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "character.toml").write_text(
        CHARACTER_TOML.format(id=identifier, name=name, description=description, pitch=pitch, size=size),
        encoding="utf-8",
    )
    return folder


def build_characters(root: Path) -> Path:
    """Two characters sharing one tiny synthetic face: "tester" (the default) and "owl"."""
    tester = write_character(root / "tester", "tester", "Tester", "A friendly test face")
    synthetic.write_character_videos(tester, seed=1, duration_s=30, size=SIZE, style="test", idle_s=6)
    ensure_library(Catalogue(root).get("tester"))
    owl = write_character(root / "owl", "owl", "Owl", "A wise old owl", pitch=-2.0)
    for name in ("speech.mp4", "idle.mp4", "library.gchar"):
        shutil.copy(tester / name, owl / name)
    return root


def write_stories(root: Path) -> Path:
    for key, text in STORIES.items():
        path = root / f"{key}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


_SHARED: dict[str, Path] = {}


def shared_assets() -> tuple[Path, Path]:
    """(characters, stories) built once per test process and shared by every bot test module
    (building the tiny character takes a few seconds; nothing writes to it afterwards)."""
    if not _SHARED:
        import atexit
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="gramophone-bot-tests-"))
        atexit.register(shutil.rmtree, root, True)
        _SHARED["characters"] = build_characters(root / "characters")
        _SHARED["stories"] = write_stories(root / "stories")
    return _SHARED["characters"], _SHARED["stories"]


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as the environment of a ``gramophone bot`` process (what a deployment sets)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name == "telegram_bot_token":
            env["TELEGRAM_BOT_TOKEN"] = settings.token()
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = json.dumps([str(item) for item in value])
        env[f"GRAMOPHONE_{name.upper()}"] = str(value)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Worker:
    """A ``python -m bot.worker`` process (a huey consumer with render processes; with ``route``
    ``"cpu"`` or ``"gpu"``, a maker of new characters)."""

    settings: Settings
    workers: int = 2
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    route: str | None = None

    def start(self) -> Worker:
        env = {key: value for key, value in os.environ.items() if not key.startswith("GRAMOPHONE_")}
        env.pop("TELEGRAM_BOT_TOKEN", None)
        env.update(worker_environment(self.settings))
        env["PYTHONPATH"] = str(ROOT)
        self.log_path = self.settings.data_dir / f"worker-{self.route or 'render'}-{time.monotonic_ns()}.log"
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "bot.worker", "--workers", str(self.workers), "--no-prebuild"]
        if self.route is not None:
            command.append("--make" if self.route == "cpu" else "--gpu")
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        log.close()
        return self

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            process.send_signal(sig)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


@dataclass
class Stack:
    """Fake Telegram + data dir + characters + stories + settings for bots under test."""

    api: FakeBotApi
    data_dir: Path
    characters: Path
    stories: Path
    redis_url: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    worker: Worker | None = None

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            telegram_bot_token=self.api.token,
            bot_api_url=self.api.root_url,
            data_dir=self.data_dir,
            redis_url=self.redis_url,
            characters_dirs=[self.characters],
            default_character="tester",
            stories_dir=self.stories,
            workers=2,
            poll_timeout_s=1,
            poll_interval_s=0.1,
            heartbeat_timeout_s=10,  # generous: a loaded CI machine may starve a worker for a while
            chat_action_interval_s=1,
            worker_health_check_s=1,
            send_read_timeout_s=10,
            story_part_chars=120,
        )
        values.update(self.defaults)
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def state(self) -> sqlite3.Connection:
        """A read-only look at the bot's state database."""
        connection = sqlite3.connect(f"file:{self.data_dir / 'state.db'}?mode=ro", uri=True, timeout=10)
        connection.row_factory = sqlite3.Row
        return connection

    def requests(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        with contextlib.closing(self.state()) as connection:
            sql = (
                "SELECT * FROM requests"
                + (" WHERE chat_id = ?" if chat_id is not None else "")
                + " ORDER BY id"
            )
            return [dict(row) for row in connection.execute(sql, [] if chat_id is None else [chat_id])]


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, webhook_url: str | None = None) -> AsyncIterator[GramophoneBot]:
    bot = GramophoneBot(settings)
    await bot.start(webhook_url)
    try:
        yield bot
    finally:
        await bot.stop()


def run(coro: Awaitable[None], timeout: float = 180) -> None:
    """``asyncio.run`` with a hard cap, so a hang fails the test instead of the suite."""

    async def capped() -> None:
        await asyncio.wait_for(coro, timeout=timeout)

    asyncio.run(capped())


async def until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.05)


def videos(api: FakeBotApi, chat_id: int) -> list[Any]:
    """Video notes and videos the bot sent to a chat, oldest first."""
    return [m for m in api.sent_messages(chat_id) if m.method in ("sendVideoNote", "sendVideo")]


def texts(api: FakeBotApi, chat_id: int) -> list[str]:
    return [m.text or "" for m in api.sent_messages(chat_id) if m.method == "sendMessage"]


def heartbeat(settings: Settings, task_id: str) -> dict[str, Any] | None:
    """A task's heartbeat as the worker wrote it (its pid is how a test kills that worker)."""
    from bot.tasks import RenderQueue

    queue = RenderQueue(settings)
    try:
        return queue.heartbeat(task_id)
    finally:
        queue.close()


def probe_mp4(data: bytes, tmp: Path) -> Any:
    from engine.media import probe

    path = tmp / f"probe-{time.monotonic_ns()}.mp4"
    path.write_bytes(data)
    return probe(path)


def redis_server(port: int, folder: Path) -> subprocess.Popen[bytes] | None:
    """``redis-server`` on 127.0.0.1:port without persistence, or None when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


__all__ = [
    "Stack",
    "Worker",
    "build_characters",
    "shared_assets",
    "settings_env",
    "write_stories",
    "running_bot",
    "run",
    "until",
    "videos",
    "texts",
    "heartbeat",
    "probe_mp4",
    "free_port",
    "redis_server",
    "write_character",
]
