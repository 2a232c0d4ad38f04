"""The bot process: python-telegram-bot's Application, the services, the dispatcher, the lifecycle.

:class:`GramophoneBot` starts and stops everything in order, the same way for ``gramophone bot``
and for tests (which run it against a fake Bot API in their own event loop). :func:`run` is the
command: it adds the embedded render worker (a child process) unless workers come from Redis,
handles SIGINT/SIGTERM, and restarts the embedded worker if it dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from urllib.parse import urlparse

from engine.characters import Catalogue
from telegram import BotCommand, BotCommandScopeDefault
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from .dispatcher import Dispatcher
from .handlers import register
from .services import KEY, Services
from .settings import Settings
from .storybook import Storybook
from .store import Store
from .tasks import RenderQueue
from .texts import LANGUAGES, t
from .worker import EmbeddedWorker, configure_logging

log = logging.getLogger(__name__)

# Durations as datetime.timedelta (PTB 23's behaviour), without a deprecation warning per voice note.
os.environ.setdefault("PTB_TIMEDELTA", "true")

ALLOWED_UPDATES = ["message", "callback_query"]
COMMANDS = ("start", "story", "characters", "language", "help")
MEDIA_WRITE_TIMEOUT_S = 120.0
UPDATE_CONCURRENCY = 16
"""Updates handled at once: a slow download for one child must not hold up the others."""


def build_application(settings: Settings) -> Application:
    """The PTB Application: token, Bot API server, rate limiter, timeouts, handlers."""
    builder = (
        ApplicationBuilder()
        .token(settings.token())
        .base_url(settings.base_url)
        .base_file_url(settings.base_file_url)
        .local_mode(settings.bot_api_local)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .media_write_timeout(MEDIA_WRITE_TIMEOUT_S)
        .concurrent_updates(UPDATE_CONCURRENCY)
    )
    application = builder.build()
    register(application)
    return application


class GramophoneBot:
    """Application + services + dispatcher, started and stopped as one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.application: Application | None = None
        self.services: Services | None = None
        self.webhook_secret: str | None = None

    async def start(self, webhook_url: str | None = None) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(settings.state_path)
        queue = RenderQueue(settings)
        catalogue = Catalogue(*settings.characters_dirs)
        for problem in catalogue.problems:
            log.warning("character folder skipped: %s", problem)
        if not catalogue.characters:
            log.error("no characters found in %s", [str(path) for path in settings.characters_dirs])
        storybook = Storybook(settings.stories_dir)
        application = build_application(settings)
        await _initialize(application)
        dispatcher = Dispatcher(settings, store, queue, application.bot, catalogue, storybook)
        self.services = Services(settings, store, queue, catalogue, storybook, dispatcher)
        application.bot_data[KEY] = self.services
        self.application = application
        await dispatcher.start()
        await application.start()
        assert application.updater is not None
        webhook_url = webhook_url or settings.webhook_url
        if webhook_url:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else secrets.token_urlsafe(32)
            self.webhook_secret = secret
            await application.updater.start_webhook(
                listen=settings.listen,
                port=settings.port,
                url_path=urlparse(webhook_url).path.lstrip("/"),
                webhook_url=webhook_url,
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            log.info("webhook mode: %s (listening on %s:%d)", webhook_url, settings.listen, settings.port)
        else:
            await application.updater.start_polling(
                poll_interval=0,
                timeout=settings.poll_timeout_s,
                allowed_updates=ALLOWED_UPDATES,
                error_callback=_polling_error,
            )
            log.info("polling %s as @%s", settings.bot_api_url, application.bot.username)
        await self._set_commands()

    async def _set_commands(self) -> None:
        """The command menu in each language (best effort: a bot without it still works)."""
        assert self.application is not None
        bot = self.application.bot
        try:
            for language in LANGUAGES:
                commands = [BotCommand(name, t(f"cmd_{name}", language)) for name in COMMANDS]
                code = None if language == "en" else language
                await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=code)
        except TelegramError as error:
            log.warning("could not set the command menu: %s", error)

    async def stop(self) -> None:
        """No new updates, let running handlers and sends finish, close everything."""
        application, services = self.application, self.services
        if application is None or services is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await services.dispatcher.stop()
        await application.shutdown()
        services.queue.close()
        services.store.close()
        self.application = self.services = None
        log.info("bot stopped")


async def _initialize(application: Application, attempts: int = 6) -> None:
    """``initialize`` (which asks Telegram who we are), retried while the network is down:
    a bot started before the network (a reboot) should not just exit."""
    for attempt in range(1, attempts + 1):
        try:
            await application.initialize()
            return
        except InvalidToken:
            raise
        except NetworkError as error:
            if attempt == attempts:
                raise
            pause = 2.0**attempt
            log.warning("cannot reach the Bot API (%s): trying again in %.0f s", error, pause)
            await asyncio.sleep(pause)


def _polling_error(error: TelegramError) -> None:
    """getUpdates failures (Telegram down, a network blip): PTB retries; one line, no traceback."""
    log.warning("getUpdates failed: %s", error)


async def serve(settings: Settings, webhook_url: str | None = None, worker: EmbeddedWorker | None = None) -> None:
    """Run the bot until SIGINT or SIGTERM; keep the embedded worker alive meanwhile."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bot = GramophoneBot(settings)
    starting = asyncio.create_task(bot.start(webhook_url))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # told to stop while still starting (e.g. Telegram unreachable)
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await bot.stop()
        return
    stopping.cancel()
    starting.result()  # a failed start raises here
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=5.0)
            except TimeoutError:
                pass
            if worker is not None and not stop.is_set() and not worker.alive():
                log.error("the embedded worker exited (code %s): starting it again", worker.process and worker.process.returncode)
                worker.start()
    finally:
        log.info("stopping")
        await bot.stop()


def run(settings: Settings, webhook_url: str | None = None) -> int:
    """``gramophone bot``: everything in one command (plus Redis workers, if configured)."""
    configure_logging(settings.log_level)
    settings.token()  # fail now, before starting anything, if it is missing
    log.info("gramophone bot: %s", settings.describe())
    worker = None
    if not settings.redis_url:
        worker = EmbeddedWorker(settings)
        worker.start()
    try:
        asyncio.run(serve(settings, webhook_url, worker))
    except InvalidToken:
        log.error("Telegram refused the token: check TELEGRAM_BOT_TOKEN (from @BotFather)")
        return 2
    except NetworkError as error:
        log.error("cannot reach the Bot API at %s: %s", settings.bot_api_url, error)
        return 1
    finally:
        if worker is not None:
            worker.stop()
    return 0
