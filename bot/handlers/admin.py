"""Admin commands: who is an admin, /jobs, /cancel JOB, /delcharacter, /renamecharacter.

Admins are the Telegram user ids in ``GRAMOPHONE_ADMINS``. Every admin handler checks the user
that sent the update (never the chat: an admin's command forwarded into a group is still only
an admin's if an admin sent it), and everyone else gets a polite refusal and a log line. Buttons
are checked the same way: callback data is untrusted input that any client can forge, so a
non-admin pressing ``del:owl:yes`` (or sending it by hand) is refused before anything is parsed,
and an admin's press is parsed whole and checked against the store (only characters made here
can be renamed or deleted; the built-in ones belong to the package).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from .. import job_view
from ..character_store import PublishError, clean_name
from ..services import Services, services
from ..store import MAKE_ACTIVE
from ..texts import t
from .common import (
    acknowledge,
    chat_language,
    edit_text,
    invalid_button,
    message_context,
    message_of,
    parse_callback,
    query_context,
)

log = logging.getLogger(__name__)

ADMIN_CALLBACKS = r"^(nc|ns|del|ren):"
"""Callback data prefixes of admin buttons: refused for anyone else wherever they turn up."""
DELETE_CALLBACK = re.compile(r"del:([a-z0-9][a-z0-9-]{0,39})(?::(yes|no))?")
RENAME_CALLBACK = re.compile(r"ren:([a-z0-9][a-z0-9-]{0,39})")
JOBS_LISTED = 15
RENAME_PICK, RENAME_NAME = range(2)

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, Any]]


def is_admin(svc: Services, update: Update) -> bool:
    user = update.effective_user
    return user is not None and not user.is_bot and user.id in svc.settings.admins


async def refuse(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The polite no, and the attempt in the log (who, and what they tried)."""
    svc = services(context)
    user = update.effective_user
    language = chat_language(svc, update)
    query = update.callback_query
    if query is not None:
        log.warning("non-admin user %s pressed the admin button %r", user.id if user else None, query.data)
        await _alert(query, t("admin_only", language))
        return
    message = update.effective_message
    what = (message.text or "").split()[0] if message and message.text else "?"
    log.warning(
        "non-admin user %s (chat %s) tried the admin command %s",
        user.id if user else None,
        update.effective_chat.id if update.effective_chat else None,
        what[:40],
    )
    if message is not None:
        await message.reply_text(t("admin_only", language))


async def _alert(query: Any, text: str) -> None:
    from telegram.error import BadRequest

    try:
        await query.answer(text, show_alert=True)
    except BadRequest as error:
        log.info("callback query %s not answered: %s", query.id, error.message)


def admin_only(handler: Handler) -> Handler:
    """Run ``handler`` for admins only; anyone else is refused (and a conversation never starts)."""

    @functools.wraps(handler)
    async def checked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Any:
        if not is_admin(services(context), update):
            await refuse(update, context)
            return ConversationHandler.END
        return await handler(update, context)

    return checked


def quiet_conversation(**kwargs: Any) -> ConversationHandler:
    """A ConversationHandler without PTB's per_message advice: these conversations mix buttons
    and typed replies on purpose, keyed per chat and user, which is what we want."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBUserWarning)
        return ConversationHandler(**kwargs)


# -- /jobs and /cancel ---------------------------------------------------------------------------


@admin_only
async def jobs_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Unfinished jobs first (oldest first), then the latest finished ones with their reasons."""
    svc, message, language = message_context(update, context)
    active = svc.store.make_jobs(*MAKE_ACTIVE)
    done = [
        job
        for job in svc.store.make_jobs(limit=JOBS_LISTED, newest_first=True)
        if job.status not in MAKE_ACTIVE
    ]
    listed = active + done[: max(0, JOBS_LISTED - len(active))]
    if not listed:
        await message.reply_text(t("jobs_none", language))
        return
    lines = [t("jobs_header", language)]
    for job in listed:
        lines.append(
            t(
                "jobs_line",
                language,
                job=job.id,
                name=job.name,
                id=job.character_id,
                state=job_view.state_text(
                    job, svc.store, language, listing=True, seconds=svc.workshop.made_in(job.id)
                ),
            )
        )
    await message.reply_text("\n".join(lines))


