"""Sending a rendered answer to its chat, once.

Telegram has no idempotency key, so "exactly once" is a policy about errors:

* 429 (``RetryAfter``), 5xx, refused or dropped connections, write and connect timeouts: the
  message was not created; wait and send again (exponential backoff), a few times here and
  later again from the dispatcher.
* A *read* timeout after the whole upload went out: Telegram most likely created the message
  and only the answer was lost. Sending again would show the child the same video twice, so the
  request counts as sent (without a message id) and the doubt is logged.
* 403 (the user blocked the bot) and 400s about the chat: nobody to send to; the request fails.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from telegram import Bot, Message, ReplyParameters
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from .store import Request

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0)


class MaybeDelivered(Exception):
    """The upload went out and the answer timed out: treat as delivered, never resend."""


class Undeliverable(Exception):
    """The chat cannot receive it (blocked the bot, chat gone); the message says why."""


class NotNow(Exception):
    """Telegram could not be reached after several tries; try again later."""


@dataclass(frozen=True)
class Video:
    data: bytes
    duration_s: float
    size: int
    video_note: bool
    caption: str | None = None
    """Shown under a regular video (a story's part, to read along); video notes have none."""


def _ambiguous(error: TimedOut) -> bool:
    """Whether the request may have been processed: only a read timeout says so."""
    return isinstance(error.__cause__, httpx.ReadTimeout)


def seconds_of(value: object) -> float:
    """A duration PTB gives as seconds or, with PTB_TIMEDELTA, as a timedelta, in seconds."""
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


async def send_video(bot: Bot, request: Request, video: Video, read_timeout_s: float) -> Message:
    """Send ``video`` as the answer to ``request`` (a reply to the message that asked for it).

    Raises
    ------
    MaybeDelivered, Undeliverable, NotNow
        See the module docstring.
    """
    reply = ReplyParameters(message_id=request.incoming_message_id, allow_sending_without_reply=True)
    duration = max(1, round(video.duration_s))
    as_note = video.video_note
    for pause in (*BACKOFF_S, None):
        try:
            if as_note:
                return await bot.send_video_note(
                    request.chat_id,
                    video.data,
                    duration=duration,
                    length=video.size,
                    reply_parameters=reply,
                    read_timeout=read_timeout_s,
                )
            return await bot.send_video(
                request.chat_id,
                video.data,
                duration=duration,
                width=video.size,
                height=video.size,
                caption=video.caption,
                supports_streaming=True,
                reply_parameters=reply,
                read_timeout=read_timeout_s,
            )
        except RetryAfter as error:
            wait = seconds_of(error.retry_after)
            log.info("%s: flood control, waiting %.0f s", request.label, wait)
            await asyncio.sleep(wait)
            continue
        except Forbidden as error:
            raise Undeliverable(f"forbidden: {error.message}") from error
        except BadRequest as error:
            text = error.message.lower()
            if "chat not found" in text or "user is deactivated" in text or "chat_id" in text:
                raise Undeliverable(f"bad request: {error.message}") from error
            if as_note:
                log.warning(
                    "%s: video note refused (%s): sending a plain video", request.label, error.message
                )
                as_note = False
                continue
            raise Undeliverable(f"bad request: {error.message}") from error
        except TimedOut as error:
            if _ambiguous(error):
                raise MaybeDelivered(str(error)) from error
            failure: NetworkError = error
        except NetworkError as error:
            failure = error
        if pause is None:
            raise NotNow(f"{type(failure).__name__}: {failure.message}") from failure
        log.info("%s: send failed (%s), retrying in %.0f s", request.label, failure.message, pause)
        await asyncio.sleep(pause)
    raise NotNow("too many flood waits")
