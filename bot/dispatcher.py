"""The dispatcher: moves every request from ``received`` to ``sent`` (or ``failed``), an asyncio task
in the bot process. The database is the source of truth; memory holds only timers.

Each pass it

1. collects: for requests with a task in the queue, takes finished results (the mp4 is written
   under ``data_dir/results`` and the request becomes ``rendered``), notices renders that started
   (``rendering``), and finds lost tasks: a heartbeat that stopped changing (worker killed
   mid-render), or a task neither waiting, running nor finished (a crash between recording and
   enqueueing). A lost or crashed task goes back to ``received`` for another attempt; after
   ``render_attempts`` the chat gets an apology.
2. enqueues fairly: at most ``in_flight_limit`` tasks in the queue at once, handed out round-robin
   to the chats with the fewest tasks in flight, so one chat's long story never blocks the
   others. Story part k+1 waits until part k is in the queue, so part 1 renders first.
3. delivers: rendered answers are sent in order within a chat (story parts strictly by part),
   one send per chat at a time, in tasks of their own so a slow upload blocks nobody else.
4. keeps chats company: "recording video..." every few seconds while a chat waits.

On start it simply runs: everything not ``sent``/``failed`` in the database is resumed where it
was, which is all a restart (or a ``kill -9``) needs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import aiofiles
import aiofiles.os
from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

from engine.characters import Catalogue, Character

from .delivery import MaybeDelivered, NotNow, Undeliverable, Video, send_video
from .files import remove_quietly, write_atomic
from .inbox import Inbox
from .jobs import make_job
from .payloads import RenderJob
from .polling import PollingLoop
from .recorded_stories import RecordedStories
from .retention import forget_old
from .settings import Settings
from .store import ACTIVE, IN_QUEUE, Request, Status, Store
from .storybook import Storybook
from .tasks import RenderQueue
from .texts import t
from .watch import TaskState, TaskWatcher

log = logging.getLogger(__name__)

ALIVE_EVERY_S = 5.0
"""How often the dispatcher touches its liveness file."""
CAPTION_MAX_CHARS = 1024
"""Telegram's limit on a media caption."""

RESEND_DELAY_S = 30.0
"""After a send failed several times in a row (Telegram unreachable), wait this long."""
RESEND_ROUNDS = 20
"""Rounds of failed sends (about ten minutes) before a request is given up as undeliverable."""
UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
"""The cloud Bot API refuses bigger uploads."""


class InputGone(Exception):
    """The request's input cannot be had any more (file expired, story deleted)."""


class Refetch(Exception):
    """A voice note's checked copy is gone (a cleaned disk): the inbox must fetch it again."""


