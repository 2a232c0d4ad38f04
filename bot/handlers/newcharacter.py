"""/newcharacter: an admin makes a new character from one picture, in a short conversation.

name -> picture (a photo or an image file) -> [where the mouth and eyes are, when no face is
found] -> language and voice -> confirm. Everything that can be wrong with the picture is found here,
before anything is queued: ``engine.makers.picture.check_picture`` decodes it (so "not an image"
is caught whatever the file claims), refuses files over ``picture_max_bytes`` and pictures over
``picture_max_pixels`` from the header alone (a decompression bomb never gets decoded), and
looks for a face. Animals and many drawings have no face the landmark model knows; then the bot
sends the picture back with a labelled grid over it (``engine.makers.grid``) and the admin names
four cells: the mouth corners, then the eyes (``E9 H9 D5 I5``). The admin may instead type the
mouth position in picture pixels (``x,y``), take the usual cartoon proportions, or, with a GPU
worker configured, let FasterLivePortrait's own detector try.

The draft lives in ``user_data``, kept with the conversation's state by the application's
PicklePersistence (``data/conversations.pickle``), so a restart in the middle loses nothing; a
draft idle for ``draft_timeout_s`` is dropped, its picture deleted, and the admin told. What must
survive as work (the job) is written to the store only at "Make it", in one row, and the
confirmation message becomes the job's status message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, NetworkError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from engine.errors import GramophoneError

from ..character_store import clean_name, unique_id
from ..delivery import seconds_of
from ..files import remove_quietly, write_atomic
from ..make_jobs import PICTURE_SUFFIXES
from ..services import Services, services
from ..texts import t
from .admin import admin_only, cancel_command, quiet_conversation
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

NAME, PICTURE, POSITION, VOICE, CONFIRM, TAKE, IDLE, CONSENT = range(8)
DRAFT = "newcharacter"
POSITION_CALLBACK = re.compile(r"nc:pos:(cartoon|gpu)")
VOICE_CALLBACK = re.compile(r"nc:voice:([a-z]{2}-(?:high|low))")
CONFIRM_CALLBACK = re.compile(r"nc:(make|stop)")
PART_CHARS = 520
"""A part of the passage to read in one round video: about 40 s read aloud (video notes: 60 s)."""
READING_CHARS_PER_S = 14.0
"""A calm reading pace, to know how long a part's take should be (at least half of it)."""
IDLE_TAKE_RANGE_S = (6.0, 30.0)
"""How long the silent take may be, in seconds."""
WHOLE_PASSAGE_MAX_S = 600.0
"""One ordinary video of the whole passage (at most 20 MB on the cloud Bot API)."""
CARTOON_MOUTH_Y = 0.68
"""Usual cartoon proportions: the mouth centred, this far down a portrait of the character."""
POSITION_TEXT = re.compile(r"\s*\(?\s*(\d{1,6}(?:\.\d+)?)\s*[,;x ]\s*(\d{1,6}(?:\.\d+)?)\s*\)?\s*")


@dataclass(frozen=True)
class VoicePreset:
    """A voice an admin can pick with one tap: the TTS settings, and how far a child's own
    voice is shifted to sound like the character."""

    label: str  # texts key
    language: str
    voice: dict[str, Any]
    pitch_semitones: float


VOICE_PRESETS: dict[str, VoicePreset] = {
    "en-high": VoicePreset("voice_en_high", "en", {"language": "en", "voice": "en-us+f3", "pitch": 70}, 3.0),
    "en-low": VoicePreset(
        "voice_en_low", "en", {"language": "en", "voice": "en-us+m3", "pitch": 35, "rate": 140}, -2.0
    ),
    "ru-high": VoicePreset("voice_ru_high", "ru", {"language": "ru", "voice": "ru+f3", "pitch": 70}, 3.0),
    "ru-low": VoicePreset(
        "voice_ru_low", "ru", {"language": "ru", "voice": "ru+m3", "pitch": 35, "rate": 140}, -2.0
    ),
}


