"""Every text the bot shows, in English and Russian, and the language helpers.

Texts are plain (no parse_mode), so a character's or a child's name with a ``.`` or ``_`` in it
can never make Telegram reject a message. ``{placeholders}`` are filled by :func:`t`.
"""

from __future__ import annotations

import unicodedata

LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
_RUSSIAN_SPEAKERS = {"ru", "uk", "be", "kk", "ky", "uz", "tg", "hy", "az", "ka", "tt", "ba", "mn"}
"""Telegram language codes whose speakers more likely read Russian than English."""

TEXTS: dict[str, dict[str, str]] = {
    "help": {
        "en": (
            "Send me a voice note and {name} will say it back in its own voice, in a round video.\n"
            "Or write me something and {name} will read it to you.\n\n"
            "/story - a bedtime story\n"
            "/characters - choose who answers\n"
            "/language - English or Russian\n"
            "/help - this message"
        ),
        "ru": (
            "Пришли мне голосовое сообщение, и {name} повторит его своим голосом в кружочке.\n"
            "Или напиши мне что-нибудь, и {name} прочитает это вслух.\n\n"
            "/story - сказка на ночь\n"
            "/characters - выбрать, кто будет отвечать\n"
            "/language - русский или английский\n"
            "/help - это сообщение"
        ),
    },
    "welcome": {
        "en": "Hello, {first_name}! {name} is getting ready to say hello to you...",
        "ru": "Привет, {first_name}! {name} уже готовится поздороваться с тобой...",
    },
    "cmd_start": {"en": "Say hello", "ru": "Поздороваться"},
    "cmd_story": {"en": "A bedtime story", "ru": "Сказка на ночь"},
    "cmd_characters": {"en": "Choose who answers", "ru": "Выбрать героя"},
    "cmd_language": {"en": "English or Russian", "ru": "Русский или английский"},
    "cmd_help": {"en": "What I can do", "ru": "Что я умею"},
    # -- queue ------------------------------------------------------------------------------------
    "position": {
        "en": "You are number {position} in line. {name} will answer you soon!",
        "ru": "Ты {position}-й в очереди. {name} скоро ответит!",
    },
    "busy": {
        "en": "So many children are talking to me right now! Please try again in a few minutes.",
        "ru": "Сейчас со мной говорит очень много ребят! Попробуй ещё раз через пару минут.",
    },
    "too_many_pending": {
        "en": "{name} is still working on your last messages. Wait for the answers, then send more!",
        "ru": "{name} ещё отвечает на твои прошлые сообщения. Дождись ответа и пиши ещё!",
    },
    # -- bad input --------------------------------------------------------------------------------
    "unsupported": {
        "en": "I can only listen to voice notes and read text messages. Try sending me one!",
        "ru": "Я умею слушать голосовые сообщения и читать текст. Пришли мне что-нибудь такое!",
    },
    "file_too_big": {
        "en": "That file is too big for me (more than {mb} MB). A short voice note is best!",
        "ru": "Этот файл слишком большой для меня (больше {mb} МБ). Лучше всего короткое голосовое!",
    },
    "audio_too_long": {
        "en": "That recording is too long for me. Please send one shorter than {minutes} minutes.",
        "ru": "Эта запись слишком длинная. Пришли, пожалуйста, покороче, до {minutes} минут.",
    },
    "audio_unreadable": {
        "en": "I couldn't hear anything in that file. Could you record a voice note instead?",
        "ru": "Я ничего не смог услышать в этом файле. Может, запишешь голосовое сообщение?",
    },
    "audio_empty": {
        "en": "That recording is empty. Hold the microphone button a little longer!",
        "ru": "Эта запись пустая. Подержи кнопку микрофона чуть подольше!",
    },
    "download_failed": {
        "en": "I couldn't get your file from Telegram. Please send it again.",
        "ru": "Я не смог получить твой файл от Telegram. Пришли его, пожалуйста, ещё раз.",
    },
    "text_too_long": {
        "en": "That's a lot of words! I can read up to {limit} characters at once. Try a shorter message.",
        "ru": "Как много слов! Я могу прочитать не больше {limit} символов за раз. Попробуй покороче.",
    },
    "text_empty": {
        "en": "I need some words to read. Write me a sentence!",
        "ru": "Мне нужны слова, чтобы прочитать. Напиши мне предложение!",
    },
    "unknown_command": {
        "en": "I don't know that command. Here is what I can do:",
        "ru": "Я не знаю такой команды. Вот что я умею:",
    },
    # -- characters -------------------------------------------------------------------------------
    "characters_prompt": {"en": "Who should answer you?", "ru": "Кто будет тебе отвечать?"},
    "character_chosen": {
        "en": "{name} will answer you now! Here it is saying hello.",
        "ru": "Теперь тебе будет отвечать {name}! Послушай приветствие.",
    },
    "character_gone": {
        "en": "The friend you chose is not here any more, so {name} will answer you instead.",
        "ru": "Друга, которого ты выбрал, больше нет, поэтому теперь тебе ответит {name}.",
    },
    "no_characters": {
        "en": "Nobody is here to answer yet. Please come back a bit later!",
        "ru": "Пока никого нет, кто мог бы ответить. Загляни чуть позже!",
    },
    # -- stories ----------------------------------------------------------------------------------
    "stories_prompt": {"en": "Which story would you like?", "ru": "Какую сказку рассказать?"},
    "no_stories": {"en": "I don't know any stories yet.", "ru": "Я пока не знаю ни одной сказки."},
    "story_chosen": {
        "en": "{name} will tell you \"{title}\". It comes in {parts} parts, here comes the first one!",
        "ru": "{name} расскажет тебе сказку «{title}». В ней {parts} частей, вот первая!",
    },
    "story_chosen_one": {
        "en": "{name} will tell you \"{title}\".",
        "ru": "{name} расскажет тебе сказку «{title}».",
    },
    # -- language ---------------------------------------------------------------------------------
    "language_prompt": {"en": "Which language shall we speak?", "ru": "На каком языке будем говорить?"},
    "language_set": {"en": "Now we speak English!", "ru": "Теперь говорим по-русски!"},
    # -- problems ---------------------------------------------------------------------------------
    "button_invalid": {
        "en": "That button is no longer valid.",
        "ru": "Эта кнопка больше не работает.",
    },
    "render_failed": {
        "en": "I'm sorry, {name} couldn't make that video. Please try again!",
        "ru": "Прости, видео не получилось. Попробуй ещё раз!",
    },
    "error": {
        "en": "Oops, something went wrong on my side. Please try again!",
        "ru": "Ой, у меня что-то сломалось. Попробуй ещё раз!",
    },
}


def t(key: str, language: str | None, **values: object) -> str:
    """The text ``key`` in ``language`` (English when missing), placeholders filled."""
    table = TEXTS[key]
    text = table.get(language or DEFAULT_LANGUAGE) or table[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def from_telegram(language_code: str | None) -> str:
    """The bot language for a Telegram user's ``language_code`` (``ru``, ``en-GB``, ``uk``...)."""
    if not language_code:
        return DEFAULT_LANGUAGE
    base = language_code.split("-")[0].lower()
    if base in LANGUAGES:
        return base
    return "ru" if base in _RUSSIAN_SPEAKERS else DEFAULT_LANGUAGE


def language_of_text(text: str, default: str) -> str:
    """The language to read ``text`` in: Russian for mostly Cyrillic letters, English for mostly
    Latin ones, ``default`` when there are no letters or it is a tie. A chat set to English may
    still send Russian text, and eSpeak reading Cyrillic with an English voice is gibberish."""
    cyrillic = latin = 0
    for char in text:
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        if name.startswith("CYRILLIC"):
            cyrillic += 1
        elif name.startswith("LATIN"):
            latin += 1
    if cyrillic > latin:
        return "ru"
    if latin > cyrillic:
        return "en"
    return default
