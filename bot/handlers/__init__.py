"""Telegram handlers, one module per feature, registered in one place so the order is visible.

Order matters in python-telegram-bot: within a group the first matching handler wins. Commands
and buttons come first, then the kinds of message the bot understands, then the catch-alls
(an unknown command, an unsupported message, a button it does not know).
"""

from __future__ import annotations

from telegram.ext import Application

from . import characters, errors, help, language, start, stories, talk


def register(application: Application) -> None:
    for module in (start, help, stories, characters, language, talk):
        application.add_handlers(module.handlers())
    application.add_handlers(help.fallback_handlers())
    application.add_error_handler(errors.on_error)