@dataclass
class Draft:
    """A ``/newcharacter`` conversation so far. Kept in ``user_data`` (PicklePersistence), so a
    restart in the middle loses nothing; every field has a default, so an older pickled draft
    (a dict) still loads (:meth:`of`)."""

    name: str = ""
    id: str = ""
    picture: str | None = None  # the picture's path; for a person, their silent take's
    width: int = 0
    height: int = 0
    face: bool = False  # the landmark model found a face in the picture
    landmarks: str | None = None  # how the face was found: face, mouth, pointed, cartoon, gpu, person
    mouth: tuple[float, float] | None = None
    eyes: Any = None  # ((x, y), (x, y)) in picture pixels
    mouth_width: float | None = None
    open_mouth: Any = None  # ((x, y), (x, y)): top and bottom of a mouth open in the picture
    cells: str = ""  # the grid cells the admin typed
    grid: dict[str, Any] | None = None  # the closer look's grid (engine.makers.grid.Grid.to_dict)
    looks: int = 0  # grid answers taken so far
    voice: str | None = None  # a VOICE_PRESETS key
    parts: list[str] = field(default_factory=list)  # the passage's parts to record
    takes: list[str] = field(default_factory=list)  # recorded parts received so far (paths)
    whole: bool = False  # the take being checked is one video of the whole passage
    whole_video: bool = False  # the passage came as one video
    consent: bool = False
    queued: bool = False  # a make job owns the files now

    @classmethod
    def of(cls, stored: Any) -> Draft:
        if isinstance(stored, Draft):
            return stored
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in dict(stored or {}).items() if key in known})

    def update(self, **values: Any) -> None:
        for key, value in values.items():
            if not hasattr(self, key):
                raise AttributeError(f"a draft has no {key!r}")
            setattr(self, key, value)

    def take_whole(self) -> bool:
        """Whether the take just checked was the whole passage (and forget it was asked)."""
        whole, self.whole = self.whole, False
        return whole


def _draft(context: ContextTypes.DEFAULT_TYPE) -> Draft:
    user_data = context.user_data
    assert user_data is not None
    draft = Draft.of(user_data.get(DRAFT))
    user_data[DRAFT] = draft
    return draft


