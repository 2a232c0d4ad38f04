"""Telegram handlers, one module per feature, registered in one place so the order is visible.

Order matters in python-telegram-bot: within a group the first matching handler wins. Group -1
is the gate (:mod:`bot.guard`): private chats only, a rate limit per chat. Then the admins'
conversations come first (while one is going, its typed replies and pictures belong to it), then
commands and buttons, then the kinds of message the bot understands, then the admin buttons
nobody else may press, then the catch-alls (an unknown command, an unsupported message, a button
it does not know).
"""

from __future__ import annotations

from telegram.ext import Application

from .. import guard as chat_guard
from . import admin, characters, errors, help, language, newcharacter, newstory, start, stories, talk


def register(
    application: Application, guard: chat_guard.ChatGuard, *, draft_timeout_s: float | None = None
) -> None:
    application.add_handler(chat_guard.handler(guard), group=-1)  # before everything: floods, groups
    application.add_handlers(newcharacter.handlers(timeout_s=draft_timeout_s))
    application.add_handlers(newstory.handlers())
    for module in (admin, start, help, stories, characters, language, talk):
        application.add_handlers(module.handlers())
    application.add_handlers(admin.guard_handlers())
    application.add_handlers(help.fallback_handlers())
    application.add_error_handler(errors.on_error)
