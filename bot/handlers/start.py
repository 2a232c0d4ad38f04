"""/start: a short help text at once, then the current character says hello in a video note.

``/start fox`` (what Telegram sends for the deep link ``t.me/<bot>?start=fox``, the share link
of each character in /characters) picks that character first; an unknown one is said so and the
chat keeps its own."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes

from engine.character_spec import ID_PATTERN

from ..intake import admit, answering_character, chat_of
from ..services import services
from ..texts import t


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    chat = chat_of(svc, update)
    if svc.store.find(chat.chat_id, message.message_id, "greeting") is not None:
        return  # a redelivered /start: already greeted
    if context.args:  # a deep link: t.me/<bot>?start=<character id>
        wanted = context.args[0]
        svc.catalogue.reload()
        picked = svc.catalogue.characters.get(wanted) if ID_PATTERN.match(wanted) else None
        if picked is None:
            await message.reply_text(t("deep_link_unknown", chat.language))
        elif picked.id != chat.character:
            svc.store.update_chat(chat.chat_id, character=picked.id)
            chat = chat_of(svc, update)
    character = await answering_character(svc, chat, message)
    if character is None:
        return
    first_name = update.effective_user.first_name if update.effective_user else ""
    welcome = t("welcome", chat.language, first_name=first_name, name=character.name)
    await message.reply_text(f"{welcome}\n\n{t('help', chat.language, name=character.name)}")
    await admit(  # when busy, the help text is answer enough: no greeting video, no refusal
        svc,
        message,
        chat,
        character,
        [
            dict(
                chat_id=chat.chat_id,
                user_id=update.effective_user.id if update.effective_user else None,
                kind="greeting",
                input=character.greeting_for(chat.language),
                character=character.id,
                language=chat.language,
                incoming_message_id=message.message_id,
            )
        ],
        quiet=True,
    )


def handlers() -> list[BaseHandler]:
    return [CommandHandler("start", start)]