def _drop_draft(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Forget the conversation, and its picture unless a job took it over."""
    stored = context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    draft = Draft.of(stored) if stored else None
    if draft and not draft.queued:
        for path in [draft.picture, *draft.takes]:
            if path:
                remove_quietly(path)


@dataclass(frozen=True)
class _Press:
    """A button press on a ``/newcharacter`` message that can be acted on now (and was answered)."""

    svc: Services
    query: CallbackQuery
    message: Message
    language: str
    draft: Draft
    match: re.Match[str] | None


async def _pressed(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    *,
    pattern: re.Pattern[str] | None = None,
    valid: Callable[[Draft, re.Match[str] | None], bool] = lambda draft, match: True,
) -> _Press | None:
    """The press, checked: its data matches ``pattern``, its message is still there, and the draft
    is at the step this button belongs to (``valid``). Otherwise the admin hears that the button
    is stale, and None comes back."""
    svc, query, language = query_context(update, context)
    match = parse_callback(query.data, pattern) if pattern is not None else None
    message = message_of(query)
    draft = _draft(context)
    if message is None or (pattern is not None and match is None) or not valid(draft, match):
        await invalid_button(query, language)
        return None
    await acknowledge(query)
    return _Press(svc, query, message, language, draft, match)


# -- name ----------------------------------------------------------------------------------------


@admin_only
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message is not None
    _drop_draft(context)
    _draft(context)
    await update.effective_message.reply_text(t("nc_ask_name", chat_language(services(context), update)))
    return NAME


@admin_only
async def named(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, message, language = message_context(update, context)
    name = clean_name(message.text)
    if name is None:
        await message.reply_text(t("nc_bad_name", language))
        return None
    identifier = unique_id(name, taken_ids(svc))
    _draft(context).update(name=name, id=identifier)
    await message.reply_text(
        t("nc_ask_picture", language, name=name, id=identifier),
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton(t("nc_from_person", language), callback_data="nc:src:person")]]
        ),
    )
    return PICTURE


def taken_ids(svc: Services) -> set[str]:
    """Ids no new character may take: in the catalogue, on disk, or promised to a job."""
    svc.catalogue.reload()
    return set(svc.catalogue.characters) | svc.characters.taken_ids() | svc.store.reserved_character_ids()


# -- picture -------------------------------------------------------------------------------------


def picture_of(message: Message) -> tuple[Any, str] | None:
    """The picture of a message (the largest size of a photo, or an image sent as a file) and
    the suffix to save it with."""
    if message.photo:
        return message.photo[-1], ".jpg"
    document = message.document
    if document is not None:
        suffix = Path(document.file_name or "").suffix.lower()
        if (document.mime_type or "").startswith("image/") or suffix in PICTURE_SUFFIXES:
            return document, suffix if suffix in PICTURE_SUFFIXES else ".img"
    return None


def _max_bytes(svc: Services) -> int:
    return min(svc.settings.picture_max_bytes, svc.settings.download_max_bytes)


@admin_only
async def pictured(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc, message, language = message_context(update, context)
    found = picture_of(message)
    if found is None:
        await message.reply_text(t("nc_not_a_picture", language))
        return None
    attachment, suffix = found
    limit = _max_bytes(svc)
    mb = max(1, round(limit / 1_000_000))
    size = getattr(attachment, "file_size", None)
    if size is not None and size > limit:
        log.info("admin %s: picture of %d bytes refused before download", message.chat_id, size)
        await message.reply_text(t("nc_picture_too_big", language, mb=mb))
        return None
    try:
        file = await attachment.get_file()
        data = bytes(await file.download_as_bytearray())
    except BadRequest as error:
        key = "nc_picture_too_big" if "too big" in error.message.lower() else "download_failed"
        await message.reply_text(t(key, language, mb=mb))
        return None
    except NetworkError as error:
        log.warning("admin %s: picture download failed: %s", message.chat_id, error)
        await message.reply_text(t("download_failed", language))
        return None
    svc.settings.pictures_dir.mkdir(parents=True, exist_ok=True)
    path = svc.settings.pictures_dir / f"{message.chat_id}-{message.message_id}{suffix}"
    await write_atomic(path, data)
    try:
        info = await asyncio.to_thread(check, svc, path)
    except GramophoneError as error:
        path.unlink(missing_ok=True)
        log.info("admin %s: picture refused: %s", message.chat_id, error)
        await message.reply_text(t("nc_picture_bad", language, reason=str(error)))
        return None
    draft = _draft(context)
    if draft.picture and draft.picture != str(path):
        remove_quietly(draft.picture)
    draft.update(
        picture=str(path),
        width=int(info.width),
        height=int(info.height),
        face=info.face is not None,
        mouth=None,
        eyes=None,
        mouth_width=None,
        open_mouth=None,
        grid=None,
        looks=0,
        landmarks="face" if info.face is not None else None,
    )
    if info.face is not None:
        await ask_voice(message, draft, language)
        return VOICE
    buttons = [[InlineKeyboardButton(t("nc_cartoon", language), callback_data="nc:pos:cartoon")]]
    if svc.settings.gpu_configured:
        buttons.append([InlineKeyboardButton(t("nc_gpu", language), callback_data="nc:pos:gpu")])
    board = await asyncio.to_thread(grid_picture, path)
    await message.reply_photo(
        board,
        caption=t("nc_no_face", language, example=_grid_example(draft)),
        reply_markup=InlineKeyboardMarkup(buttons),
    )
    return POSITION


def check(svc: Services, path: Path) -> Any:
    """``check_picture`` with the configured limits (decodes: call it in a thread)."""
    from engine.makers.picture import check_picture

    return check_picture(path, max_bytes=_max_bytes(svc), max_pixels=svc.settings.picture_max_pixels)


def grid_picture(path: Path, grid: Any = None) -> bytes:
    """The picture (or the grid's region of it) with the pointing grid over it, as a JPEG to
    send (decodes: call it in a thread)."""
    import cv2

    from engine.makers.grid import draw_grid
    from engine.makers.picture import read_picture

    board, _ = draw_grid(read_picture(path), grid)
    ok, data = cv2.imencode(".jpg", board, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError("could not encode the grid picture")
    return data.tobytes()


def _grid(draft: Draft) -> Any:
    from engine.makers.grid import Grid

    return Grid.over(draft.width, draft.height)


def _grid_example(draft: Draft, grid: Any = None) -> str:
    """Four cells about where a face's mouth corners and eyes would be on ``grid``: an example."""
    grid = grid or _grid(draft)

    def cell(x: float, y: float) -> str:
        return grid.cell_at(grid.x0 + x * grid.width, grid.y0 + y * grid.height)

    return " ".join((cell(0.42, 0.68), cell(0.58, 0.68), cell(0.36, 0.45), cell(0.64, 0.45)))


def _example(draft: Draft) -> str:
    return f"{round(draft.width / 2)},{round(draft.height * CARTOON_MOUTH_Y)}"


@admin_only
async def not_a_picture(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("nc_not_a_picture", chat_language(services(context), update)))


# -- no face: where is the mouth? ------------------------------------------------------------------


@admin_only
async def position_typed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    svc = services(context)
    message = update.effective_message
    assert message is not None and message.text is not None
    language = chat_language(svc, update)
    draft = _draft(context)
    match = POSITION_TEXT.fullmatch(message.text)
    if match is None:
        return await cells_typed(message, draft, language)
    x, y = float(match.group(1)), float(match.group(2))
    if not (0 <= x < draft.width and 0 <= y < draft.height):
        await message.reply_text(
            t("nc_bad_position", language, width=draft.width, height=draft.height, example=_example(draft))
        )
        return None
    try:
        assert draft.picture, "a mouth is asked for only after a picture"
        mouth, eyes = await asyncio.to_thread(estimate, svc, Path(draft.picture), (x, y))
    except GramophoneError as error:
        await message.reply_text(
            f"{error}. "
            + t("nc_bad_position", language, width=draft.width, height=draft.height, example=_example(draft))
        )
        return None
    draft.update(landmarks="mouth", mouth=mouth, eyes=eyes)
    await ask_voice(message, draft, language)
    return VOICE


async def cells_typed(message: Message, draft: Draft, language: str) -> int | None:
    """Four grid cells: the mouth corners, then the eyes (two more for an open mouth); first on
    the whole picture, then on closer looks around them (a cell of the whole picture is coarse
    for a small face) until they are precise (:func:`engine.makers.grid.next_look`)."""
    from engine.makers.grid import Grid, next_look, parse_cells

    closer = draft.grid
    grid = Grid.from_dict(closer) if closer else _grid(draft)
    try:
        pointed = parse_cells(message.text, grid, rough=not closer)
    except GramophoneError as error:
        await message.reply_text(
            t("nc_bad_cells", language, reason=str(error), example=_grid_example(draft, grid))
        )
        return None
    looks = (draft.looks if closer else 0) + 1
    zoom = next_look(pointed, grid, draft.width, draft.height, looks=looks)
    if zoom is not None:
        assert draft.picture, "the grid is shown only for a picture"
        board = await asyncio.to_thread(grid_picture, Path(draft.picture), zoom)
        draft.update(grid=zoom.to_dict(), looks=looks)
        caption = t(
            "nc_closer" if looks == 1 else "nc_closer_again", language, example=_grid_example(draft, zoom)
        )
        await message.reply_photo(board, caption=caption)
        return None
    left, right = pointed.eyes
    draft.update(
        landmarks="pointed",
        mouth=(float(pointed.mouth[0]), float(pointed.mouth[1])),
        mouth_width=float(pointed.mouth_width),
        eyes=((float(left[0]), float(left[1])), (float(right[0]), float(right[1]))),
        open_mouth=(
            tuple((float(x), float(y)) for x, y in pointed.open_mouth) if pointed.open_mouth else None
        ),
        cells=" ".join((message.text or "").upper().replace(",", " ").replace(";", " ").split()),
    )
    await ask_voice(message, draft, language)
    return VOICE


@admin_only
async def position_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    gpu = services(context).settings.gpu_configured
    press = await _pressed(
        update,
        context,
        pattern=POSITION_CALLBACK,
        valid=lambda draft, match: match is not None and (match.group(1) != "gpu" or gpu),
    )
    if press is None:
        return None
    svc, message, language, draft, match = press.svc, press.message, press.language, press.draft, press.match
    assert match is not None
    if match.group(1) == "gpu":
        draft.update(landmarks="gpu", mouth=None, eyes=None)
    else:
        try:
            assert draft.picture, "the positions are asked for only after a picture"
            mouth, eyes = await asyncio.to_thread(estimate, svc, Path(draft.picture), None)
        except GramophoneError as error:
            await message.reply_text(t("nc_picture_bad", language, reason=str(error)))
            return PICTURE
        draft.update(landmarks="cartoon", mouth=mouth, eyes=eyes)
    await edit_text(message, t("face_gpu" if match.group(1) == "gpu" else "face_cartoon", language))
    await ask_voice(message, draft, language)
    return VOICE


def estimate(
    svc: Services, picture: Path, mouth: tuple[float, float] | None
) -> tuple[tuple[float, float], Any]:
    """Mouth and eyes for the job, as plain tuples: the eyes placed above ``mouth`` by face
    proportions (``engine.makers.picture.estimate_landmarks``); without a mouth, the usual
    cartoon one: centred, about two thirds down a portrait.

    Raises
    ------
    InputError
        Positions the engine cannot use (outside the picture, say)."""
    from engine.makers.picture import estimate_landmarks

    info = check(svc, picture)
    if mouth is None:
        mouth = (info.width * 0.5, info.height * CARTOON_MOUTH_Y)
    landmarks = estimate_landmarks(info, mouth=mouth)
    left, right = landmarks.eyes
    return (float(landmarks.mouth[0]), float(landmarks.mouth[1])), (
        (float(left[0]), float(left[1])),
        (float(right[0]), float(right[1])),
    )


# -- from a person: round videos of the passage, then a silent one --------------------------------


def passage_parts(language: str) -> list[str]:
    """The reading passage in parts of about 40 s each (split at sentences)."""
    from engine.characters import builtin_characters_dir

    from ..storybook import split_parts

    folder = builtin_characters_dir() / "passages"
    path = folder / f"{language}.txt"
    if not path.is_file():
        path = folder / "en.txt"
    text = " ".join(path.read_text(encoding="utf-8").split())
    return split_parts(text, PART_CHARS, PART_CHARS)


@admin_only
async def person_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    press = await _pressed(update, context, valid=lambda draft, _: bool(draft.name))
    if press is None:
        return None
    message, language, draft = press.message, press.language, press.draft
    draft.update(landmarks="person", parts=passage_parts(language), takes=[])
    await message.reply_text(t("nc_person_intro", language, name=draft.name, parts=len(draft.parts)))
    await _ask_take(message, draft, language)
    return TAKE


async def _ask_take(message: Message, draft: Draft, language: str) -> None:
    index = len(draft.takes)
    await message.reply_text(
        t("nc_take", language, part=index + 1, parts=len(draft.parts), text=draft.parts[index])
    )


@dataclass(frozen=True)
class _Take:
    """A take that passed its check, with what the handler that got it answers with."""

    path: Path
    message: Message
    language: str
    draft: Draft


async def _received_take(update: Update, context: ContextTypes.DEFAULT_TYPE, kind: str) -> _Take | None:
    """The take of this message, made safe (remuxed by us) and checked; None when it was
    refused or there was nothing to check (the admin was told why)."""
    from engine.makers.takes import check_take
    from engine.media import remux_untrusted_video

    svc, message, language = message_context(update, context)
    attachment = message.video_note or message.video
    if attachment is None:
        await message.reply_text(t("nc_send_take", language))
        return None
    limit = svc.settings.download_max_bytes
    if attachment.file_size is not None and attachment.file_size > limit:
        await message.reply_text(t("nc_take_too_big", language, mb=max(1, round(limit / 1e6))))
        return None
    try:
        file = await attachment.get_file()
        data = bytes(await file.download_as_bytearray())
    except (BadRequest, NetworkError) as error:
        log.warning("admin %s: take download failed: %s", message.chat_id, error)
        await message.reply_text(t("download_failed", language))
        return None
    svc.settings.pictures_dir.mkdir(parents=True, exist_ok=True)
    raw = svc.settings.pictures_dir / f"{message.chat_id}-{message.message_id}-raw"
    take = svc.settings.pictures_dir / f"{message.chat_id}-{message.message_id}-{kind}.mp4"
    await write_atomic(raw, data[:limit])
    draft = _draft(context)
    whole = (
        kind == "speech" and not draft.takes and message.video is not None and _covers_passage(message, draft)
    )
    if whole:  # one ordinary video of the whole passage
        expected = sum(len(part) for part in draft.parts) / READING_CHARS_PER_S
        seconds = (max(3.0, 0.5 * expected), WHOLE_PASSAGE_MAX_S)
    elif kind == "speech":
        expected = len(draft.parts[len(draft.takes)]) / READING_CHARS_PER_S
        seconds = (max(3.0, 0.5 * expected), 61.0)
    else:
        seconds = IDLE_TAKE_RANGE_S
    try:
        await asyncio.to_thread(remux_untrusted_video, raw, take, max_seconds=seconds[1] + 5)
        report = await asyncio.to_thread(check_take, take, kind=kind, seconds=seconds)
    except GramophoneError as error:
        take.unlink(missing_ok=True)
        await message.reply_text(t("nc_take_again", language, reasons=str(error)))
        return None
    finally:
        raw.unlink(missing_ok=True)
    if not report.ok:
        take.unlink(missing_ok=True)
        await message.reply_text(t("nc_take_again", language, reasons="; ".join(report.problems)))
        return None
    if whole:
        draft.whole = True
    return _Take(take, message, language, draft)


def _covers_passage(message: Message, draft: Draft) -> bool:
    """Whether an ordinary video is long enough (by what Telegram says; the check then measures
    it) to be the whole passage rather than its first part."""
    first = len(draft.parts[0]) / READING_CHARS_PER_S
    return bool(message.video and message.video.duration and seconds_of(message.video.duration) > 1.5 * first)


@admin_only
async def take_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    received = await _received_take(update, context, "speech")
    if received is None:
        return None
    message, language, draft = received.message, received.language, received.draft
    draft.takes.append(str(received.path))
    if draft.take_whole():  # the whole passage in one video: nothing more to read
        draft.parts = [" ".join(draft.parts)]
        draft.whole_video = True
    if len(draft.takes) < len(draft.parts):
        await message.reply_text(t("nc_take_ok", language, part=len(draft.takes), parts=len(draft.parts)))
        await _ask_take(message, draft, language)
        return TAKE
    await message.reply_text(t("nc_ask_idle", language))
    return IDLE


@admin_only
async def idle_received(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    received = await _received_take(update, context, "idle")
    if received is None:
        return None
    message, language, draft = received.message, received.language, received.draft
    if draft.picture:
        remove_quietly(draft.picture)
    draft.picture = str(received.path)  # the silent take stands where a picture would
    await message.reply_text(
        t("nc_consent", language, name=draft.name),
        reply_markup=InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(t("nc_consent_yes", language), callback_data="nc:consent"),
                    InlineKeyboardButton(t("nc_stop", language), callback_data="nc:stop"),
                ]
            ]
        ),
    )
    return CONSENT


