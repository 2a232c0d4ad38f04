"""Workers: a huey consumer of worker processes, and the embedded ones the bot runs itself.

``gramophone worker`` (any number of them, on any machines, in Redis mode) builds the character
libraries that are missing, then runs a huey consumer with ``workers`` processes. Processes, not
threads: a render is CPU work in numpy/OpenCV and ffmpeg, and a process killed mid-render takes
nothing else down (the consumer replaces it; the bot notices the silent heartbeat and retries).

In embedded mode ``gramophone bot`` starts the same command as a child process
(:class:`EmbeddedWorker`), so one command runs everything. The child runs in its own session so a
Ctrl-C in the terminal reaches only the bot, which then stops the child in order (finish the
renders in progress, then interrupt); and it watches its parent, so a bot killed with ``kill -9``
does not leave it running forever: it finishes what it has started and exits.

Makers of new characters are workers too, on queues of their own (:mod:`bot.tasks`):
``gramophone worker --gpu`` on the GPU machine (FasterLivePortrait, configured by the
``GRAMOPHONE_FLP_*`` settings of that machine), and ``gramophone worker --make``, the CPU maker
(the puppet path), which the bot also runs as a second embedded child: one process, at a lower
priority (``GRAMOPHONE_MAKER_NICE``), so a character being made takes only what the children's
renders leave over.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .logs import configure_logging
from .settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

POLL_DELAY_S = 0.05
MAX_POLL_DELAY_S = 0.5
"""Idle workers look at the SQLite queue at most this often (Redis mode blocks instead)."""


def prebuild_libraries(settings: Settings) -> None:
    """Build every character library that is missing, before taking any task (one at a time,
    file-locked, so several workers starting together wait for one build)."""
    from engine.characters import Catalogue, ensure_library
    from engine.errors import GramophoneError

    catalogue = Catalogue(*settings.character_roots)
    for problem in catalogue.problems:
        log.warning("character folder skipped: %s", problem)
    for character in catalogue.list():
        if character.is_built:
            continue
        started = time.perf_counter()
        log.info("building the library of %s (first start)", character.id)
        try:
            ensure_library(character)
        except (GramophoneError, ImportError) as error:
            log.error("cannot build the library of %s: %s", character.id, error)
            continue
        log.info("built the library of %s in %.0f s", character.id, time.perf_counter() - started)


def warm_up(settings: Settings) -> None:
    """Render one second with the first built character before the render processes fork.

    The first render in a fresh process spends ~2 s importing and compiling (librosa, numba);
    done here once, every forked worker inherits it and the first child's answer is not slow.
    """
    import tempfile

    import numpy as np

    from engine.characters import Catalogue
    from engine.media import ANALYSIS_SAMPLE_RATE, write_wav
    from engine.render import render

    built = [character for character in Catalogue(*settings.character_roots).list() if character.is_built]
    if not built:
        return
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="gramophone-warm-") as scratch:
            seconds = np.arange(ANALYSIS_SAMPLE_RATE, dtype=np.float32) / ANALYSIS_SAMPLE_RATE
            tone = 0.3 * np.sin(2 * np.pi * 220 * seconds) * (np.sin(2 * np.pi * 3 * seconds) > 0)
            wav = write_wav(Path(scratch) / "warm.wav", tone, ANALYSIS_SAMPLE_RATE)
            render(built[0].library_path, wav, Path(scratch) / "warm.mp4")
    except Exception as error:  # noqa: BLE001 -- only an optimisation
        log.warning("warm-up render failed: %s", error)
        return
    log.info("warmed up in %.1f s", time.perf_counter() - started)


def _watch_parent(parent_pid: int) -> None:
    """Stop gracefully (SIGINT to ourselves: finish current renders) once the parent is gone."""

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                log.warning("the bot (pid %d) is gone: finishing current renders and exiting", parent_pid)
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_worker(
    settings: Settings,
    workers: int | None = None,
    parent_pid: int | None = None,
    prebuild: bool = True,
    route: str | None = None,
) -> int:
    """Run a consumer until SIGINT (graceful) or SIGTERM (interrupt). Blocks.

    ``route`` None: render processes; ``"cpu"`` or ``"gpu"``: a maker of new characters."""
    from .tasks import MAKE_QUEUE_NAMES, make_huey, make_maker_huey

    count = workers or (settings.workers if route is None else 1)
    if parent_pid is not None:
        _watch_parent(parent_pid)
    if route is None:
        if prebuild:
            prebuild_libraries(settings)
        warm_up(settings)
        huey = make_huey(settings)
    else:
        if route == "gpu":
            check_gpu_settings(settings)
        if route == "cpu" and settings.maker_nice:
            os.nice(settings.maker_nice)
        huey = make_maker_huey(settings, route)
    consumer = huey.create_consumer(
        workers=count,
        worker_type="process",
        periodic=False,
        initial_delay=POLL_DELAY_S,
        max_delay=MAX_POLL_DELAY_S,
        check_worker_health=True,
        health_check_interval=settings.worker_health_check_s,
    )
    where = settings.redis_url and Settings._redacted(settings.redis_url) or settings.queue_path
    what = "render processes" if route is None else f"makers of new characters ({MAKE_QUEUE_NAMES[route]})"
    log.info("worker: %d %s on %s (pid %d)", count, what, where, os.getpid())
    consumer.run()
    return 0


def check_gpu_settings(settings: Settings) -> None:
    """Refuse to start a GPU maker that could only fail: FLP and the reference performance
    must be configured and exist (a clear message now, rather than every job failing later)."""
    from engine.errors import GramophoneError

    if settings.flp_mode is None:
        raise SystemExit(
            "gramophone worker --gpu: set GRAMOPHONE_FLP_MODE (cli or http) and the FLP settings "
            "(deploy/README.md)"
        )
    try:
        settings.flp_config()
    except GramophoneError as error:
        raise SystemExit(f"gramophone worker --gpu: {error}") from None
    reference = settings.flp_reference()
    if reference is None:
        raise SystemExit(
            "gramophone worker --gpu: set GRAMOPHONE_FLP_REFERENCE_SPEECH and GRAMOPHONE_FLP_REFERENCE_IDLE "
            "(the recorded reference performance, deploy/README.md)"
        )
    from engine.makers.flp import validate_reference

    try:
        validate_reference(*reference)
    except GramophoneError as error:
        raise SystemExit(f"gramophone worker --gpu: {error}") from None


class EmbeddedWorker:
    """``gramophone worker`` as a child process of the bot (embedded mode); with ``route``,
    the maker of new characters on that queue instead of the render processes."""

    def __init__(self, settings: Settings, workers: int | None = None, route: str | None = None) -> None:
        self.settings = settings
        self.route = route
        self.workers = workers or (settings.workers if route is None else 1)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def kind(self) -> str:
        return "worker" if self.route is None else f"{self.route} maker"

    def start(self) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("TELEGRAM_BOT_TOKEN", "GRAMOPHONE_TELEGRAM_BOT_TOKEN")
        }
        env.update(worker_environment(self.settings))
        command = [
            sys.executable,
            "-m",
            "bot.worker",
            "--workers",
            str(self.workers),
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.route is not None:
            command += ["--make" if self.route == "cpu" else "--gpu"]
        self.process = subprocess.Popen(command, env=env, start_new_session=True, cwd=os.getcwd())
        log.info("started the embedded %s (pid %d, %d processes)", self.kind, self.process.pid, self.workers)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, graceful_s: float = 10.0) -> None:
        """Let current renders finish for ``graceful_s``, then interrupt them (they go back on
        the queue), then kill."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, graceful_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                process.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                log.warning("embedded %s did not stop after %s", self.kind, signal.Signals(sig).name)
        log.info("embedded %s stopped (exit %s)", self.kind, process.returncode)