@admin_only
async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel JOB: stop a character job, queued or running."""
    svc, message, language = message_context(update, context)
    argument = (context.args or [""])[0].lstrip("#")
    if not argument.isdigit():
        active = svc.store.make_jobs(*MAKE_ACTIVE)
        await message.reply_text(t("cancel_usage", language, example=active[0].id if active else 1))
        return
    job_id = int(argument)
    job = svc.store.find_make_job(job_id)
    if job is None:
        await message.reply_text(t("cancel_unknown", language, job=job_id))
        return
    cancelled = await svc.workshop.cancel(job_id, update.effective_user.id if update.effective_user else 0)
    if cancelled is None:
        await message.reply_text(
            t("cancel_not_active", language, job=job_id, status=svc.store.make_job(job_id).status)
        )
        return
    log.info(
        "admin %s cancelled %s", update.effective_user.id if update.effective_user else None, cancelled.label
    )
    await message.reply_text(t("cancel_done", language, job=job_id, name=cancelled.name))
    await svc.workshop.show(cancelled, force=True)


# -- /delcharacter -------------------------------------------------------------------------------


def _made_characters(svc: Services) -> list[Any]:
    svc.catalogue.reload()
    return [character for character in svc.catalogue.list() if svc.characters.owns(character)]


def _made_character(svc: Services, identifier: str) -> Any:
    character = svc.catalogue.characters.get(identifier)
    if character is None:
        svc.catalogue.reload()
        character = svc.catalogue.characters.get(identifier)
    return character if character is not None and svc.characters.owns(character) else None


async def _offer_made_characters(
    svc: Services, message: Any, language: str, prefix: str, prompt: str
) -> bool:
    """A keyboard of the characters admins made (built-in ones cannot be changed); False if none."""
    made = _made_characters(svc)
    if not made:
        await message.reply_text(t("del_none", language))
        return False
    keyboard = [[InlineKeyboardButton(f"{c.name} ({c.id})", callback_data=f"{prefix}:{c.id}")] for c in made]
    await message.reply_text(t(prompt, language), reply_markup=InlineKeyboardMarkup(keyboard))
    return True


@admin_only
async def delete_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/delcharacter [ID]: a keyboard of the made characters, or the confirmation for one."""
    svc, message, language = message_context(update, context)
    if context.args:
        character = _made_character(svc, context.args[0].lower())
        if character is not None:
            await message.reply_text(
                t("del_confirm", language, name=character.name, id=character.id),
                reply_markup=_confirm_keyboard(character.id, language),
            )
            return
    await _offer_made_characters(svc, message, language, "del", "del_prompt")


def _confirm_keyboard(identifier: str, language: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(t("del_yes", language), callback_data=f"del:{identifier}:yes"),
                InlineKeyboardButton(t("del_no", language), callback_data=f"del:{identifier}:no"),
            ]
        ]
    )


@admin_only
async def delete_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc, query, language = query_context(update, context)
    match = parse_callback(query.data, DELETE_CALLBACK)
    message = message_of(query)
    character = _made_character(svc, match.group(1)) if match else None
    if match is None or character is None or message is None:
        await invalid_button(query, language)
        return
    await acknowledge(query)
    answer = match.group(2)
    if answer is None:
        await message.edit_text(
            t("del_confirm", language, name=character.name, id=character.id),
            reply_markup=_confirm_keyboard(character.id, language),
        )
        return
    if answer == "no":
        await edit_text(message, t("del_kept", language, name=character.name))
        return
    await asyncio.to_thread(svc.characters.delete, character.id)  # its folder: recordings, library, portrait
    await asyncio.to_thread(svc.recorded.remove_character, character.id)  # and the stories told in its voice
    svc.catalogue.reload()
    log.info("admin %s deleted the character %s", query.from_user.id, character.id)
    await edit_text(message, t("del_done", language, name=character.name))