@admin_only
async def consent_given(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    press = await _pressed(
        update, context, valid=lambda draft, _: bool(draft.picture) and draft.landmarks == "person"
    )
    if press is None:
        return None
    query, message, language, draft = press.query, press.message, press.language, press.draft
    if query.data == "nc:stop":
        _drop_draft(context)
        await edit_text(message, t("nc_cancelled", language))
        return ConversationHandler.END
    draft.consent = True
    await edit_text(message, t("nc_consent_given", language))
    await ask_voice(message, draft, language)
    return VOICE


# -- language and voice --------------------------------------------------------------------------


async def ask_voice(message: Message, draft: Draft, language: str) -> None:
    keyboard = [
        [InlineKeyboardButton(t(preset.label, language), callback_data=f"nc:voice:{key}")]
        for key, preset in VOICE_PRESETS.items()
    ]
    await message.reply_text(
        t("nc_ask_voice", language, name=draft.name), reply_markup=InlineKeyboardMarkup(keyboard)
    )


@admin_only
async def voice_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    press = await _pressed(
        update,
        context,
        pattern=VOICE_CALLBACK,
        valid=lambda draft, match: match is not None and match.group(1) in VOICE_PRESETS,
    )
    if press is None:
        return None
    svc, message, language, draft, match = press.svc, press.message, press.language, press.draft, press.match
    assert match is not None
    draft.voice = match.group(1)
    await message.edit_text(
        confirmation(svc, draft, language),
        reply_markup=InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(t("nc_make", language), callback_data="nc:make"),
                    InlineKeyboardButton(t("nc_stop", language), callback_data="nc:stop"),
                ]
            ]
        ),
    )
    return CONFIRM


