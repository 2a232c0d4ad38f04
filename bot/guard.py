"""The gate every update passes first: which chats the bot talks in, and how fast a chat may talk.

A child holding a button down, or a script, must not turn into a reply per message: each
refusal costs a Telegram message, and enough of them make Telegram answer 429 for the whole bot.
So a chat gets a token bucket of ``chat_rate_messages`` per ``chat_rate_window_s`` (an update
past it is dropped), and at most one refusal reply per ``refusal_interval_s`` whatever the
reason (slow down, too many waiting, busy, private chats only). Admins are never throttled.

State is in memory on purpose: after a restart every chat starts with a full bucket, which is
the kind direction to err in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, BaseHandler, ContextTypes, TypeHandler

from .settings import Settings
from .texts import from_telegram, t

log = logging.getLogger(__name__)

FORGET_AFTER_S = 3600.0
"""A chat quiet this long is forgotten (its bucket would be full again anyway)."""


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class ChatGuard:
    """Per-chat rate limits and refusal pacing; ``clock`` is injectable for tests."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(settings.chat_rate_messages)
        self.rate = settings.chat_rate_messages / settings.chat_rate_window_s
        self.refusal_interval_s = settings.refusal_interval_s
        self.allow_groups = settings.allow_groups
        self.exempt = frozenset(settings.admins)
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._refused: dict[int, float] = {}
        self._swept = clock()

    def take(self, chat_id: int) -> bool:
        """Whether ``chat_id`` may send one more update now (and count it)."""
        now = self.clock()
        self._sweep(now)
        bucket = self._buckets.get(chat_id)
        if bucket is None:
            bucket = self._buckets[chat_id] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def may_refuse(self, chat_id: int) -> bool:
        """Whether a refusal may be sent to ``chat_id`` now (at most one per interval)."""
        now = self.clock()
        last = self._refused.get(chat_id)
        if last is not None and now - last < self.refusal_interval_s:
            return False
        self._refused[chat_id] = now
        return True

    def _sweep(self, now: float) -> None:
        if now - self._swept < FORGET_AFTER_S:
            return
        self._swept = now
        for chat_id in [c for c, b in self._buckets.items() if now - b.stamp > FORGET_AFTER_S]:
            del self._buckets[chat_id]
        for chat_id in [c for c, at in self._refused.items() if now - at > FORGET_AFTER_S]:
            del self._refused[chat_id]


async def _refuse(update: Update, context: ContextTypes.DEFAULT_TYPE, guard: ChatGuard, key: str) -> None:
    chat = update.effective_chat
    assert chat is not None
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except TelegramError:
            pass
    if not guard.may_refuse(chat.id):
        return
    user = update.effective_user
    try:
        await context.bot.send_message(chat.id, t(key, from_telegram(user.language_code if user else None)))
    except TelegramError as error:
        log.info("chat %s: refusal not sent: %s", chat.id, error)


def handler(guard: ChatGuard) -> BaseHandler:
    """The first handler (group -1): stops an update from a chat that may not be served now."""

    async def check(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat, user = update.effective_chat, update.effective_user
        if chat is None:
            return
        if user is not None and user.id in guard.exempt:
            return
        if chat.type != ChatType.PRIVATE and not guard.allow_groups:
            log.info("chat %s (%s): not private, ignored", chat.id, chat.type)
            await _refuse(update, context, guard, "private_only")
            raise ApplicationHandlerStop
        if not guard.take(chat.id):
            log.info("chat %s: over its rate limit, update %s dropped", chat.id, update.update_id)
            await _refuse(update, context, guard, "slow_down")
            raise ApplicationHandlerStop

    return TypeHandler(Update, check)
