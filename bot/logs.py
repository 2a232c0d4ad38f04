"""Logging for the bot's processes: one format, quiet libraries, and no secret in any line.

The token is in every Bot API URL (``/bot<token>/getUpdates``), and PTB, httpx and exception
messages print URLs, at DEBUG and sometimes higher. A filter on every handler rewrites each
record before it is formatted: the message, the exception text and the stack are redacted.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable

REDACTED = "<redacted>"


class RedactSecrets(logging.Filter):
    """Replace each secret in a record (message, exception, stack) by ``<redacted>``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted(
            {secret for secret in secrets if secret and len(secret) >= 6}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def configure_logging(level: str, *, secrets: Iterable[str] = ()) -> None:
    """The bot's and workers' logging: ``level`` for ours, WARNING for chatty libraries,
    ``secrets`` redacted from every line of every handler."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        force=True,  # the gramophone command has configured logging for the engine already
    )
    # httpx logs every request URL at INFO; the filter would hide the token, the noise stays.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # With max_retries=0 it logs every 429 as an error with a traceback; bot.delivery handles them.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
