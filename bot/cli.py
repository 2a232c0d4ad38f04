"""``gramophone bot`` and ``gramophone worker``, added to the engine's command through the
``gramophone.commands`` entry-point group (the engine never imports the bot)."""

from __future__ import annotations

import argparse
from typing import Any

from .settings import load_settings


def cmd_bot(args: argparse.Namespace) -> int:
    from .app import run

    overrides: dict[str, Any] = {}
    if args.workers:
        overrides["workers"] = args.workers
    return run(load_settings(**overrides), webhook_url=args.webhook_url)


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    from .logs import configure_logging
    from .worker import run_worker

    settings = load_settings()
    os.umask(0o077)  # voices, texts and videos of children: this user's alone
    configure_logging(settings.log_level, secrets=settings.secrets())
    route = "gpu" if args.gpu else "cpu" if args.make else None
    return run_worker(settings, args.workers, prebuild=not args.no_prebuild, route=route)


def register(commands: Any) -> None:
    """Entry point: add the bot's subcommands to the ``gramophone`` argparse sub-parsers."""
    bot = commands.add_parser(
        "bot",
        help="run the Telegram bot (TELEGRAM_BOT_TOKEN; settings from GRAMOPHONE_* variables or .env)",
        description="Run the Telegram bot. Without GRAMOPHONE_REDIS_URL it also runs the render workers.",
    )
    bot.add_argument("--webhook-url", help="public HTTPS URL for Telegram to post updates to (default: polling)")
    bot.add_argument("--workers", type=int, help="embedded render processes (default: GRAMOPHONE_WORKERS or one per core)")
    bot.set_defaults(handler=cmd_bot)

    worker = commands.add_parser(
        "worker",
        help="run render workers for the bot's queue (GRAMOPHONE_REDIS_URL to serve a bot on another machine)",
    )
    worker.add_argument("--workers", type=int, help="processes (default: GRAMOPHONE_WORKERS or one per core; makers: 1)")
    kind = worker.add_mutually_exclusive_group()
    kind.add_argument("--gpu", action="store_true",
                      help="make new characters on this machine's GPU (FasterLivePortrait; GRAMOPHONE_FLP_* settings)")
    kind.add_argument("--make", action="store_true", help="make new characters on the CPU (the puppet path); one process")
    worker.add_argument("--no-prebuild", action="store_true", help="do not build missing character libraries first")
    worker.set_defaults(handler=cmd_worker)