def worker_environment(settings: Settings) -> dict[str, str]:
    """The settings a worker needs, as environment variables (settings made in code, as tests
    do, reach the child too). Never the token."""
    import json

    env = {
        "GRAMOPHONE_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "GRAMOPHONE_CHARACTERS_DIRS": json.dumps(
            [str(Path(path).resolve()) for path in settings.characters_dirs]
        ),
        "GRAMOPHONE_WORKER_HEALTH_CHECK_S": str(settings.worker_health_check_s),
        "GRAMOPHONE_LOG_LEVEL": settings.log_level,
    }
    if settings.redis_url:
        env["GRAMOPHONE_REDIS_URL"] = settings.redis_url
    for name in (
        "maker_nice",
        "flp_mode",
        "flp_checkout",
        "flp_python",
        "flp_cfg",
        "flp_url",
        "flp_timeout_s",
        "flp_max_lost_fraction",
        "flp_reference_speech",
        "flp_reference_idle",
    ):
        value = getattr(settings, name)
        if value is not None:
            env[f"GRAMOPHONE_{name.upper()}"] = str(value)
    return env


def main(argv: list[str] | None = None) -> int:
    """``python -m bot.worker``: what the embedded child runs (same as ``gramophone worker``)."""
    parser = argparse.ArgumentParser(prog="python -m bot.worker")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--no-prebuild", action="store_true")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--make", action="store_true", help="the CPU maker of new characters")
    kind.add_argument("--gpu", action="store_true", help="the GPU maker of new characters (FLP)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"gramophone worker: error: {error}", file=sys.stderr)
        return 2
    os.umask(0o077)  # voices, texts and videos of children: this user's alone
    configure_logging(settings.log_level, secrets=settings.secrets())
    route = "gpu" if args.gpu else "cpu" if args.make else None
    try:
        return run_worker(settings, args.workers, args.parent_pid, prebuild=not args.no_prebuild, route=route)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