class Dispatcher(PollingLoop):
    name = "dispatcher"

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: RenderQueue,
        bot: Bot,
        catalogue: Catalogue,
        storybook: Storybook,
        inbox: Inbox,
        *,
        recorded: RecordedStories | None = None,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.recorded = recorded or RecordedStories(
            settings.recorded_stories_dir, part_s=settings.recorded_story_part_s
        )
        self.store = store
        self.queue = queue
        self.bot = bot
        self.catalogue = catalogue
        self.storybook = storybook
        super().__init__(settings.poll_interval_s)
        self.watcher = TaskWatcher(settings.heartbeat_timeout_s)
        self._sending: dict[int, asyncio.Task[None]] = {}  # chat id -> its one send in progress
        self._resend_after: dict[int, float] = {}  # request id -> monotonic time
        self._send_rounds: dict[int, int] = {}  # request id -> rounds of failed sends
        self._served = itertools.count()
        self._last_served: dict[int, int] = {}
        self._last_action: dict[int, float] = {}
        self._actions: set[asyncio.Task[None]] = set()
        self._swept_at = -float("inf")
        self._beat_at = -float("inf")
        settings.results_dir.mkdir(parents=True, exist_ok=True)
        settings.inbox_dir.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        counts = self.store.counts()
        resumed = {status: counts[status] for status in ACTIVE if counts.get(status)}
        if resumed:
            log.info("resuming unfinished requests: %s", resumed)
        self._start_loop()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop passing work on; let sends in progress finish (an upload cut in the middle would
        leave us not knowing whether it arrived)."""
        await self._stop_loop(timeout)
        sends = [task for task in self._sending.values() if not task.done()]
        if sends:
            await asyncio.wait(sends, timeout=timeout)
        for task in list(self._actions):
            task.cancel()

    async def run_once(self) -> None:
        self._beat()
        self.inbox.adopt_orphans()
        await self._collect()
        if self._stopping:
            return
        await self._enqueue()
        self._deliver()
        self._keep_company()
        if time.monotonic() - self._swept_at >= self.settings.retention_sweep_s:
            self._swept_at = time.monotonic()
            forget_old(self.settings, self.store)  # on the loop: the store is this thread's

    def _beat(self) -> None:
        """Touch ``alive_path`` (at most every few seconds): the container's health check reads
        its age (``gramophone health``), so a dispatcher that stopped passing work is noticed."""
        now = time.monotonic()
        if now - self._beat_at < ALIVE_EVERY_S:
            return
        self._beat_at = now
        try:
            self.settings.alive_path.touch()
        except OSError as error:
            log.warning("cannot touch %s: %s", self.settings.alive_path, error)

    async def _each(self, request: Request, step: Any, *args: Any) -> Any:
        """One request's step, isolated: an error (a full disk, a bug tripped by one row) is
        logged and that request waits for the next pass; every other chat carries on."""
        try:
            return await step(request, *args)
        except OSError as error:
            log.warning(
                "%s: %s failed (%s): trying again next pass", request.label, step.__name__.strip("_"), error
            )
        except Exception:  # noqa: BLE001 -- one bad row must not stop the others
            log.exception("%s: %s failed: trying again next pass", request.label, step.__name__.strip("_"))
        return None

    # -- 1. collect -----------------------------------------------------------------------------

    async def _collect(self) -> None:
        self.watcher.new_pass()
        for request in self.store.with_status(*IN_QUEUE):
            await self._each(request, self._collect_one)

    async def _collect_one(self, request: Request) -> None:
        task_id = request.task_id
        if not task_id:
            await self._attempt_failed(request, "no task id")
            return
        seen = await self.watcher.look(self.queue, task_id, run_limit_s=self.settings.render_timeout_s)
        match seen.state:
            case TaskState.FINISHED:
                assert seen.outcome is not None
                await self._finished(request, task_id, seen.outcome)
            case TaskState.CRASHED:
                await self._attempt_failed(request, f"render crashed: {seen.reason}")
            case TaskState.LOST:
                await self._attempt_failed(request, seen.reason)
            case TaskState.RUNNING if request.status == Status.QUEUED:
                assert seen.beat is not None
                self.store.transition(request.id, Status.QUEUED, Status.RENDERING)
                log.info("%s rendering on %s:%s", request.label, seen.beat.get("host"), seen.beat.get("pid"))
            case TaskState.WAITING if request.status == Status.RENDERING:
                self.store.transition(request.id, Status.RENDERING, Status.QUEUED)  # put back by its worker

    async def _finished(self, request: Request, task_id: str, outcome: dict[str, Any]) -> None:
        if not outcome.get("ok"):
            error = f"{outcome.get('error_kind')}: {outcome.get('error')}"
            await self._give_up(
                request, IN_QUEUE, error, apology="input" if outcome.get("user_error") else "render"
            )
            await asyncio.to_thread(self.queue.forget, task_id)
            return
        path = self.settings.results_dir / f"{request.id}.mp4"
        # A full disk raises here: the result stays in the queue's store (not forgotten) and
        # the next pass stores it again, while other chats' answers go on.
        await write_atomic(path, outcome["mp4"])
        moved = self.store.transition(
            request.id,
            IN_QUEUE,
            "rendered",
            result_path=str(path),
            duration_s=float(outcome["duration_s"]),
            video_note=int(bool(outcome["video_note"])),
            size=int(outcome["size"]),
        )
        if moved:
            log.info(
                "%s rendered: %.1f s by %s in %.1f s",
                request.label,
                outcome["duration_s"],
                outcome.get("worker"),
                outcome.get("seconds", 0.0),
            )
        else:
            await aiofiles.os.remove(path)
        await asyncio.to_thread(self.queue.forget, task_id)

    async def _attempt_failed(self, request: Request, reason: str) -> None:
        """A task that crashed or got lost: try again, or apologise after the last attempt."""
        self.watcher.forget(request.task_id)
        if request.task_id:
            await asyncio.to_thread(self.queue.abandon, request.task_id)
        if request.attempts < self.settings.render_attempts:
            if self.store.transition(request.id, request.status, "received", error=reason):
                log.warning(
                    "%s attempt %d failed (%s): trying again", request.label, request.attempts, reason
                )
            return
        await self._give_up(
            request, request.status, f"{reason} (after {request.attempts} attempts)", level=logging.ERROR
        )

    async def _give_up(
        self,
        request: Request,
        status: str | tuple[str, ...],
        reason: str,
        *,
        apology: Literal["render", "input"] | None = "render",
        level: int = logging.WARNING,
    ) -> bool:
        """The one way a request fails for good: ``failed`` (if it is still in ``status``),
        logged, the chat told (``apology``: a render that failed, or an input we cannot use; None
        when the chat cannot be reached), and the rest of its story failed with it."""
        if not self.store.transition(request.id, status, Status.FAILED, error=reason):
            return False
        log.log(level, "%s failed: %s", request.label, reason)
        if apology is not None:
            await self._apologise(request, user_error=apology == "input")
        await self._fail_rest_of_story(request)
        return True

    async def _fail_rest_of_story(self, request: Request) -> None:
        """A story part failed for good: the later parts will not be told either. Their tasks are
        abandoned through a thread, as every other queue call (Redis may block)."""
        if request.parts <= 1:
            return
        for part in self.store.story_parts(request):
            if part.part > request.part and part.status in ACTIVE:
                if self.store.transition(
                    part.id, part.status, "failed", error=f"part {request.part + 1} failed"
                ):
                    if part.task_id and part.status in IN_QUEUE:
                        await asyncio.to_thread(self.queue.abandon, part.task_id)
                    remove_quietly(part.result_path)

    async def _apologise(self, request: Request, user_error: bool = False) -> None:
        language = request.language or "en"
        if user_error and request.kind == "voice":
            text = t("audio_unreadable", language)
        else:
            text = t("render_failed", language, name=self._character_name(request.character))
        try:
            await self.bot.send_message(request.chat_id, text)
        except TelegramError as error:
            log.warning("%s: could not apologise: %s", request.label, error)
        remove_quietly(request.input_path)

    def _character_name(self, identifier: str | None) -> str:
        character = self.catalogue.characters.get(identifier or "")
        return character.name if character else (identifier or "")

    # -- 2. enqueue -----------------------------------------------------------------------------

    async def _enqueue(self) -> None:
        in_queue = self.store.with_status(*IN_QUEUE)
        budget = self.settings.in_flight_limit - len(in_queue)
        if budget <= 0:
            return
        waiting = self.store.with_status("received")
        if not waiting:
            return
        in_flight: dict[int, int] = defaultdict(int)
        for request in in_queue:
            in_flight[request.chat_id] += 1
        by_chat: dict[int, list[Request]] = defaultdict(list)
        for request in waiting:
            if self._eligible(request):
                by_chat[request.chat_id].append(request)
        for queue in by_chat.values():  # within a chat, in the order the child asked
            queue.sort(key=lambda request: (request.incoming_message_id, request.part, request.id))
        while budget > 0 and by_chat:
            chat_id = min(by_chat, key=lambda chat: (in_flight[chat], self._last_served.get(chat, -1)))
            request = by_chat[chat_id].pop(0)
            if not by_chat[chat_id]:
                del by_chat[chat_id]
            if await self._each(request, self._submit):
                budget -= 1
                in_flight[chat_id] += 1
                self._last_served[chat_id] = next(self._served)

    def _eligible(self, request: Request) -> bool:
        """Story part k waits for part k-1 to be in the queue (or done)."""
        if request.parts <= 1 or request.part == 0:
            return True
        previous = self.store.find(
            request.chat_id, request.incoming_message_id, request.kind, request.part - 1
        )
        return previous is not None and previous.status in ("queued", "rendering", "rendered", "sent")

    async def _submit(self, request: Request) -> bool:
        """Record the task id first, then enqueue: a crash between the two leaves a task the
        collector finds missing and retries, never a task the database does not know of."""
        if request.attempts >= self.settings.render_attempts:
            reason = f"{request.error or 'too many attempts'} (after {request.attempts} attempts)"
            await self._give_up(request, Status.RECEIVED, reason, level=logging.ERROR)
            return False
        try:
            job = await self._job(request)
        except InputGone as error:
            await self._give_up(request, Status.RECEIVED, str(error), apology="input")
            return False
        except Refetch as why:
            if self.store.transition(request.id, "received", "fetching", input_path=None, error=str(why)):
                log.warning("%s: %s: fetching it again", request.label, why)
            return False
        except TelegramError as error:  # download failed for now: try again next pass
            log.warning("%s: cannot fetch its input yet: %s", request.label, error)
            return False
        task_id = f"{request.id}-{request.attempts + 1}-{uuid.uuid4().hex[:8]}"
        if not self.store.transition(
            request.id, "received", "queued", task_id=task_id, attempts=request.attempts + 1
        ):
            return False
        await asyncio.to_thread(self.queue.enqueue, job, task_id)
        log.info("%s queued as task %s (attempt %d)", request.label, task_id, request.attempts + 1)
        return True

    def _character(self, request: Request) -> Character:
        identifier = request.character or self.settings.default_character
        if identifier not in self.catalogue.characters:
            self.catalogue.reload()
        character = self.catalogue.characters.get(identifier) or self.catalogue.characters.get(
            self.settings.default_character
        )
        if character is None:
            listed = self.catalogue.list()
            if not listed:
                raise InputGone("no characters at all")
            character = listed[0]
        return character

    async def _job(self, request: Request) -> RenderJob:
        character = self._character(request)
        language = request.language or character.language

        def job(*, kind: str = request.kind, **details: Any) -> RenderJob:
            return make_job(
                request_id=request.id,
                character=character.id,
                language=language,
                kind=kind,
                video_note_max_s=self.settings.video_note_max_s,
                **details,
            )

        if request.kind == "voice":
            audio = await self._voice_input(request)
            return job(audio=audio, max_audio_s=self.settings.voice_max_s, pitch=character.pitch_semitones)
        if request.kind == "text":
            text = request.input or ""
        elif request.kind == "story" and (request.input or "").startswith("rec/"):
            return await self._recorded_job(request, job)
        elif request.kind == "story":
            story = self.storybook.get_id(request.input or "")
            if story is None:
                raise InputGone(f"story {request.input!r} is gone")
            parts = story.parts(self.settings.story_part_chars)
            if request.part >= len(parts):
                raise InputGone(f"story {request.input!r} has only {len(parts)} parts now")
            text = parts[request.part]
        else:  # greeting, preview
            text = character.greeting_for(language)
        return job(text=text, max_chars=max(self.settings.text_max_chars, len(text)))

    async def _recorded_job(self, request: Request, job: Callable[..., RenderJob]) -> RenderJob:
        """A part of a story recorded in a real voice: that part's audio, told as it is (no pitch
        shift: it is the character's own voice)."""
        story = self.recorded.get_id(request.input or "")
        if story is None:
            raise InputGone(f"recorded story {request.input!r} is gone")
        if request.part >= story.parts:
            raise InputGone(f"recorded story {request.input!r} has only {story.parts} parts")
        with tempfile.TemporaryDirectory(prefix="gramophone-part-") as scratch:
            wav = await asyncio.to_thread(
                self.recorded.part_audio, story, request.part, Path(scratch) / "part.wav"
            )
            audio = wav.read_bytes()
        return job(
            kind="recorded",
            audio=audio,
            max_audio_s=self.settings.recorded_story_part_s + 30,
            pitch=0.0,
        )

    def _caption(self, request: Request) -> str | None:
        """A story's part as the caption of its video, so a parent can read along: its text (the
        first part's begins with the title), then which part it is (at most Telegram's 1024
        characters)."""
        if request.kind != "story":
            return None
        recorded = self.recorded.get_id(request.input or "")
        if recorded is not None:
            return (
                f"{recorded.title} ({request.part + 1}/{recorded.parts})"
                if recorded.parts > 1
                else recorded.title
            )
        story = self.storybook.get_id(request.input or "")
        if story is None:
            return None
        parts = story.parts(self.settings.story_part_chars)
        if request.part >= len(parts):
            return None
        caption = parts[request.part] + (f"\n({request.part + 1}/{len(parts)})" if len(parts) > 1 else "")
        return caption if len(caption) <= CAPTION_MAX_CHARS else caption[: CAPTION_MAX_CHARS - 1] + "…"

    async def _voice_input(self, request: Request) -> bytes:
        """The voice note's bytes, as the inbox stored and checked them."""
        if not request.input_path or not os.path.exists(request.input_path):
            raise Refetch("its checked file is gone")
        async with aiofiles.open(request.input_path, "rb") as handle:
            return await handle.read()

    # -- 3. deliver -----------------------------------------------------------------------------

    def _deliver(self) -> None:
        rendered = self.store.with_status("rendered")
        if not rendered:
            return
        now = time.monotonic()
        active = self.store.active()
        for request in rendered:
            chat_id = request.chat_id
            sending = self._sending.get(chat_id)
            if sending is not None and not sending.done():
                continue
            if self._resend_after.get(request.id, 0.0) > now or not self._next_in_line(request, active):
                continue
            task = asyncio.create_task(self._each(request, self._send), name=f"send-{request.id}")
            self._sending[chat_id] = task

    @staticmethod
    def _next_in_line(request: Request, active: list[Request]) -> bool:
        """Answers go out in the order they were asked for: story parts by part, other
        requests of a chat by the id of the message that asked (handlers run concurrently, so
        row ids may not follow it); a story and a voice note do not wait for each other."""
        for other in active:
            if other.id == request.id or other.chat_id != request.chat_id:
                continue
            if request.parts > 1 or other.parts > 1:
                if other.group == request.group and other.part < request.part:
                    return False
            elif (other.incoming_message_id, other.id) < (request.incoming_message_id, request.id):
                return False
        return True

    async def _send(self, request: Request) -> None:
        path = request.result_path
        if not path or not os.path.exists(path):
            log.warning("%s: its video is missing, rendering again", request.label)
            self.store.transition(request.id, "rendered", "received", error="result file missing")
            self.wake()
            return
        if request.send_started is not None:
            log.warning(
                "%s: a send was in progress when the bot stopped; sending again (may duplicate)",
                request.label,
            )
        self.store.annotate(request.id, "rendered", send_started=time.time())
        async with aiofiles.open(path, "rb") as handle:
            data = await handle.read()
        if len(data) > UPLOAD_LIMIT_BYTES and self.settings.bot_api_url.startswith(
            "https://api.telegram.org"
        ):
            await self._give_up(
                request,
                Status.RENDERED,
                f"the video is {len(data) // 2**20} MB, over Telegram's upload limit",
                level=logging.ERROR,
            )
            remove_quietly(path)
            return
        video = Video(
            data,
            request.duration_s or 0.0,
            request.size or 0,
            bool(request.video_note),
            self._caption(request),
        )
        try:
            message = await send_video(self.bot, request, video, self.settings.send_read_timeout_s)
        except MaybeDelivered as error:
            self.store.transition(
                request.id, "rendered", "sent", error=f"send timed out, probably delivered: {error}"
            )
            log.warning("%s: the send timed out after the upload; counting it as delivered", request.label)
        except Undeliverable as error:
            await self._give_up(request, Status.RENDERED, f"cannot deliver: {error}", apology=None)
        except NotNow as error:
            self.store.annotate(request.id, "rendered", send_started=None)  # known not delivered
            rounds = self._send_rounds.get(request.id, 0) + 1
            if rounds < RESEND_ROUNDS:
                self._send_rounds[request.id] = rounds
                self._resend_after[request.id] = time.monotonic() + RESEND_DELAY_S
                log.warning(
                    "%s: Telegram unreachable (%s); trying again in %.0f s",
                    request.label,
                    error,
                    RESEND_DELAY_S,
                )
                return
            await self._give_up(
                request,
                Status.RENDERED,
                f"could not send after {rounds} rounds: {error}",
                apology=None,
                level=logging.ERROR,
            )
        else:
            self.store.transition(request.id, "rendered", "sent", reply_message_id=message.message_id)
            log.info("%s sent as message %s", request.label, message.message_id)
        self._resend_after.pop(request.id, None)
        self._send_rounds.pop(request.id, None)
        remove_quietly(path)
        remove_quietly(request.input_path)
        self.wake()

    # -- 4. keep company ------------------------------------------------------------------------

    def _keep_company(self) -> None:
        now = time.monotonic()
        waiting: dict[int, Request] = {}
        for request in self.store.active():
            waiting.setdefault(request.chat_id, request)
        for chat_id, request in waiting.items():
            if now - self._last_action.get(chat_id, -1e9) < self.settings.chat_action_interval_s:
                continue
            self._last_action[chat_id] = now
            action = ChatAction.UPLOAD_VIDEO if request.video_note == 0 else ChatAction.RECORD_VIDEO_NOTE
            task = asyncio.create_task(self._action(chat_id, action))
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)
        for chat_id in set(self._last_action) - set(waiting):
            del self._last_action[chat_id]

    async def _action(self, chat_id: int, action: str) -> None:
        try:
            await self.bot.send_chat_action(chat_id, action)
        except TelegramError as error:
            log.debug("chat action for %s failed: %s", chat_id, error)
