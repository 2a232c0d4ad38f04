"""``gramophone bot`` and ``gramophone worker``, added to the engine's command through the
``gramophone.commands`` entry-point group (the engine never imports the bot)."""

from __future__ import annotations

import argparse
from typing import Any

from .settings import load_settings


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given on the command line win over GRAMOPHONE_* variables."""
    from engine.cli import log_level

    overrides: dict[str, Any] = {}
    if getattr(args, "workers", None):
        overrides["workers"] = args.workers
    if log_level(args):
        overrides["log_level"] = log_level(args)
    return overrides


def cmd_bot(args: argparse.Namespace) -> int:
    from .app import run

    return run(load_settings(**_overrides(args)), webhook_url=args.webhook_url)


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    from .logs import configure_logging
    from .worker import run_worker

    overrides = _overrides(args)
    overrides.pop("workers", None)  # run_worker takes it as an argument
    settings = load_settings(**overrides)
    os.umask(0o077)  # voices, texts and videos of children: this user's alone
    configure_logging(settings.log_level, secrets=settings.secrets())
    route = "gpu" if args.gpu else "cpu" if args.make else None
    return run_worker(settings, args.workers, prebuild=not args.no_prebuild, route=route)


HEALTHY_WITHIN_S = 60.0
"""``gramophone health``: the bot is healthy when its dispatcher touched its file this recently."""


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the bot sharing this data folder is passing work on, 1 when not (a container
    health check: ``HEALTHCHECK CMD gramophone health``)."""
    import time

    settings = load_settings()
    try:
        age = time.time() - settings.alive_path.stat().st_mtime
    except FileNotFoundError:
        print(f"unhealthy: {settings.alive_path} is missing (is the bot running on this data folder?)")
        return 1
    if age > args.within:
        print(f"unhealthy: the bot's dispatcher last passed work on {age:.0f} s ago")
        return 1
    print(f"healthy: the bot's dispatcher passed work on {age:.0f} s ago")
    return 0


def register(commands: Any) -> None:
    """Entry point: add the bot's subcommands to the ``gramophone`` argparse sub-parsers."""
    bot = commands.add_parser(
        "bot",
        help="run the Telegram bot (TELEGRAM_BOT_TOKEN; settings from GRAMOPHONE_* variables or .env)",
        description="Run the Telegram bot. Without GRAMOPHONE_REDIS_URL it also runs the render workers.",
        epilog="examples:\n  TELEGRAM_BOT_TOKEN=123:abc gramophone bot\n"
        "  gramophone --log-level DEBUG bot --webhook-url https://bot.example.org/telegram",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bot.add_argument(
        "--webhook-url", help="public HTTPS URL for Telegram to post updates to (default: polling)"
    )
    bot.add_argument(
        "--workers", type=int, help="embedded render processes (default: GRAMOPHONE_WORKERS or one per core)"
    )
    bot.set_defaults(handler=cmd_bot)

    worker = commands.add_parser(
        "worker",
        help="run render workers for the bot's queue (GRAMOPHONE_REDIS_URL to serve a bot on another "
        "machine)",
        description="Run workers for the bot's queues: render processes, or a maker of new characters.",
        epilog="examples:\n  GRAMOPHONE_REDIS_URL=redis://:secret@queue:6379/0 gramophone worker --workers "
        "4\n"
        "  gramophone -v worker --make      # new characters on this machine's CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument(
        "--workers", type=int, help="processes (default: GRAMOPHONE_WORKERS or one per core; makers: 1)"
    )
    kind = worker.add_mutually_exclusive_group()
    kind.add_argument(
        "--gpu",
        action="store_true",
        help="make new characters on this machine's GPU (FasterLivePortrait; GRAMOPHONE_FLP_* settings)",
    )
    kind.add_argument(
        "--make", action="store_true", help="make new characters on the CPU (the puppet path); one process"
    )
    worker.add_argument(
        "--no-prebuild", action="store_true", help="do not build missing character libraries first"
    )
    worker.set_defaults(handler=cmd_worker)

    health = commands.add_parser(
        "health",
        help="exit 0 if the bot on this data folder is alive (a container health check)",
        description="Reads how long ago the bot's dispatcher last passed work on "
        "(GRAMOPHONE_DATA_DIR/bot.alive).",
        epilog="example:\n  gramophone health || echo the bot is stuck",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    health.add_argument("--within", type=float, default=HEALTHY_WITHIN_S, help="seconds (default 60)")
    health.set_defaults(handler=cmd_health)