def _preset(draft: Draft) -> VoicePreset:
    """The voice chosen (the confirmation and the make buttons come only after the choice)."""
    assert draft.voice is not None, "no voice chosen yet"
    return VOICE_PRESETS[draft.voice]


def confirmation(svc: Services, draft: Draft, language: str) -> str:
    how = draft.landmarks
    if how == "face":
        face = t("face_found", language)
    elif how == "mouth" and draft.mouth is not None:
        face = t("face_mouth", language, x=round(draft.mouth[0]), y=round(draft.mouth[1]))
    elif how == "pointed":
        face = t("face_pointed", language, cells=draft.cells)
    elif how == "person":
        made_from = (
            t("nc_made_from_video", language)
            if draft.whole_video
            else t("nc_made_from_parts", language, parts=len(draft.takes))
        )
        return t(
            "nc_confirm_person",
            language,
            name=draft.name,
            id=draft.id,
            made_from=made_from,
            voice=t(_preset(draft).label, language),
        )
    else:
        face = t("face_cartoon" if how == "cartoon" else "face_gpu", language)
    return t(
        "nc_confirm",
        language,
        name=draft.name,
        id=draft.id,
        width=draft.width,
        height=draft.height,
        face=face,
        voice=t(_preset(draft).label, language),
        where=t("where_gpu" if svc.settings.gpu_configured else "where_cpu", language),
    )


