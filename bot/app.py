"""The bot process: python-telegram-bot's Application, the services, the dispatcher, the lifecycle.

:class:`GramophoneBot` starts and stops everything in order (the dispatcher of requests, the
workshop of make jobs, PTB), the same way for ``gramophone bot`` and for tests (which run it
against a fake Bot API in their own event loop). :func:`run` is the command: it adds the embedded
render worker and the embedded CPU maker (child processes) unless workers come from Redis,
handles SIGINT/SIGTERM, and restarts an embedded child if it dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    PersistenceInput,
    PicklePersistence,
    SimpleUpdateProcessor,
)

from engine.characters import Catalogue

from .character_store import CharacterStore
from .dispatcher import Dispatcher
from .guard import ChatGuard
from .handlers import register
from .inbox import Inbox
from .logs import configure_logging
from .making import Workshop
from .recorded_stories import RecordedStories
from .services import KEY, Services
from .settings import Settings
from .store import Store
from .storybook import Storybook
from .tasks import MAKE_QUEUE_NAMES, MakeQueue, RenderQueue
from .texts import LANGUAGES, t
from .worker import EmbeddedWorker

log = logging.getLogger(__name__)

# Durations as datetime.timedelta (PTB 23's behaviour), without a deprecation warning per voice note.
os.environ.setdefault("PTB_TIMEDELTA", "true")

ALLOWED_UPDATES = ["message", "callback_query"]
COMMANDS = ("start", "story", "characters", "language", "help")
ADMIN_COMMANDS = ("newcharacter", "newstory", "jobs", "cancel", "delcharacter", "renamecharacter")
MEDIA_WRITE_TIMEOUT_S = 120.0
UPDATE_CONCURRENCY = 16
"""Updates handled at once: a slow download for one child must not hold up the others."""


class UpdateProcessor(SimpleUpdateProcessor):
    """Updates concurrently, except an admin's, which are handled one at a time in order.

    Children's updates must not wait for each other (a slow download), but the admins'
    /newcharacter is a ConversationHandler, which needs one user's updates in order (a picture
    and the next button must not race). Only the admins' updates are serialised, per admin."""

    def __init__(self, max_concurrent_updates: int, serial_users: list[int]) -> None:
        super().__init__(max_concurrent_updates)
        self.serial_users = frozenset(serial_users)
        self._locks: dict[int, asyncio.Lock] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = getattr(update, "effective_user", None)
        if user is None or user.id not in self.serial_users:
            await coroutine
            return
        lock = self._locks.setdefault(user.id, asyncio.Lock())
        async with lock:
            await coroutine


def build_application(settings: Settings, guard: ChatGuard) -> Application:
    """The PTB Application: token, Bot API server, rate limiter, timeouts, handlers."""
    builder = (
        ApplicationBuilder()
        .token(settings.token())
        .base_url(settings.base_url)
        .base_file_url(settings.base_file_url)
        .local_mode(settings.bot_api_local)
        # Throttles to Telegram's overall and per-group rates, but retries nothing: a 429 makes
        # AIORateLimiter pause every chat while it retries. RetryAfter is handled in one place,
        # per send (bot.delivery), so one flooded chat never holds up the others.
        .rate_limiter(AIORateLimiter(max_retries=0))
        .media_write_timeout(MEDIA_WRITE_TIMEOUT_S)
        .concurrent_updates(UpdateProcessor(UPDATE_CONCURRENCY, settings.admins))
        # Admins' half-finished /newcharacter drafts (user_data and the conversation's state)
        # survive a restart; nothing of the children's is kept here (the state database has it).
        .persistence(
            PicklePersistence(
                settings.conversations_path,
                store_data=PersistenceInput(
                    bot_data=False, chat_data=False, user_data=True, callback_data=False
                ),
                update_interval=5,
            )
        )
    )
    application = builder.build()
    register(application, guard, draft_timeout_s=settings.draft_timeout_s)
    return application


