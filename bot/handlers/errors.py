"""The error handler: log the failure with its update id, tell the child kindly, keep serving.

python-telegram-bot calls it for any exception a handler raises; the other updates are not
affected either way, and this makes sure the failure is visible in the logs and the child is not
left waiting in silence.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from ..services import services
from ..texts import t
from .common import chat_language

log = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("handling update %s failed", update_id, exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        language = chat_language(services(context), update)
    except Exception:  # noqa: BLE001 -- the state database may be the very problem
        language = "en"
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except TelegramError:
            pass  # already answered, or too old
    try:
        await context.bot.send_message(update.effective_chat.id, t("error", language))
    except TelegramError as error:
        log.warning("could not tell chat %s about the error: %s", update.effective_chat.id, error)
