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
    "slow_down": {
        "en": "That's a lot of messages! Let me catch my breath, then send me one more in a minute.",
        "ru": "Как много сообщений! Дай мне перевести дух и пришли ещё одно через минутку.",
    },
    "private_only": {
        "en": "I only talk in private chats. Write to me directly!",
        "ru": "Я разговариваю только в личных сообщениях. Напиши мне напрямую!",
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
    "characters_recorded": {
        "en": "{mark} a real person, recorded with their agreement.",
        "ru": "{mark} настоящий человек, записанный с его согласия.",
    },
    "characters_share": {
        "en": "To give a friend a character, send them its link:",
        "ru": "Чтобы подарить героя другу, пошли ему ссылку:",
    },
    "deep_link_unknown": {
        "en": "I don't know that character (the link may be old); here is who answers now. /characters "
        "shows them all.",
        "ru": "Я не знаю такого героя (может быть, ссылка устарела); вот кто отвечает сейчас. Все герои: "
        "/characters.",
    },
    # what a parent sees before pressing Start (setMyDescription: <= 512; setMyShortDescription: <= 120)
    "bot_description": {
        "en": "A storybook character (a little fox, Grandma...) answers your child in a short video, lips "
        "moving with every word. Send a voice note or a message, or ask for a bedtime story with /story. "
        "What is kept: a voice note or message only until its answer is sent; a record of each request for "
        "{days} days; the chat's language and character. Nothing is shared with other chats.",
        "ru": "Сказочный герой (лисёнок, бабушка...) отвечает ребёнку коротким видео, шевеля губами на "
        "каждом слове. "
        "Пришли голосовое или сообщение, или попроси сказку на ночь: /story. Что хранится: голосовое или "
        "сообщение только пока не отправлен ответ; запись о каждом запросе {days} дн.; язык и герой чата. "
        "Ничего не передаётся в другие чаты.",
    },
    "bot_short_description": {
        "en": "A storybook character answers your child in a talking video. Voice notes are deleted once "
        "answered.",
        "ru": "Сказочный герой отвечает ребёнку говорящим видео. Голосовые удаляются после ответа.",
    },
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
        "en": '{name} will tell you "{title}". It comes in {parts} parts, here comes the first one!',
        "ru": "{name} расскажет тебе сказку «{title}». В ней {parts} частей, вот первая!",
    },
    "story_chosen_one": {
        "en": '{name} will tell you "{title}".',
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
    # -- admins: who may ----------------------------------------------------------------------------
    "admin_only": {
        "en": "Sorry, only the grown-ups who look after this bot can do that.",
        "ru": "Извини, это могут делать только взрослые, которые следят за ботом.",
    },
    "cmd_newcharacter": {
        "en": "Make a character from a picture or a person",
        "ru": "Новый герой из картинки или человека",
    },
    "cmd_newstory": {"en": "Record a story in a real voice", "ru": "Записать сказку живым голосом"},
    "cmd_jobs": {"en": "Character jobs", "ru": "Задачи по героям"},
    "cmd_cancel": {"en": "Cancel a character job", "ru": "Отменить задачу"},
    "cmd_delcharacter": {"en": "Delete a character", "ru": "Удалить героя"},
    "cmd_renamecharacter": {"en": "Rename a character", "ru": "Переименовать героя"},
    # -- admins: /newcharacter ----------------------------------------------------------------------
    "nc_ask_name": {
        "en": "Let's make a new character! What is its name? (up to 40 letters; /cancel to stop)",
        "ru": "Сделаем нового героя! Как его зовут? (до 40 букв; /cancel - отменить)",
    },
    "nc_bad_name": {
        "en": "That name won't do: 1 to 40 letters, please. What is the character's name?",
        "ru": "Такое имя не подойдёт: нужно от 1 до 40 букв. Как зовут героя?",
    },
    "nc_ask_picture": {
        "en": "{name} (id {id}). Now send me a picture of {name}: a photo or an image file, "
        "one face looking at the camera.",
        "ru": "{name} (id {id}). Теперь пришли картинку с героем: фото или файл с изображением, "
        "одно лицо, смотрит в камеру.",
    },
    "nc_not_a_picture": {
        "en": "Please send a picture (a photo or an image file), or /cancel.",
        "ru": "Пришли, пожалуйста, картинку (фото или файл с изображением) или /cancel.",
    },
    "nc_picture_too_big": {
        "en": "That picture is too big (more than {mb} MB). Send a smaller one, or /cancel.",
        "ru": "Эта картинка слишком большая (больше {mb} МБ). Пришли поменьше или /cancel.",
    },
    "nc_picture_bad": {
        "en": "I can't use that picture: {reason}.\nSend another one, or /cancel.",
        "ru": "Эта картинка не подходит: {reason}.\nПришли другую или /cancel.",
    },
    "nc_no_face": {
        "en": "I couldn't find a face in this picture: animals and drawings often fool the face finder. "
        "Show me with the grid: send four cells, the two corners of the mouth and then the two eyes, "
        "for example {example}. If the mouth is open, add two more: the top and the bottom of the opening. "
        "Or tap a choice below, or send another picture.",
        "ru": "Я не нашёл лицо на этой картинке: животные и рисунки часто сбивают поиск лиц. "
        "Покажи по сетке: пришли четыре клетки — два уголка рта, потом два глаза, "
        "например {example}. Если рот открыт, добавь ещё две: верх и низ открытого рта. "
        "Или выбери вариант ниже, или пришли другую картинку.",
    },
    "nc_from_person": {"en": "Or: record a person instead", "ru": "Или: записать человека"},
    "nc_person_intro": {
        "en": "Let's record {name}! I'll send the reading in {parts} parts. For each, record a round video "
        "message (hold the video button and swipe up to lock it) reading the part aloud: face in the circle, "
        "even light, looking at the camera, starting with your mouth closed. Then one silent video. (Or "
        "send one ordinary video of all the parts read one after another.)",
        "ru": "Запишем героя {name}! Я пришлю текст частями, их {parts}. Для каждой запиши круглое "
        "видеосообщение "
        "(зажми кнопку видео и смахни вверх, чтобы не держать) и прочитай часть вслух: лицо в круге, светло, "
        "смотри в камеру, начни с закрытым ртом. Потом одно видео без слов. (Или пришли одно обычное видео, "
        "где прочитаны все части подряд.)",
    },
    "nc_take": {
        "en": "Part {part} of {parts}. Record a round video reading this:\n\n{text}",
        "ru": "Часть {part} из {parts}. Запиши круглое видео и прочитай это:\n\n{text}",
    },
    "nc_take_ok": {
        "en": "Part {part} of {parts}: recorded, thank you.",
        "ru": "Часть {part} из {parts}: записано, спасибо.",
    },
    "nc_take_again": {
        "en": "Could you record that one again? {reasons}.",
        "ru": "Запиши, пожалуйста, ещё раз: {reasons}.",
    },
    "nc_send_take": {
        "en": "Please send a round video message (or a video) for this part, or /cancel.",
        "ru": "Пришли, пожалуйста, круглое видеосообщение (или видео) для этой части или /cancel.",
    },
    "nc_take_too_big": {
        "en": "That video is too big (more than {mb} MB); record a shorter one, or /cancel.",
        "ru": "Это видео слишком большое (больше {mb} МБ); запиши покороче или /cancel.",
    },
    "nc_ask_idle": {
        "en": "All parts recorded! Last one: look at the camera and smile, without talking, for 10 seconds.",
        "ru": "Все части записаны! Последнее: посмотри в камеру и улыбнись, без слов, 10 секунд.",
    },
    "nc_consent": {
        "en": "Before I make {name}: did the person in these videos agree to become a character children "
        "talk to? "
        "Their recordings stay on this bot until the character is deleted (/delcharacter).",
        "ru": "Прежде чем делать героя {name}: человек на видео согласен стать героем, с которым говорят "
        "дети? "
        "Записи хранятся у бота, пока героя не удалят (/delcharacter).",
    },
    "nc_consent_yes": {"en": "Yes, they agreed", "ru": "Да, согласен"},
    "nc_consent_given": {"en": "Thank you: agreed.", "ru": "Спасибо: согласие есть."},
    "nc_confirm_person": {
        "en": "Ready to make:\nName: {name} (id {id})\nMade from: {made_from} and a silent one\n"
        "Voice for written texts: {voice}\nMade on: the CPU\n\nMake it?",
        "ru": "Всё готово:\nИмя: {name} (id {id})\nИз чего: {made_from} и одна запись без слов\n"
        "Голос для текстов: {voice}\nГде делаем: процессор\n\nДелаем?",
    },
    "nc_made_from_parts": {"en": "{parts} recorded parts", "ru": "записанных частей: {parts}"},
    "nc_made_from_video": {"en": "one video of the whole passage", "ru": "одно видео со всем текстом"},
    "ns_ask_character": {
        "en": "Which character will tell the story, in the voice you record?",
        "ru": "Кто из героев расскажет сказку голосом, который ты запишешь?",
    },
    "ns_ask_audio": {
        "en": "{name} it is. Now send the story: a voice note or an audio file, up to {minutes} minutes. "
        "Read calmly, with small pauses between sentences.",
        "ru": "Рассказывает {name}. Теперь пришли сказку: голосовое или аудиофайл, до {minutes} мин. "
        "Читай спокойно, с небольшими паузами между предложениями.",
    },
    "ns_send_audio": {
        "en": "Please send the story as a voice note or an audio file, or /cancel.",
        "ru": "Пришли, пожалуйста, сказку голосовым или аудиофайлом или /cancel.",
    },
    "ns_too_big": {
        "en": "That file is too big (more than {mb} MB). Send a shorter one, or /cancel.",
        "ru": "Этот файл слишком большой (больше {mb} МБ). Пришли покороче или /cancel.",
    },
    "ns_too_long": {
        "en": "That story is longer than {minutes} minutes; send a shorter one, or /cancel.",
        "ru": "Эта сказка длиннее {minutes} мин.; пришли покороче или /cancel.",
    },
    "ns_too_short": {
        "en": "That is only a few seconds; send the whole story, or /cancel.",
        "ru": "Это всего несколько секунд; пришли сказку целиком или /cancel.",
    },
    "ns_unreadable": {
        "en": "I can't play that file; send an ordinary voice note or an MP3/M4A/OGG audio file, or /cancel.",
        "ru": "Не получается прочитать этот файл; пришли обычное голосовое или аудио MP3/M4A/OGG или "
        "/cancel.",
    },
    "ns_ask_title": {
        "en": "Got it: about {minutes} min. What is the story called?",
        "ru": "Получил: около {minutes} мин. Как называется сказка?",
    },
    "ns_bad_title": {
        "en": "Please send a title of 1 to 40 characters.",
        "ru": "Пришли название, от 1 до 40 символов.",
    },
    "ns_gone": {
        "en": "That character is gone; start again with /newstory.",
        "ru": "Этого героя больше нет; начни заново: /newstory.",
    },
    "ns_saved": {
        "en": 'Saved! "{title}" ({parts} parts) is in /story for children who chose {name}.',
        "ru": "Сохранено! «{title}» ({parts} частей) есть в /story у детей, выбравших героя {name}.",
    },
    "ns_cancelled": {"en": "OK, no new story this time.", "ru": "Хорошо, в этот раз без новой сказки."},
    "nc_timed_out": {
        "en": "That new character waited too long, so I put it away. Send /newcharacter to start again.",
        "ru": "Новый герой ждал слишком долго, я его убрал. Пришли /newcharacter, чтобы начать заново.",
    },
    "nc_closer": {
        "en": "Thank you! Now a closer look: send the same cells on this grid, the mouth corners and "
        "then the eyes (and the open mouth's top and bottom, if it is open), for example {example}.",
        "ru": "Спасибо! Теперь поближе: пришли те же клетки на этой сетке — уголки рта, потом глаза "
        "(и верх и низ рта, если он открыт), например {example}.",
    },
    "nc_closer_again": {
        "en": "Closer still, for a small face: the same cells once more on this grid, for example {example}.",
        "ru": "Ещё ближе, лицо маленькое: те же клетки ещё раз на этой сетке, например {example}.",
    },
    "nc_bad_cells": {
        "en": "I can't use that: {reason}. Send four cells from the grid, mouth corners first, for example "
        "{example}.",
        "ru": "Не получается: {reason}. Пришли четыре клетки сетки, сначала уголки рта, например {example}.",
    },
    "nc_cartoon": {"en": "Usual cartoon proportions", "ru": "Обычные мультяшные пропорции"},
    "nc_gpu": {"en": "Let the GPU find the face", "ru": "Пусть лицо найдёт GPU"},
    "nc_bad_position": {
        "en": "Send the mouth position as two numbers x,y inside the picture ({width}x{height}), "
        "for example {example}.",
        "ru": "Пришли положение рта двумя числами x,y внутри картинки ({width}x{height}), "
        "например {example}.",
    },
    "nc_ask_voice": {
        "en": "Which language and voice will {name} speak with?",
        "ru": "На каком языке и каким голосом будет говорить {name}?",
    },
    "nc_use_buttons": {
        "en": "Please tap one of the buttons above, or /cancel.",
        "ru": "Нажми, пожалуйста, одну из кнопок выше или /cancel.",
    },
    "voice_en_high": {"en": "English, high voice", "ru": "Английский, высокий голос"},
    "voice_en_low": {"en": "English, low voice", "ru": "Английский, низкий голос"},
    "voice_ru_high": {"en": "Russian, high voice", "ru": "Русский, высокий голос"},
    "voice_ru_low": {"en": "Russian, low voice", "ru": "Русский, низкий голос"},
    "nc_confirm": {
        "en": "Ready to make:\nName: {name} (id {id})\nPicture: {width}x{height}, {face}\nVoice: {voice}\n"
        "Made on: {where}\n\nMake it?",
        "ru": "Всё готово:\nИмя: {name} (id {id})\nКартинка: {width}x{height}, {face}\nГолос: {voice}\n"
        "Где делаем: {where}\n\nДелаем?",
    },
    "face_found": {"en": "face found", "ru": "лицо найдено"},
    "face_mouth": {"en": "mouth at {x},{y}", "ru": "рот в точке {x},{y}"},
    "face_pointed": {"en": "mouth and eyes at {cells}", "ru": "рот и глаза в клетках {cells}"},
    "face_cartoon": {"en": "usual cartoon proportions", "ru": "обычные мультяшные пропорции"},
    "face_gpu": {"en": "the GPU will look for the face", "ru": "лицо будет искать GPU"},
    "where_gpu": {"en": "the GPU (FasterLivePortrait)", "ru": "GPU (FasterLivePortrait)"},
    "where_cpu": {"en": "the CPU (puppet)", "ru": "процессор (кукла)"},
    "nc_make": {"en": "Make it", "ru": "Делаем"},
    "nc_stop": {"en": "Cancel", "ru": "Отмена"},
    "nc_cancelled": {"en": "OK, no new character this time.", "ru": "Хорошо, в этот раз без нового героя."},
    # -- admins: a make job's status message -------------------------------------------------------
    "job_status": {
        "en": "New character {name} ({id}), job {job}:\n{state}",
        "ru": "Новый герой {name} ({id}), задача {job}:\n{state}",
    },
    "job_queued": {"en": "waiting, number {position} in line", "ru": "ждёт, {position}-й в очереди"},
    "job_queued_gpu": {
        "en": "waiting for the GPU worker, number {position} in line",
        "ru": "ждёт GPU, {position}-й в очереди",
    },
    "job_retrying": {"en": "(trying again: {error})", "ru": "(ещё одна попытка: {error})"},
    "stage_starting": {"en": "starting", "ru": "начинаем"},
    "stage_animating_gpu": {"en": "animating on GPU", "ru": "оживляем на GPU"},
    "stage_animating_cpu": {"en": "animating on CPU", "ru": "оживляем на процессоре"},
    "stage_building": {"en": "building library", "ru": "собираем библиотеку"},
    "stage_joining": {"en": "joining the recorded videos", "ru": "склеиваем записанные видео"},
    "job_ready": {
        "en": "ready! Made on {where} in {duration}. {name} is in /characters now; here it is saying hello.",
        "ru": "готово! Сделано на: {where}, за {duration}. {name} уже в /characters; вот приветствие.",
    },
    "job_note": {"en": "(on the way: {note})", "ru": "(по пути: {note})"},
    "jobs_ready": {
        "en": "ready, made on {where} in {duration}",
        "ru": "готово, сделано на: {where}, за {duration}",
    },
    "path_flp": {"en": "the GPU (FasterLivePortrait)", "ru": "GPU (FasterLivePortrait)"},
    "path_puppet": {"en": "the CPU (puppet)", "ru": "процессоре (кукла)"},
    "path_person": {"en": "the CPU, from the recorded videos", "ru": "процессоре, из записанных видео"},
    "job_failed": {"en": "failed: {error}", "ru": "не получилось: {error}"},
    "job_cancelled": {"en": "cancelled.", "ru": "отменено."},
    # -- admins: /jobs, /cancel, /delcharacter, /renamecharacter ------------------------------------
    "jobs_none": {"en": "No character jobs yet.", "ru": "Задач по героям пока нет."},
    "jobs_header": {"en": "Character jobs:", "ru": "Задачи по героям:"},
    "jobs_line": {"en": "{job}. {name} ({id}): {state}", "ru": "{job}. {name} ({id}): {state}"},
    "cancel_usage": {
        "en": "Which job? Send /cancel JOB, for example /cancel {example}. See /jobs.",
        "ru": "Какую задачу? Пришли /cancel НОМЕР, например /cancel {example}. Список: /jobs.",
    },
    "cancel_unknown": {"en": "There is no job {job}.", "ru": "Задачи {job} нет."},
    "cancel_not_active": {
        "en": "Job {job} is over already ({status}).",
        "ru": "Задача {job} уже закончена ({status}).",
    },
    "cancel_done": {"en": "Job {job} ({name}) is cancelled.", "ru": "Задача {job} ({name}) отменена."},
    "del_prompt": {"en": "Which character shall I delete?", "ru": "Какого героя удалить?"},
    "del_none": {
        "en": "There are no made characters (the built-in ones cannot be deleted here).",
        "ru": "Сделанных героев нет (встроенных здесь удалить нельзя).",
    },
    "del_confirm": {
        "en": "Delete {name} ({id}) for everyone? This cannot be undone.",
        "ru": "Удалить {name} ({id}) для всех? Вернуть будет нельзя.",
    },
    "del_yes": {"en": "Delete", "ru": "Удалить"},
    "del_no": {"en": "Keep", "ru": "Оставить"},
    "del_done": {"en": "{name} is deleted.", "ru": "{name} удалён."},
    "del_kept": {"en": "{name} stays.", "ru": "{name} остаётся."},
    "rename_prompt": {"en": "Which character shall I rename?", "ru": "Какого героя переименовать?"},
    "rename_ask": {
        "en": "What is {name}'s new name? (up to 40 letters; /cancel to stop)",
        "ru": "Как теперь будут звать {name}? (до 40 букв; /cancel - отменить)",
    },
    "rename_done": {"en": "{old} is now called {new}.", "ru": "{old} теперь зовут {new}."},
    "rename_failed": {"en": "I couldn't rename it: {error}", "ru": "Не получилось переименовать: {error}"},
    "rename_cancelled": {"en": "OK, the name stays.", "ru": "Хорошо, имя остаётся."},
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


def language_of_text(text: str, default: str | None) -> str | None:
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