# -- confirm -------------------------------------------------------------------------------------


@admin_only
async def confirmed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    press = await _pressed(
        update,
        context,
        pattern=CONFIRM_CALLBACK,
        valid=lambda draft, _: bool(draft.voice) and bool(draft.picture),
    )
    if press is None:
        return None
    svc, query, message, language, draft, match = (
        press.svc,
        press.query,
        press.message,
        press.language,
        press.draft,
        press.match,
    )
    assert match is not None
    if match.group(1) == "stop":
        _drop_draft(context)
        await edit_text(message, t("nc_cancelled", language))
        return ConversationHandler.END
    preset = _preset(draft)
    taken = taken_ids(svc)
    identifier = draft.id if draft.id not in taken else unique_id(draft.name, taken)
    person = draft.landmarks == "person"
    route = "gpu" if svc.settings.gpu_configured and not person else "cpu"
    job = svc.store.add_make_job(
        user_id=query.from_user.id,
        chat_id=message.chat_id,
        name=draft.name,
        character_id=identifier,
        language=preset.language,
        voice=preset.voice,
        options={
            "preset": draft.voice,
            "pitch_semitones": preset.pitch_semitones,
            "landmarks": draft.landmarks,
            "mouth": draft.mouth,
            "eyes": draft.eyes,
            "mouth_width": draft.mouth_width,
            "open_mouth": draft.open_mouth,
            **({"takes": draft.takes, "consent": True, "made_from": "person"} if person else {}),
        },
        picture_path=draft.picture,
        route=route,
        status_message_id=message.message_id,
    )
    if job is None:
        return ConversationHandler.END  # the same press twice: the first made the job
    draft.queued = True
    _drop_draft(context)
    log.info(
        "admin %s asked for %s: %r from %s",
        query.from_user.id,
        job.label,
        job.name,
        Path(job.picture_path or "").name,
    )
    await svc.workshop.show(job, force=True)
    svc.workshop.wake()
    return ConversationHandler.END


