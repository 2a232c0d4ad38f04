"""``gramophone bot`` as a real process: one command runs the bot and its render workers, and a
``kill -9`` in the middle of the work loses nothing and answers every request exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bot_harness import ROOT, Stack, settings_env, shared_assets
from tests.fake_telegram import FakeBotApi, make_ogg_opus


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.05)


def _start(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRAMOPHONE_")}
    env.update(settings_env(stack.settings(heartbeat_timeout_s=3, poll_interval_s=0.1)))
    env["PYTHONPATH"] = str(ROOT)
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "bot"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _kill_9(bot: subprocess.Popen[bytes], workers: list[int]) -> None:
    """SIGKILL the bot, then wait for its orphaned embedded workers to notice and exit."""
    if bot.poll() is None:
        bot.kill()
    bot.wait(10)
    _wait(lambda: not any(_alive(pid) for pid in workers), 60, "the orphaned worker to finish and exit")


def _statuses(stack: Stack) -> list[str]:
    try:
        return [row["status"] for row in stack.requests()]
    except Exception:  # noqa: BLE001 -- the database may not exist yet
        return []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the embedded worker")
def test_kill_9_loses_nothing_and_answers_each_request_once(tmp_path: Path) -> None:
    characters, stories = shared_assets()
    log = tmp_path / "bot.log"
    with FakeBotApi() as api:
        stack = Stack(api, tmp_path / "data", characters, stories)
        voices = [
            api.send_voice(chat, make_ogg_opus(seconds, speech_like=True), duration=seconds)
            for chat in (1, 2, 3)
            for seconds in (8, 5)
        ]
        asked = {
            (api.update(u)["message"]["chat"]["id"], api.update(u)["message"]["message_id"]) for u in voices
        }
        # The first bot cannot deliver anything (Telegram answers 503), so whatever it rendered
        # is still owed when it dies.
        api.fail_next("sendVideoNote", status=503, times=10_000)
        first = _start(stack, log)
        workers: list[int] = []
        try:
            _wait(
                lambda: (
                    "rendered" in _statuses(stack)
                    and any(s in ("received", "queued", "rendering") for s in _statuses(stack))
                ),
                60,
                "some requests rendered and others still in the works",
            )
            workers = _children(first.pid)
            assert workers, "the bot started no embedded worker"
        finally:
            _kill_9(first, workers)
        api.reset()  # Telegram works again

        second = _start(stack, log)
        try:
            _wait(
                lambda: len(_statuses(stack)) == 6 and set(_statuses(stack)) == {"sent"},
                90,
                "every request to be sent",
            )
            time.sleep(1.5)  # a duplicate would arrive now
            answers = [
                (m.chat_id, m.params["reply_parameters"]["message_id"])
                for m in api.sent_messages()
                if m.method == "sendVideoNote"
            ]
            assert sorted(answers) == sorted(asked), "each voice note must be answered exactly once"
            for chat in (1, 2, 3):  # and in the order the child asked
                order = [message_id for chat_id, message_id in answers if chat_id == chat]
                assert order == sorted(order), f"chat {chat} answered out of order: {order}"
            workers = _children(second.pid)
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
            _wait(
                lambda: not any(_alive(pid) for pid in workers),
                30,
                "the embedded worker to stop with the bot",
            )
        finally:
            if second.poll() is None:
                second.kill()
            output = log.read_text(errors="replace")
        assert "TELEGRAM_BOT_TOKEN" not in output and api.token not in output
        assert "Traceback" not in output, output[-3000:]


def test_an_interrupted_worker_puts_its_render_back_on_the_queue(tmp_path: Path) -> None:
    """SIGTERM to a worker interrupts the render in progress; the task goes back on the queue
    under the same id (no waiting for a heartbeat timeout) and the next worker finishes it."""
    from bot.jobs import make_job
    from bot.settings import Settings
    from bot.tasks import RenderQueue
    from tests.bot_harness import Worker

    characters, _ = shared_assets()
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", characters_dirs=[characters], worker_health_check_s=1
    )
    queue = RenderQueue(settings)
    job = make_job(
        request_id=1,
        character="tester",
        language="en",
        kind="voice",
        audio=make_ogg_opus(40, speech_like=True),
    )
    queue.enqueue(job, "task-1")
    first = Worker(settings, workers=1).start()
    second = None
    try:
        _wait(lambda: queue.heartbeat("task-1") is not None, 60, "the render to start")
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(30) == 0
        assert "put back on the queue" in first.output()
        assert queue.outcome("task-1") is None and queue.heartbeat("task-1") is None
        assert "task-1" in queue.pending_ids()
        second = Worker(settings, workers=1).start()
        _wait(lambda: queue.outcome("task-1") is not None, 60, "the second worker to finish it")
        result = queue.outcome("task-1")
        assert result is not None and result["ok"] and abs(result["duration_s"] - 40) < 0.1
    finally:
        first.stop()
        if second is not None:
            second.stop()
        queue.close()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the embedded worker")
def test_kill_9_during_a_download_answers_after_the_restart_and_debug_logs_hide_the_token(
    tmp_path: Path,
) -> None:
    """The request row (with the file id) is written before the download, so a bot killed while
    it downloads still owes the answer, and the next one fetches the file and answers. Both run
    at DEBUG, the most talkative level: the token must not appear in a single line."""
    from tests.fake_telegram import DOWNLOAD

    characters, stories = shared_assets()
    log = tmp_path / "bot.log"
    with FakeBotApi() as api:
        stack = Stack(api, tmp_path / "data", characters, stories, defaults=dict(log_level="DEBUG"))
        api.fail_next(DOWNLOAD, status=None, delay=60)  # the first download hangs
        update = api.send_voice(7, make_ogg_opus(3.0, speech_like=True), duration=3)
        asked = api.update(update)["message"]["message_id"]
        first = _start(stack, log)
        workers: list[int] = []
        try:
            _wait(
                lambda: _statuses(stack) == ["fetching"] and any(c.method == "getFile" for c in api.calls),
                60,
                "the bot to record the voice note and start downloading it",
            )
            time.sleep(0.5)
            workers = _children(first.pid)
        finally:
            _kill_9(first, workers)
        assert _statuses(stack) == ["fetching"]

        second = _start(stack, log)
        try:
            _wait(lambda: _statuses(stack) == ["sent"], 90, "the voice note to be answered")
            answers = [m for m in api.sent_messages(7) if m.method == "sendVideoNote"]
            assert [m.params["reply_parameters"]["message_id"] for m in answers] == [asked]
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        finally:
            if second.poll() is None:
                second.kill()
        output = log.read_text(errors="replace")
        data = stack.data_dir
        modes = {
            path.name: path.stat().st_mode & 0o777
            for path in (data, data / "inbox", data / "results", data / "state.db")
        }
    assert modes == {"data": 0o700, "inbox": 0o700, "results": 0o700, "state.db": 0o600}, (
        "children's data is the bot user's alone"
    )
    assert " DEBUG " in output, "the bot did not log at DEBUG"
    assert api.token not in output and api.token.split(":")[1] not in output
    assert "<redacted>" in output  # PTB logs the API URL with the token at DEBUG: now redacted
