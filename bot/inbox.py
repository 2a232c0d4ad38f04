"""The inbox: where a user's audio file enters, fetched and checked before anything renders it.

A voice note is recorded first (a ``fetching`` row with its file id), then downloaded and
checked here, then handed on as ``received``. That order is what makes it survive a ``kill -9``
in the middle of a download: the row is there, and after a restart the dispatcher finds it
unowned and fetches it again through the same :meth:`Inbox.fetch_claimed`.

Every file is hostile until this module is done with it:

* its size is capped (Telegram's declared size, then the bytes really downloaded);
* its container comes from its first bytes, never from the sender's file name or MIME type, and
  it is stored under a name nobody can guess, so a playlist naming another chat's voice note
  finds nothing (and ffmpeg opens it with that one demuxer and local files only anyway);
* its length is measured by decoding it, up to the limit plus a margin, never read from
  metadata; the check runs in a small pool of its own with a timeout, so a file that hangs
  ffmpeg costs one slot and never the bot.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, NetworkError, TelegramError

from engine.errors import MediaError
from engine.media import inspect_untrusted_audio, sniff_container

from .files import remove_quietly, write_atomic
from .settings import Settings
from .store import Request, Store
from .texts import t

log = logging.getLogger(__name__)

MIN_AUDIO_S = 0.2
"""Shorter than this is a click, not something to answer."""
FETCH_ATTEMPTS = 5
"""Tries at downloading a file while Telegram or the disk fails, before telling the child."""
RETRY_DELAY_S = 5.0


class _Later(Exception):
    """Not the file's fault (Telegram unreachable, disk full): try again in a while."""


class _Refused(Exception):
    """The file cannot be answered; ``key`` is the text that tells the child why."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(detail)
        self.key = key


class Inbox:
    """Fetches and checks voice notes; knows which ones this process is fetching right now."""

    def __init__(
        self, settings: Settings, store: Store, bot: Bot, *, on_received: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.bot = bot
        self.on_received = on_received
        self._pool = ThreadPoolExecutor(max_workers=settings.probe_workers, thread_name_prefix="inbox-check")
        self._busy: set[int] = set()
        self._failures: dict[int, int] = {}
        self._retry_after: dict[int, float] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        settings.inbox_dir.mkdir(parents=True, exist_ok=True)

    def claim(self, request: Request) -> bool:
        """Mark ``request`` as this caller's to fetch (False: someone here fetches it already).

        A handler claims its new request before its first ``await``, so the dispatcher's next
        pass cannot take it for an orphan."""
        if request.id in self._busy:
            return False
        self._busy.add(request.id)
        return True

    async def fetch_claimed(self, request: Request) -> bool:
        """Download and check a request :meth:`claim` gave to the caller (the claim ends here);
        True when it is now ``received``.

        On a refusal the child is told why (as a reply to their message) and the request fails;
        when Telegram or the disk fails, it stays ``fetching`` and is tried again later."""
        try:
            path = await self._fetch(request)
        except _Refused as refusal:
            await self._refuse(request, refusal)
            return False
        except _Later as error:
            failures = self._failures.get(request.id, 0) + 1
            if failures >= FETCH_ATTEMPTS:
                await self._refuse(request, _Refused("download_failed", f"gave up fetching: {error}"))
                return False
            self._failures[request.id] = failures
            self._retry_after[request.id] = time.monotonic() + RETRY_DELAY_S * failures
            log.warning("%s: cannot fetch its file yet (%s): trying again", request.label, error)
            return False
        finally:
            self._busy.discard(request.id)
        self._forget(request.id)
        if not self.store.transition(request.id, "fetching", "received", input_path=str(path)):
            remove_quietly(path)  # cancelled or purged meanwhile
            return False
        log.info("%s received", request.label)
        if self.on_received is not None:
            self.on_received()
        return True

    def adopt_orphans(self) -> None:
        """Fetch every ``fetching`` request nobody in this process is fetching: those of a bot
        that died mid-download, and those waiting for another try."""
        now = time.monotonic()
        for request in self.store.with_status("fetching"):
            if request.id in self._busy or self._retry_after.get(request.id, 0.0) > now:
                continue
            if request.id not in self._failures:
                log.info("%s: fetching its file again (the bot stopped while fetching it)", request.label)
            self.claim(request)
            task = asyncio.create_task(self.fetch_claimed(request), name=f"fetch-{request.id}")
            task.add_done_callback(functools.partial(self._done, request.id))
            self._tasks.add(task)

    def _done(self, request_id: int, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fetching request %d failed", request_id, exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the steps ------------------------------------------------------------------------------

    async def _fetch(self, request: Request) -> Path:
        settings = self.settings
        limit = settings.download_max_bytes
        if not request.input:
            raise _Refused("download_failed", "no file id")
        try:
            file = await self.bot.get_file(request.input)
            if file.file_size is not None and file.file_size > limit:
                raise _Refused("file_too_big", f"Telegram says {file.file_size} bytes")
            data = bytes(await file.download_as_bytearray())
        except BadRequest as error:
            key = "file_too_big" if "too big" in error.message.lower() else "download_failed"
            raise _Refused(key, f"getFile refused: {error.message}") from None
        except NetworkError as error:
            raise _Later(f"download failed: {error}") from None
        if len(data) > limit:
            raise _Refused("file_too_big", f"{len(data)} bytes downloaded")
        container = sniff_container(data[:64])
        if container is None:
            raise _Refused("audio_unreadable", "not an audio container we accept")
        # Named by the request and a random token, never by anything the sender chose or could guess.
        path = settings.inbox_dir / f"{request.id}-{secrets.token_hex(8)}.{container}"
        try:
            await write_atomic(path, data)
        except OSError as error:
            raise _Later(f"cannot store it: {error}") from None
        try:
            await self._check(path)
        except BaseException:
            remove_quietly(path)
            raise
        return path

    async def _check(self, path: Path) -> None:
        max_s = self.settings.voice_max_s
        check = functools.partial(
            inspect_untrusted_audio, path, max_seconds=max_s, timeout_s=self.settings.probe_timeout_s
        )
        try:
            audio = await asyncio.get_running_loop().run_in_executor(self._pool, check)
        except MediaError as error:
            raise _Refused("audio_unreadable", str(error)) from None
        except OSError as error:  # the machine, not the file
            raise _Later(f"cannot read it back: {error}") from None
        if audio.too_long:
            raise _Refused("audio_too_long", f"longer than {max_s:.0f} s when decoded")
        if audio.duration_s < MIN_AUDIO_S:
            raise _Refused("audio_empty", f"{audio.duration_s:.2f} s when decoded")

    async def _refuse(self, request: Request, refusal: _Refused) -> None:
        self._forget(request.id)
        if not self.store.transition(request.id, "fetching", "failed", error=f"{refusal.key}: {refusal}"):
            return
        log.info("%s refused: %s (%s)", request.label, refusal.key, refusal)
        settings = self.settings
        text = t(
            refusal.key,
            request.language,
            minutes=round(settings.voice_max_s / 60),
            mb=settings.download_max_bytes // (1024 * 1024),
        )
        try:
            await self.bot.send_message(
                request.chat_id,
                text,
                reply_parameters=ReplyParameters(
                    request.incoming_message_id, allow_sending_without_reply=True
                ),
            )
        except TelegramError as error:
            log.warning("%s: could not say why: %s", request.label, error)

    def _forget(self, request_id: int) -> None:
        self._failures.pop(request_id, None)
        self._retry_after.pop(request_id, None)
