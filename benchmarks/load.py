"""Load benchmark of the bot: many children at once, through the fake Telegram, real renders.

30 chats each send a 10 s voice note at the same moment. The bot is the real one
(:class:`bot.app.GramophoneBot`) against :class:`tests.fake_telegram.FakeBotApi`; rendering is done

1. in embedded mode: the SQLite queue and the bot's own worker child (what ``gramophone bot``
   runs), with ``--workers`` render processes;
2. in Redis mode: ``redis-server`` on a loopback port and ``--redis-workers`` separate
   ``gramophone worker`` processes (standing in for machines), each with
   ``--workers-per-process`` render processes.

For each it checks that every chat got exactly one answer and prints the time from the voice
note to its answer (p50, p95, max) and the throughput in seconds of video per second of wall
time. A warm-up message is answered before the clock starts, so worker start-up is not counted.
Run by hand (a few minutes on 2 cores; the 512 px character is built once and cached under
``benchmarks/results/``)::

    python benchmarks/load.py                       # 30 chats, 10 s each, 512 px
    python benchmarks/load.py --chats 10 --size 256 --skip-redis
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.settings import Settings  # noqa: E402
from bot.worker import EmbeddedWorker, worker_environment  # noqa: E402
from tests.bot_harness import (  # noqa: E402
    free_port,
    redis_server,
    running_bot,
    write_character,
    write_stories,
)
from tests.fake_telegram import FakeBotApi, make_ogg_opus  # noqa: E402

log = logging.getLogger("load")
RESULTS = ROOT / "benchmarks" / "results"


def character(size: int) -> Path:
    """A characters root holding one synthetic character of ``size`` px, built once and cached."""
    from engine import synthetic
    from engine.characters import Catalogue, ensure_library

    root = RESULTS / f"load-characters-{size}"
    folder = root / "loadtest"
    if not (folder / "library.gchar").exists():
        write_character(folder, "loadtest", "Load Test", "A synthetic face", size=size)
        print(f"building a {size} px character (once; cached in {root})...", flush=True)
        started = time.perf_counter()
        synthetic.write_character_videos(folder, seed=1, duration_s=40, size=size, style="test", idle_s=8)
        ensure_library(Catalogue(root).get("loadtest"))
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def settings_for(api: FakeBotApi, data_dir: Path, characters: Path, stories: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        telegram_bot_token=api.token,
        bot_api_url=api.root_url,
        data_dir=data_dir,
        characters_dirs=[characters],
        default_character="loadtest",
        stories_dir=stories,
        poll_timeout_s=1,
        poll_interval_s=0.2,
        log_level="WARNING",
        **values,
    )


async def _load(
    api: FakeBotApi, settings: Settings, chats: int, seconds: float, note: bytes
) -> dict[str, Any]:
    async with running_bot(settings):
        # Warm-up: one answer before the clock starts (workers started and warmed).
        warm_chat = 10_000
        api.send_text(warm_chat, "Hello!")
        await api.wait_for(api.sends_to(warm_chat, "sendVideoNote"), timeout=300)
        mark = api.mark()
        started = time.monotonic()
        asked = {chat: api.send_voice(chat, note, duration=round(seconds)) for chat in range(1, chats + 1)}
        calls = await api.wait_for(
            lambda call: call.method == "sendVideoNote" and 1 <= call.params.get("chat_id", 0) <= chats,
            count=chats,
            timeout=60 + 30 * chats * seconds,
            since=mark,
        )
        finished = max(call.time for call in calls)
        await asyncio.sleep(2.0)  # a duplicate would show up now
    answers: dict[int, list[float]] = {}
    for call in api.calls[mark:]:
        if call.method == "sendVideoNote" and call.ok and 1 <= call.params.get("chat_id", 0) <= chats:
            answers.setdefault(call.params["chat_id"], []).append(call.time)
    twice = sorted(chat for chat, times in answers.items() if len(times) > 1)
    missing = sorted(set(asked) - set(answers))
    latencies = sorted(times[0] - started for times in answers.values())
    return {
        "answered": len(answers),
        "twice": twice,
        "missing": missing,
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
        "max": latencies[-1],
        "wall": finished - started,
        "throughput": chats * seconds / (finished - started),
    }


def embedded(
    args: argparse.Namespace, characters: Path, stories: Path, note: bytes, scratch: Path
) -> dict[str, Any]:
    with FakeBotApi() as api:
        settings = settings_for(api, scratch / "embedded", characters, stories, workers=args.workers)
        worker = EmbeddedWorker(settings)  # exactly what `gramophone bot` starts
        worker.start()
        try:
            return asyncio.run(_load(api, settings, args.chats, args.seconds, note))
        finally:
            worker.stop()


def redis_mode(
    args: argparse.Namespace, characters: Path, stories: Path, note: bytes, scratch: Path
) -> dict[str, Any] | None:
    port = free_port()
    server = redis_server(port, scratch)
    if server is None:
        print("redis-server not installed: Redis mode skipped", flush=True)
        return None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with FakeBotApi() as api:
            total = args.redis_workers * args.workers_per_process
            settings = settings_for(
                api,
                scratch / "redis-bot",
                characters,
                stories,
                redis_url=f"redis://127.0.0.1:{port}/0",
                workers=total,
            )
            for index in range(args.redis_workers):
                machine = settings.model_copy(update={"data_dir": scratch / f"machine-{index}"})
                env = {key: value for key, value in os.environ.items() if not key.startswith("GRAMOPHONE_")}
                env.pop("TELEGRAM_BOT_TOKEN", None)
                env.update(worker_environment(machine))
                env["PYTHONPATH"] = str(ROOT)
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "engine.cli",
                            "worker",
                            "--workers",
                            str(args.workers_per_process),
                        ],
                        env=env,
                        cwd=ROOT,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            return asyncio.run(_load(api, settings, args.chats, args.seconds, note))
    finally:
        for process in processes:
            process.send_signal(2)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        server.terminate()
        server.wait(10)


def report(name: str, result: dict[str, Any] | None, chats: int) -> None:
    if result is None:
        return
    verdict = "OK" if result["answered"] == chats and not result["twice"] else "FAIL"
    print(
        f"{name:<28} {verdict}  answered {result['answered']}/{chats}, twice {len(result['twice'])}  "
        f"reply p50 {result['p50']:6.1f} s  p95 {result['p95']:6.1f} s  max {result['max']:6.1f} s  "
        f"throughput {result['throughput']:5.2f} s of video / s",
        flush=True,
    )
    if result["missing"] or result["twice"]:
        print(f"  missing {result['missing']}, answered twice {result['twice']}")


def main(argv: list[str] | None = None) -> int:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each voice note")
    parser.add_argument("--size", type=int, default=512, help="character side in pixels")
    parser.add_argument(
        "--workers", type=int, default=cores, help=f"embedded render processes (default {cores})"
    )
    parser.add_argument(
        "--redis-workers", type=int, default=2, help="gramophone worker processes in Redis mode"
    )
    parser.add_argument("--workers-per-process", type=int, default=max(1, cores // 2))
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    characters = character(args.size)
    note = make_ogg_opus(args.seconds, speech_like=True)
    with tempfile.TemporaryDirectory(prefix="gramophone-load-") as tmp:
        scratch = Path(tmp)
        stories = write_stories(scratch / "stories")
        print(
            f"{args.chats} chats x {args.seconds:.0f} s voice notes, {args.size} px character, {cores} cores",
            flush=True,
        )
        result = embedded(args, characters, stories, note, scratch)
        report(f"embedded ({args.workers} workers)", result, args.chats)
        ok = result["answered"] == args.chats and not result["twice"]
        if not args.skip_redis:
            label = f"redis ({args.redis_workers} x {args.workers_per_process} workers)"
            redis_result = redis_mode(args, characters, stories, note, scratch)
            report(label, redis_result, args.chats)
            if redis_result is not None:
                ok = ok and redis_result["answered"] == args.chats and not redis_result["twice"]
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
