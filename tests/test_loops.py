"""The dispatcher's and the workshop's loops, stepped by hand, as huey tests itself.

A real huey queue (SqliteHuey on a file in a temporary folder) and a real state database; the
test plays the worker (takes the task off the queue, writes its heartbeats and its result, as
``bot.tasks`` does) and moves an injected clock, so every edge of the protocol is reached in
milliseconds: waiting, running, silent, too long, put back, lost, crashed, given up.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from huey.utils import Error

from bot.dispatcher import Dispatcher
from bot.inbox import Inbox
from bot.recorded_stories import RecordedStories
from bot.settings import Settings
from bot.store import Status, Store
from bot.storybook import Storybook
from bot.tasks import HEARTBEAT_PREFIX, RenderQueue
from bot.texts import t
from bot.watch import TaskState, TaskWatcher
from engine.characters import Catalogue
from tests.bot_harness import shared_assets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


class FakeBot:
    """Only what the collect and give-up paths call: ``send_message``, recorded."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, str]] = []

    async def send_message(self, chat_id: int, text: str, **_: Any) -> None:
        self.messages.append((chat_id, text))


class Worker:
    """Plays a render worker on the real queue: takes a task, beats, answers."""

    def __init__(self, queue: RenderQueue) -> None:
        self.huey = queue.huey
        self.beats = 0

    def take(self) -> str:
        task = self.huey.dequeue()
        assert task is not None, "nothing on the queue"
        self.task = task
        return task.id

    def beat(self) -> None:
        self.beats += 1
        self.huey.storage.put_data(
            HEARTBEAT_PREFIX + self.task.id,
            json.dumps({"beat": self.beats, "host": "test", "pid": 1}).encode(),
        )

    def answer(self, value: Any) -> None:
        self.huey.storage.put_data(self.task.id, self.huey.serializer.serialize(value))

    def put_back(self) -> None:
        """Interrupted (not killed): heartbeat gone, the same task back on the queue."""
        self.huey.storage.delete_data(HEARTBEAT_PREFIX + self.task.id)
        self.huey.enqueue(self.task)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    characters, stories = shared_assets()
    return Settings(
        _env_file=None,
        telegram_bot_token="123:test",
        data_dir=tmp_path / "data",
        characters_dirs=[characters],
        stories_dir=stories,
        default_character="tester",
        heartbeat_timeout_s=10,
        render_timeout_s=60,
        render_attempts=2,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_watcher_follows_a_task_through_every_state(settings: Settings) -> None:
    clock = Clock()
    queue = RenderQueue(settings)
    watcher = TaskWatcher(heartbeat_timeout_s=10, clock=clock)
    worker = Worker(queue)

    async def look(task_id: str) -> Any:
        watcher.new_pass()
        return await watcher.look(queue, task_id, run_limit_s=60)

    async def main() -> None:
        queue.enqueue({"job": 1}, "t1")
        assert (await look("t1")).state == TaskState.WAITING
        worker.take()
        seen = await look("t1")  # taken, no heartbeat yet
        assert seen.state == TaskState.UNSEEN
        worker.beat()
        assert (await look("t1")).state == TaskState.RUNNING
        for _ in range(7):  # a beating task runs on for as long as the limit allows (60 s + 10 s)
            clock.step(9)
            worker.beat()
            assert (await look("t1")).state == TaskState.RUNNING
        clock.step(9)
        worker.beat()
        too_long = await look("t1")
        assert too_long.state == TaskState.LOST and "too long" in too_long.reason

        queue.enqueue({"job": 2}, "t2")
        worker.take()
        worker.beat()
        assert (await look("t2")).state == TaskState.RUNNING
        clock.step(11)  # the same beat for longer than the timeout: killed mid-render
        silent = await look("t2")
        assert silent.state == TaskState.LOST and "went silent" in silent.reason

        queue.enqueue({"job": 3}, "t3")
        worker.take()
        worker.beat()
        assert (await look("t3")).state == TaskState.RUNNING
        clock.step(50)
        worker.put_back()
        back = await look("t3")
        assert back.state == TaskState.WAITING and back.waiting_since == clock.now
        worker.take()
        worker.beat()
        clock.step(30)  # a new run: its time limit counts from now, not from the first run
        worker.beat()
        assert (await look("t3")).state == TaskState.RUNNING
        worker.answer({"ok": True, "mp4": b"x"})
        done = await look("t3")
        assert done.state == TaskState.FINISHED and done.outcome == {"ok": True, "mp4": b"x"}

        queue.enqueue({"job": 4}, "t4")
        worker.take()
        worker.answer(Error({"error": "segfault in a codec"}))
        crashed = await look("t4")
        assert crashed.state == TaskState.CRASHED and "segfault" in crashed.reason

        assert (await look("never-enqueued")).state == TaskState.UNSEEN
        clock.step(11)
        lost = await look("never-enqueued")
        assert lost.state == TaskState.LOST and "lost" in lost.reason

    try:
        run(main())
    finally:
        queue.close()


def _dispatcher(settings: Settings, clock: Clock) -> tuple[Dispatcher, Store, RenderQueue, FakeBot]:
    store = Store(settings.state_path)
    queue = RenderQueue(settings)
    bot = FakeBot()
    catalogue = Catalogue(*settings.character_roots)
    dispatcher = Dispatcher(
        settings,
        store,
        queue,
        bot,
        catalogue,
        Storybook(settings.stories_dir),  # type: ignore[arg-type]
        Inbox(settings, store, bot),  # type: ignore[arg-type]
        recorded=RecordedStories(settings.recorded_stories_dir),
    )
    dispatcher.watcher = TaskWatcher(settings.heartbeat_timeout_s, clock=clock)
    return dispatcher, store, queue, bot


def test_the_dispatcher_retries_a_silent_worker_then_gives_up_with_the_rest_of_the_story(
    settings: Settings,
) -> None:
    clock = Clock()
    dispatcher, store, queue, bot = _dispatcher(settings, clock)
    worker = Worker(queue)
    rows = [
        dict(
            chat_id=7,
            user_id=7,
            kind="story",
            input="en/three-bears",
            character="tester",
            language="en",
            incoming_message_id=70,
            part=part,
            parts=2,
        )
        for part in range(2)
    ]
    first, second = store.add_requests(rows)

    async def main() -> None:
        await dispatcher._enqueue()
        assert store.get(first.id).status == Status.QUEUED
        for attempt in (1, 2):
            worker.take()
            worker.beat()
            await dispatcher._collect()
            assert store.get(first.id).status == Status.RENDERING
            clock.step(11)  # killed: the heartbeat stops
            await dispatcher._collect()
            if attempt == 1:
                assert (store.get(first.id).status, store.get(first.id).attempts) == (Status.RECEIVED, 1)
                await dispatcher._enqueue()  # a second attempt
                assert store.get(first.id).status == Status.QUEUED
        assert store.get(first.id).status == Status.FAILED and "went silent" in (
            store.get(first.id).error or ""
        )
        assert store.get(second.id).status == Status.FAILED  # the story stops where it broke
        assert bot.messages == [(7, t("render_failed", "en", name="Tester"))]  # one apology, not two

    try:
        run(main())
    finally:
        queue.close()
        store.close()


def test_the_dispatcher_puts_back_an_interrupted_render_and_takes_a_users_error_as_final(
    settings: Settings,
) -> None:
    clock = Clock()
    dispatcher, store, queue, bot = _dispatcher(settings, clock)
    worker = Worker(queue)
    (request,) = store.add_requests(
        [
            dict(
                chat_id=8,
                user_id=8,
                kind="text",
                input="Hello there.",
                character="tester",
                language="en",
                incoming_message_id=80,
            )
        ]
    )

    async def main() -> None:
        await dispatcher._enqueue()
        worker.take()
        worker.beat()
        await dispatcher._collect()
        assert store.get(request.id).status == Status.RENDERING
        worker.put_back()
        await dispatcher._collect()
        assert store.get(request.id).status == Status.QUEUED  # waits again, no attempt spent
        assert store.get(request.id).attempts == 1
        worker.take()
        worker.answer(
            {"ok": False, "error": "no speech in it", "error_kind": "InputError", "user_error": True}
        )
        await dispatcher._collect()
        failed = store.get(request.id)
        assert failed.status == Status.FAILED and "no speech" in (failed.error or "")
        assert bot.messages == [
            (8, t("render_failed", "en", name="Tester"))
        ]  # a text: nothing of theirs to blame

    try:
        run(main())
    finally:
        queue.close()
        store.close()


def test_the_workshop_puts_back_an_interrupted_maker_and_ends_a_cancelled_job(
    settings: Settings, tmp_path: Path
) -> None:
    from bot.character_store import CharacterStore
    from bot.making import Workshop
    from bot.store import MakeStatus
    from bot.tasks import MakeQueue

    clock = Clock()
    store = Store(settings.state_path)
    queues = {"cpu": MakeQueue(settings, "cpu")}
    bot = FakeBot()
    workshop = Workshop(
        settings,
        store,
        queues,
        bot,
        Catalogue(*settings.character_roots),  # type: ignore[arg-type]
        CharacterStore(settings.made_characters_dir),
    )
    workshop.watcher = TaskWatcher(settings.heartbeat_timeout_s, clock=clock)
    worker = Worker(queues["cpu"])  # type: ignore[arg-type]
    picture = tmp_path / "face.png"
    picture.write_bytes(b"\x89PNG not really")
    job = store.add_make_job(
        user_id=5,
        chat_id=5,
        name="Moth",
        character_id="moth",
        language="en",
        voice={"language": "en"},
        options={"landmarks": "face"},
        picture_path=str(picture),
        route="cpu",
    )
    assert job is not None

    async def main() -> None:
        await workshop._enqueue()
        worker.take()
        worker.beat()
        await workshop._collect()
        assert store.make_job(job.id).status == MakeStatus.RUNNING
        worker.put_back()
        await workshop._collect()
        assert store.make_job(job.id).status == MakeStatus.QUEUED
        worker.take()
        worker.beat()
        await workshop._collect()
        clock.step(11)  # the maker went silent: a second attempt, on the same route
        await workshop._collect()
        assert store.make_job(job.id).status == MakeStatus.QUEUED and store.make_job(job.id).attempts == 1
        await workshop._enqueue()
        worker.take()
        worker.answer(
            {
                "ok": False,
                "error": "making the character was cancelled",
                "error_kind": "CancelledError",
                "cancelled": True,
            }
        )
        await workshop._collect()
        assert store.make_job(job.id).status == MakeStatus.CANCELLED

    try:
        run(main())
    finally:
        queues["cpu"].close()
        store.close()