# -- leaving -------------------------------------------------------------------------------------


async def cancelled(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int | None:
    """/cancel inside the conversation ends it; ``/cancel 5`` still means job 5."""
    if context.args:
        await cancel_command(update, context)
        return None
    _drop_draft(context)
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("nc_cancelled", chat_language(services(context), update)))
    return ConversationHandler.END


@admin_only
async def use_buttons(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("nc_use_buttons", chat_language(services(context), update)))


async def timed_out(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The conversation sat idle past ``draft_timeout_s``: drop the draft and its picture, say so."""
    _drop_draft(context)
    if update.effective_message is not None:
        await update.effective_message.reply_text(t("nc_timed_out", chat_language(services(context), update)))


def handlers(*, timeout_s: float | None = None) -> list[BaseHandler]:
    """The conversation: persistent (a draft survives a restart, through the application's
    PicklePersistence), and dropped after ``timeout_s`` idle (PTB's job queue)."""
    new = filters.UpdateType.MESSAGE
    anything_else = new & ~filters.COMMAND
    conversation = quiet_conversation(
        entry_points=[CommandHandler("newcharacter", start)],
        states={
            NAME: [
                MessageHandler(new & filters.TEXT & ~filters.COMMAND, named),
                MessageHandler(anything_else, start_over_name),
            ],
            PICTURE: [
                MessageHandler(new & (filters.PHOTO | filters.Document.ALL), pictured),
                CallbackQueryHandler(person_chosen, pattern=r"^nc:src:person$"),
                MessageHandler(anything_else, not_a_picture),
            ],
            TAKE: [MessageHandler(new & ~filters.COMMAND, take_received)],
            IDLE: [MessageHandler(new & ~filters.COMMAND, idle_received)],
            CONSENT: [
                CallbackQueryHandler(consent_given, pattern=r"^nc:(consent|stop)$"),
                MessageHandler(anything_else, use_buttons),
            ],
            POSITION: [
                CallbackQueryHandler(position_chosen, pattern=r"^nc:pos:"),
                MessageHandler(new & (filters.PHOTO | filters.Document.ALL), pictured),
                MessageHandler(new & filters.TEXT & ~filters.COMMAND, position_typed),
                MessageHandler(anything_else, not_a_picture),
            ],
            VOICE: [
                CallbackQueryHandler(voice_chosen, pattern=r"^nc:voice:"),
                MessageHandler(anything_else, use_buttons),
            ],
            CONFIRM: [
                CallbackQueryHandler(confirmed, pattern=r"^nc:(make|stop)$"),
                MessageHandler(anything_else, use_buttons),
            ],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        fallbacks=[CommandHandler("cancel", cancelled)],
        allow_reentry=True,
        name="newcharacter",
        persistent=True,
        conversation_timeout=timeout_s,
    )
    return [conversation]


@admin_only
async def start_over_name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(t("nc_bad_name", chat_language(services(context), update)))
