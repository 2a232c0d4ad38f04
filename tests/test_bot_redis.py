"""Redis mode: the bot enqueues to Redis and separate ``bot.worker`` processes (standing in for
other machines) render; the workers have no token and no state database. Skipped cleanly when
``redis-server`` is not installed (CI installs it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bot_harness import (
    Stack,
    Worker,
    free_port,
    probe_mp4,
    redis_server,
    run,
    running_bot,
    shared_assets,
    until,
    videos,
)
from tests.fake_telegram import FakeBotApi, make_ogg_opus

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture(autouse=True)
def _timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def test_redis_mode_with_two_worker_machines(tmp_path: Path) -> None:
    characters, stories = shared_assets()
    port = free_port()
    server = redis_server(port, tmp_path)
    assert server is not None
    workers: list[Worker] = []
    try:
        with FakeBotApi() as api:
            stack = Stack(
                api, tmp_path / "data", characters, stories, redis_url=f"redis://127.0.0.1:{port}/0"
            )
            for name in ("machine-a", "machine-b"):
                settings = stack.settings(data_dir=tmp_path / name)  # nothing shared but Redis
                workers.append(Worker(settings, workers=1).start())
            chats = (1, 2, 3)

            async def main() -> None:
                async with running_bot(stack.settings()):
                    for chat in chats:
                        api.send_voice(chat, make_ogg_opus(3.0, speech_like=True), duration=3)
                        api.send_text(chat, "And a few words, please.")
                    await api.wait_for(lambda c: c.method == "sendVideoNote", count=6, timeout=120)
                    await until(
                        lambda: (
                            all(r["status"] == "sent" for r in stack.requests())
                            and len(stack.requests()) == 6
                        )
                    )

            run(main(), timeout=240)
            for chat in chats:
                sent = videos(api, chat)
                assert len(sent) == 2
                assert probe_mp4(sent[0].file, tmp_path).audio_codec == "aac"
            assert not (tmp_path / "data" / "queue.db").exists()  # the queue is Redis
            logs = "".join(worker.output() for worker in workers)
            assert logs.count("executed in") == 6
            assert all("executed in" in worker.output() for worker in workers), (
                "both machines should have rendered"
            )
            assert not any((tmp_path / name / "state.db").exists() for name in ("machine-a", "machine-b"))
    finally:
        for worker in workers:
            worker.stop()
        server.terminate()
        server.wait(10)