class GramophoneBot:
    """Application + services + dispatcher, started and stopped as one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.application: Application | None = None
        self.services: Services | None = None
        self.make_queues: dict[str, MakeQueue] = {}
        self.webhook_secret: str | None = None

    async def start(self, webhook_url: str | None = None) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(settings.state_path)
        queue = RenderQueue(settings)
        make_queues = {route: MakeQueue(settings, route) for route in MAKE_QUEUE_NAMES}
        characters = CharacterStore(settings.made_characters_dir)
        catalogue = Catalogue(*settings.character_roots)
        for problem in catalogue.problems:
            log.warning("character folder skipped: %s", problem)
        if not catalogue.characters:
            log.error("no characters found in %s", [str(path) for path in settings.character_roots])
        storybook = Storybook(settings.stories_dir)
        guard = ChatGuard(settings)
        application = build_application(settings, guard)
        await _initialize(application)
        inbox = Inbox(settings, store, application.bot)
        recorded = RecordedStories(settings.recorded_stories_dir, part_s=settings.recorded_story_part_s)
        dispatcher = Dispatcher(
            settings, store, queue, application.bot, catalogue, storybook, inbox, recorded=recorded
        )
        inbox.on_received = dispatcher.wake
        workshop = Workshop(
            settings, store, make_queues, application.bot, catalogue, characters, on_request=dispatcher.wake
        )
        self.services = Services(
            settings,
            store,
            queue,
            catalogue,
            storybook,
            dispatcher,
            workshop,
            characters,
            inbox,
            guard,
            recorded,
        )
        self.make_queues = make_queues
        application.bot_data[KEY] = self.services
        self.application = application
        await dispatcher.start()
        await workshop.start()
        await application.start()
        assert application.updater is not None
        webhook_url = webhook_url or settings.webhook_url
        if webhook_url:
            secret = (
                settings.webhook_secret.get_secret_value()
                if settings.webhook_secret
                else secrets.token_urlsafe(32)
            )
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
                timeout=timedelta(seconds=settings.poll_timeout_s),
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
        days = f"{self.settings.retention_days:g}"
        try:
            for language in LANGUAGES:  # what a parent reads before pressing Start
                code = None if language == "en" else language
                await bot.set_my_description(t("bot_description", language, days=days), language_code=code)
                await bot.set_my_short_description(t("bot_short_description", language), language_code=code)
        except TelegramError as error:
            log.warning("could not set the bot's description: %s", error)
        for admin in self.settings.admins:  # the admins see their commands too, in their own chat
            try:
                for language in LANGUAGES:
                    commands = [
                        BotCommand(name, t(f"cmd_{name}", language)) for name in COMMANDS + ADMIN_COMMANDS
                    ]
                    code = None if language == "en" else language
                    await bot.set_my_commands(commands, scope=BotCommandScopeChat(admin), language_code=code)
            except BadRequest as error:  # the admin has not started the bot yet
                log.info("no command menu for admin %s yet: %s", admin, error.message)
            except TelegramError as error:
                log.warning("could not set the admin command menu: %s", error)

    async def stop(self) -> None:
        """No new updates, let running handlers and sends finish, close everything."""
        application, services = self.application, self.services
        if application is None or services is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await services.workshop.stop()
        await services.dispatcher.stop()
        await services.inbox.close()
        await application.shutdown()
        services.queue.close()
        for queue in self.make_queues.values():
            queue.close()
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


async def serve(
    settings: Settings, webhook_url: str | None = None, workers: list[EmbeddedWorker] | None = None
) -> None:
    """Run the bot until SIGINT or SIGTERM; keep the embedded workers alive meanwhile."""
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
            for worker in workers or []:
                if not stop.is_set() and not worker.alive():
                    log.error(
                        "the embedded %s exited (code %s): starting it again",
                        worker.kind,
                        worker.process and worker.process.returncode,
                    )
                    worker.start()
    finally:
        log.info("stopping")
        await bot.stop()


def run(settings: Settings, webhook_url: str | None = None) -> int:
    """``gramophone bot``: everything in one command (plus Redis workers, if configured)."""
    os.umask(0o077)  # voices, texts and videos of children: files 0600, folders 0700
    configure_logging(settings.log_level, secrets=settings.secrets())
    settings.token()  # fail now, before starting anything, if it is missing
    log.info("gramophone bot: %s", settings.describe())
    workers: list[EmbeddedWorker] = []
    if not settings.redis_url:
        # The render processes, and one low-priority CPU maker for new characters (also the
        # fallback when a GPU job finds no GPU worker).
        workers = [EmbeddedWorker(settings), EmbeddedWorker(settings, workers=1, route="cpu")]
        for worker in workers:
            worker.start()
    try:
        asyncio.run(serve(settings, webhook_url, workers))
    except InvalidToken:
        log.error("Telegram refused the token: check TELEGRAM_BOT_TOKEN (from @BotFather)")
        return 2
    except NetworkError as error:
        log.error("cannot reach the Bot API at %s: %s", settings.bot_api_url, error)
        return 1
    finally:
        for worker in workers:
            worker.stop()
    return 0