# -- /renamecharacter ----------------------------------------------------------------------------


@admin_only
async def rename_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """/renamecharacter [ID]: pick a made character (unless named), then type its new name."""
    svc, message, language = message_context(update, context)
    if context.args:
        character = _made_character(svc, context.args[0].lower())
        if character is not None:
            context.user_data["rename"] = character.id  # type: ignore[index]
            await message.reply_text(t("rename_ask", language, name=character.name))
            return RENAME_NAME
    offered = await _offer_made_characters(svc, message, language, "ren", "rename_prompt")
    return RENAME_PICK if offered else ConversationHandler.END


@admin_only
async def rename_picked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, query, language = query_context(update, context)
    match = parse_callback(query.data, RENAME_CALLBACK)
    message = message_of(query)
    character = _made_character(svc, match.group(1)) if match else None
    if character is None or message is None:
        await invalid_button(query, language)
        return None
    await acknowledge(query)
    context.user_data["rename"] = character.id  # type: ignore[index]
    await edit_text(message, t("rename_ask", language, name=character.name))
    return RENAME_NAME


@admin_only
async def rename_named(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, message, language = message_context(update, context)
    name = clean_name(message.text)
    if name is None:
        await message.reply_text(t("nc_bad_name", language))
        return None
    identifier = context.user_data.pop("rename", None)  # type: ignore[union-attr]
    character = _made_character(svc, identifier) if identifier else None
    if character is None:
        await message.reply_text(t("rename_failed", language, error=identifier or "?"))
        return ConversationHandler.END
    try:
        old, new = await asyncio.to_thread(svc.characters.rename, character.id, name)
    except PublishError as error:
        await message.reply_text(t("rename_failed", language, error=str(error)))
        return ConversationHandler.END
    svc.catalogue.reload()
    log.info(
        "admin %s renamed %s from %r to %r",
        update.effective_user.id if update.effective_user else None,
        character.id,
        old,
        new,
    )
    await message.reply_text(t("rename_done", language, old=old, new=new))
    return ConversationHandler.END


async def rename_cancelled(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    if context.args:  # "/cancel 5" means the job, not this conversation
        await cancel_command(update, context)
        return None
    context.user_data.pop("rename", None)  # type: ignore[union-attr]
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("rename_cancelled", chat_language(services(context), update)))
    return ConversationHandler.END


async def rename_use_buttons(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("nc_use_buttons", chat_language(services(context), update)))


# -- buttons nobody else may press ---------------------------------------------------------------


@admin_only
async def stale_admin_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An admin button outside its conversation (the conversation ended, the bot restarted)."""
    assert update.callback_query is not None
    await invalid_button(update.callback_query, chat_language(services(context), update))


def handlers() -> list[BaseHandler]:
    new = filters.UpdateType.MESSAGE
    rename = quiet_conversation(
        entry_points=[CommandHandler("renamecharacter", rename_command)],
        states={
            RENAME_PICK: [
                CallbackQueryHandler(rename_picked, pattern=r"^ren:"),
                MessageHandler(new & ~filters.COMMAND, rename_use_buttons),
            ],
            RENAME_NAME: [MessageHandler(new & filters.TEXT & ~filters.COMMAND, rename_named)],
        },
        fallbacks=[CommandHandler("cancel", rename_cancelled)],
        allow_reentry=True,
        name="renamecharacter",
    )
    return [
        rename,
        CommandHandler("jobs", jobs_command),
        CommandHandler("cancel", cancel_command),
        CommandHandler("delcharacter", delete_command),
        CallbackQueryHandler(delete_pressed, pattern=r"^del:"),
    ]


def guard_handlers() -> list[BaseHandler]:
    """After every conversation: admin buttons that reached no handler above."""
    return [CallbackQueryHandler(stale_admin_button, pattern=ADMIN_CALLBACKS)]
