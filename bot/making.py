"""The workshop: moves every make job (a character an admin asked for) from ``queued`` to
``ready`` (or ``failed`` / ``cancelled``), an asyncio task in the bot process beside the
dispatcher. As there, the database is the source of truth and memory holds only timers, so a
restart at any moment simply carries on.

Each pass it

1. collects: for jobs with a task in a make queue, takes a finished result (publishes the
   character: :class:`bot.character_store.CharacterStore`), notices a task that started
   (``running``) and copies its stage and progress from the heartbeat, and finds lost tasks (a
   heartbeat that stopped changing, or a task neither waiting, running nor finished). A lost
   or crashed task is tried again up to ``make_attempts`` times; an error the admin can fix
   (no face, not a picture) or a cancel ends the job at once.
2. enqueues: a queued job without a task gets one (the picture's bytes travel in the job). A
   GPU job that no GPU worker has started within ``gpu_start_timeout_s`` (none running, or
   none at all) moves to the CPU maker, which can always make a character from a picture with
   a face or positions.
3. shows: the admin's status message is edited as the job moves ("number 2 in line",
   "animating on CPU 40%", "building library 90%", "ready"), at most every
   ``status_edit_interval_s``.

A finished character is published, then its greeting is queued as an ordinary ``preview``
request (so the admin's preview video goes through the same rendering, retries and
exactly-once delivery as every child's answer), then the job becomes ``ready``: each step
idempotent, so a crash between two of them repeats the first harmlessly.
"""

from __future__ import annotations

import asyncio
import logging
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiofiles
from telegram import Bot
from telegram.error import BadRequest, TelegramError

from engine.characters import Catalogue

from . import job_view
from .character_store import STAGING_PREFIX, CharacterStore, PublishError
from .files import remove_quietly
from .make_jobs import make_make_job
from .payloads import MakeJobPayload
from .polling import PollingLoop
from .settings import Settings
from .store import MAKE_ACTIVE, MakeJob, MakeStatus, Store
from .tasks import MakeQueue, TaskFailed
from .watch import TaskState, TaskWatcher

log = logging.getLogger(__name__)

PICTURE_MAX_AGE_S = 24 * 3600.0
"""A picture no job uses (an admin who never finished /newcharacter) is removed after this."""


PUBLISH_RETRY_S = 30.0
"""A result that could not be published (disk full) waits this long, in the queue, for another try."""


class Workshop(PollingLoop):
    """The make jobs' dispatcher (see the module docstring)."""

    name = "workshop"

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queues: dict[str, MakeQueue],
        bot: Bot,
        catalogue: Catalogue,
        characters: CharacterStore,
        on_request: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queues = queues
        self.bot = bot
        self.catalogue = catalogue
        self.characters = characters
        self.on_request = on_request  # the render dispatcher's wake(), after a preview request
        super().__init__(settings.poll_interval_s)
        self.watcher = TaskWatcher(settings.heartbeat_timeout_s)
        self._gpu_seen = -1e18  # when a GPU worker was last seen working
        self._shown: dict[int, str] = {}  # job id -> text its status message shows
        self._last_edit: dict[int, float] = {}
        self._owed: set[int] = set()  # final jobs whose last edit has not gone out yet
        self._seconds: dict[int, float] = {}  # job id -> how long its maker took (for "ready")
        self._publish_after: dict[int, float] = {}  # job id -> when to try publishing its result again
        settings.pictures_dir.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        active = self.store.make_jobs(*MAKE_ACTIVE)
        if active:
            log.info("resuming %d unfinished make jobs: %s", len(active), [job.id for job in active])
        await asyncio.to_thread(self._clean_up, active)
        self._start_loop()

    async def stop(self, timeout: float = 30.0) -> None:
        await self._stop_loop(timeout)

    def _clean_up(self, active: list[MakeJob]) -> None:
        """Leftovers of a crash: staging folders of jobs that are over, pictures nobody uses."""
        self.characters.clean_up(keep={f"{STAGING_PREFIX}{job.character_id}-{job.id}" for job in active})
        used = {Path(job.picture_path).name for job in active if job.picture_path}
        used |= {Path(take).name for job in active for take in job.option_values.get("takes") or []}
        now = time.time()
        for path in self.settings.pictures_dir.iterdir():
            try:
                if path.name not in used and now - path.stat().st_mtime > PICTURE_MAX_AGE_S:
                    path.unlink()
            except OSError as error:
                log.warning("cannot remove the old picture %s: %s", path, error)

    async def run_once(self) -> None:
        await self._collect()
        if self._stopping:
            return
        await self._enqueue()
        await self._show_all()

    # -- 1. collect -----------------------------------------------------------------------------

    async def _collect(self) -> None:
        self.watcher.new_pass()
        for job in self.store.make_jobs(*MAKE_ACTIVE):
            if job.task_id:  # else it waits for step 2
                await self._collect_one(job, job.task_id)
        await self._sweep_cancelled()

    async def _collect_one(self, job: MakeJob, task_id: str) -> None:
        now = self.watcher.clock()
        seen = await self.watcher.look(
            self.queues[job.route], task_id, run_limit_s=self.settings.make_timeout_s
        )
        match seen.state:
            case TaskState.FINISHED:
                assert seen.outcome is not None
                if self._publish_after.get(job.id, 0.0) <= now:
                    await self._finished(job, task_id, seen.outcome)
            case TaskState.CRASHED:
                await self._attempt_failed(job, f"the maker crashed: {seen.reason}")
            case TaskState.LOST:
                await self._attempt_failed(job, seen.reason)
            case TaskState.RUNNING:
                assert seen.beat is not None
                await self._running(job, seen.beat, now)
            case TaskState.WAITING:
                if job.status == MakeStatus.RUNNING:  # interrupted and put back by its worker
                    self.store.transition_make_job(job.id, MakeStatus.RUNNING, MakeStatus.QUEUED)
                waited = now - max(seen.waiting_since, self._gpu_seen)
                if job.route == "gpu" and waited > self.settings.gpu_start_timeout_s and _cpu_can_make(job):
                    await self._to_cpu(job)

    async def _running(self, job: MakeJob, beat: dict[str, Any], now: float) -> None:
        if job.route == "gpu":
            self._gpu_seen = now
        stage = beat.get("stage")
        progress = beat.get("progress")
        if job.status == MakeStatus.QUEUED:
            if self.store.transition_make_job(
                job.id,
                MakeStatus.QUEUED,
                MakeStatus.RUNNING,
                started=time.time(),
                stage=stage,
                progress=progress,
            ):
                log.info("%s running on %s:%s", job.label, beat.get("host"), beat.get("pid"))
        elif (stage, progress) != (job.stage, job.progress) and (stage is not None or progress is not None):
            self.store.annotate_make_job(job.id, MakeStatus.RUNNING, stage=stage, progress=progress)

    async def _finished(self, job: MakeJob, task_id: str, outcome: dict[str, Any]) -> None:
        queue = self.queues[job.route]
        self.watcher.forget(task_id)
        self._publish_after.pop(job.id, None)
        if not outcome.get("ok"):
            error = str(outcome.get("error") or outcome.get("error_kind"))
            if outcome.get("cancelled"):
                await self._end(job, "cancelled", error="cancelled")
            elif job.route == "gpu" and _cpu_can_make(job):
                await self._to_cpu(job, f"the GPU could not make it ({error}): made on the CPU")
            else:
                await self._end(job, "failed", error=error)
            await asyncio.to_thread(queue.forget, task_id)
            return
        if self.store.make_job(job.id).status not in MAKE_ACTIVE:  # cancelled meanwhile
            await asyncio.to_thread(queue.forget, task_id)
            return
        path_used = str(outcome.get("path_used") or "")
        tar = self.settings.results_dir / f"character-{job.id}.tar"
        try:
            if "parts" in outcome:
                await asyncio.to_thread(queue.fetch, task_id, int(outcome["parts"]), tar)
            else:
                tar.write_bytes(outcome["tar"])
            character = await asyncio.to_thread(
                self.characters.publish,
                job.character_id,
                job.id,
                tar,
                {"path": path_used, "worker": outcome.get("worker"), "name": job.name},
            )
        except TaskFailed as error:
            await self._attempt_failed(job, f"the result is incomplete: {error}")
            return
        except OSError as error:  # a full disk, not a bad result: the result stays in the queue
            log.warning(
                "%s: cannot publish now (%s): trying again in %.0f s", job.label, error, PUBLISH_RETRY_S
            )
            self._publish_after[job.id] = time.monotonic() + PUBLISH_RETRY_S
            return
        except (PublishError, KeyError, tarfile.TarError) as error:
            log.error("%s: cannot publish: %s", job.label, error)
            await self._end(job, "failed", error=f"cannot publish the character: {error}")
            await asyncio.to_thread(queue.forget, task_id)
            return
        finally:
            remove_quietly(str(tar))
        seconds = float(outcome.get("seconds") or 0.0)
        if self.store.make_job(job.id).status not in MAKE_ACTIVE:  # cancelled while publishing: undo
            await asyncio.to_thread(self.characters.delete, job.character_id)
        else:
            self.catalogue.reload()
            self._queue_preview(job, character.greeting_for(job.language))
            if await self._end(
                job, "ready", path_used=path_used, stage="ready", progress=1.0, seconds=seconds
            ):
                log.info(
                    "%s ready: made by %s on %s in %.0f s",
                    job.label,
                    path_used,
                    outcome.get("worker"),
                    seconds,
                )
        await asyncio.to_thread(queue.forget, task_id)

    def _queue_preview(self, job: MakeJob, greeting: str) -> None:
        """The new character says hello to the admin, as a reply to the status message (a
        request row like any other; unique per status message, so never twice)."""
        if job.status_message_id is None:
            return
        requests = self.store.add_requests(
            [
                dict(
                    chat_id=job.chat_id,
                    user_id=job.user_id,
                    kind="preview",
                    input=greeting,
                    character=job.character_id,
                    language=job.language,
                    incoming_message_id=job.status_message_id,
                )
            ]
        )
        if requests:
            log.info("%s: preview queued as %s", job.label, requests[0].label)
            if self.on_request is not None:
                self.on_request()

    async def _attempt_failed(self, job: MakeJob, reason: str) -> None:
        """A task that crashed or got lost: try again, or give up after the last attempt."""
        self.watcher.forget(job.task_id)
        if job.task_id:
            await asyncio.to_thread(self.queues[job.route].abandon, job.task_id)
        if job.attempts < self.settings.make_attempts:
            if self.store.transition_make_job(
                job.id, job.status, "queued", task_id=None, error=reason, stage=None, progress=None
            ):
                log.warning("%s attempt %d failed (%s): trying again", job.label, job.attempts, reason)
            return
        await self._end(job, "failed", error=f"{reason} (after {job.attempts} attempts)")

    async def _end(self, job: MakeJob, status: str, seconds: float | None = None, **values: Any) -> bool:
        """Move an active job to a final status, drop its picture, and owe the admin an edit."""
        if not self.store.transition_make_job(
            job.id, MAKE_ACTIVE, status, finished=time.time(), picture_path=None, **values
        ):
            return False
        if status == "failed":
            log.warning("%s failed: %s", job.label, values.get("error"))
        elif status == "cancelled":
            log.info("%s cancelled", job.label)
        remove_quietly(job.picture_path)
        for take in (
            job.option_values.get("takes") or []
        ):  # a person's recordings: in the character now, or gone
            remove_quietly(take)
        self._owed.add(job.id)
        if seconds is not None:
            self._seconds[job.id] = seconds
        return True

    async def _sweep_cancelled(self) -> None:
        """A cancelled job's task may still finish (it was running): drop what it leaves."""
        for job in self.store.make_jobs("cancelled", limit=20, newest_first=True):
            if not job.task_id:
                continue
            queue = self.queues[job.route]
            try:
                outcome = await asyncio.to_thread(queue.outcome, job.task_id)
            except TaskFailed:
                outcome = {}
            beat = None if outcome is not None else await asyncio.to_thread(queue.heartbeat, job.task_id)
            if (
                outcome is None
                and beat is None
                and time.time() - job.updated < self.settings.heartbeat_timeout_s
            ):
                continue  # a task just taken may not have beaten yet: give it time to see the cancel
            if outcome is not None or beat is None:
                await asyncio.to_thread(queue.forget, job.task_id)
                self.store.annotate_make_job(job.id, "cancelled", task_id=None)
                self.watcher.forget(job.task_id)

    async def _to_cpu(self, job: MakeJob, reason: str | None = None) -> None:
        """Make a GPU job on the CPU instead: no GPU worker started it in time, or FLP could
        not animate the picture (only when the puppet can: a face was found or positions
        given). Not an extra attempt: the CPU path is a different maker, not a retry."""
        if job.task_id and reason is None:
            await asyncio.to_thread(self.queues["gpu"].abandon, job.task_id)
        self.watcher.forget(job.task_id)
        if not _cpu_can_make(job):
            await self._end(
                job, "failed", error=reason or "no GPU worker is running, and the CPU needs a mouth position"
            )
            return
        if reason is None:
            waited = job_view.duration_text(self.settings.gpu_start_timeout_s)
            reason = f"no GPU worker took it in {waited}: made on the CPU"
        if self.store.transition_make_job(
            job.id,
            MAKE_ACTIVE,
            "queued",
            route="cpu",
            task_id=None,
            attempts=max(0, job.attempts - 1),
            error=reason,
            stage=None,
            progress=None,
        ):
            log.warning("%s: moved to the CPU maker: %s", job.label, reason)

    # -- 2. enqueue -----------------------------------------------------------------------------

    async def _enqueue(self) -> None:
        for job in self.store.make_jobs("queued"):
            if job.task_id:
                continue
            if job.attempts >= self.settings.make_attempts:
                await self._end(job, "failed", error=job.error or "too many attempts")
                continue
            try:
                payload = await self._job(job)
            except FileNotFoundError:
                await self._end(job, "failed", error="the picture is gone")
                continue
            task_id = f"make-{job.id}-{job.attempts + 1}-{uuid.uuid4().hex[:8]}"
            if not self.store.annotate_make_job(job.id, "queued", task_id=task_id, attempts=job.attempts + 1):
                continue
            await asyncio.to_thread(self.queues[job.route].enqueue, payload, task_id)
            log.info("%s queued as task %s (attempt %d)", job.label, task_id, job.attempts + 1)

    async def _job(self, job: MakeJob) -> MakeJobPayload:
        if not job.picture_path:
            raise FileNotFoundError("no picture")
        async with aiofiles.open(job.picture_path, "rb") as handle:
            picture = await handle.read()
        options = job.option_values
        if options.get("takes"):  # a person: picture_path is their silent take
            takes = []
            for take in options["takes"]:
                async with aiofiles.open(take, "rb") as handle:
                    takes.append(await handle.read())
            return make_make_job(
                job_id=job.id,
                character_id=job.character_id,
                name=job.name,
                language=job.language,
                voice=job.voice_settings,
                picture=b"",
                takes=takes,
                idle_take=picture,
                description=options.get("description", ""),
                pitch_semitones=float(options.get("pitch_semitones", 0.0)),
                route=job.route,
                size=self.settings.make_size,
            )
        return make_make_job(
            job_id=job.id,
            character_id=job.character_id,
            name=job.name,
            language=job.language,
            voice=job.voice_settings,
            picture=picture,
            picture_suffix=Path(job.picture_path).suffix or ".jpg",
            description=options.get("description", ""),
            pitch_semitones=float(options.get("pitch_semitones", 0.0)),
            mouth=options.get("mouth"),
            eyes=options.get("eyes"),
            mouth_width=options.get("mouth_width"),
            open_mouth=options.get("open_mouth"),
            route=job.route,
            size=self.settings.make_size,
        )

    # -- cancel (from /cancel) ------------------------------------------------------------------

    async def cancel(self, job_id: int, user_id: int) -> MakeJob | None:
        """Cancel an unfinished job: it never starts, or its maker is told to stop. Returns the
        cancelled job, None when it was not (or no longer) unfinished."""
        job = self.store.find_make_job(job_id)
        if job is None or job.status not in MAKE_ACTIVE:
            return None
        if not await self._end(job, "cancelled", error=f"cancelled by {user_id}"):
            return None
        if job.task_id:
            await asyncio.to_thread(self.queues[job.route].cancel, job.task_id)
        self.wake()
        return self.store.make_job(job_id)

    # -- 3. show --------------------------------------------------------------------------------

    async def _show_all(self) -> None:
        jobs = self.store.make_jobs(*MAKE_ACTIVE)
        for job_id in list(self._owed):
            job = self.store.find_make_job(job_id)
            if job is None:
                self._owed.discard(job_id)
            else:
                jobs.append(job)
        for job in jobs:
            await self.show(job)

    async def show(self, job: MakeJob, force: bool = False) -> None:
        """Edit the job's status message to say where it is (if that changed)."""
        if job.status_message_id is None:
            self._owed.discard(job.id)
            return
        text = job_view.status_text(job, self.store, seconds=self._seconds.get(job.id))
        final = job.status not in MAKE_ACTIVE
        now = time.monotonic()
        if self._shown.get(job.id) == text:
            self._owed.discard(job.id)
            return
        if (
            not (force or final)
            and now - self._last_edit.get(job.id, -1e9) < self.settings.status_edit_interval_s
        ):
            return
        self._last_edit[job.id] = now
        try:
            await self.bot.edit_message_text(text, chat_id=job.chat_id, message_id=job.status_message_id)
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                log.warning("%s: cannot edit the status message: %s", job.label, error.message)
        except TelegramError as error:
            log.info("%s: status edit failed for now: %s", job.label, error)
            return
        self._shown[job.id] = text
        if final:
            self._owed.discard(job.id)
            self._shown.pop(job.id, None)
            self._last_edit.pop(job.id, None)
            self._seconds.pop(job.id, None)

    def made_in(self, job_id: int) -> float | None:
        """How long the maker of a job just published took (until the bot restarts)."""
        return self._seconds.get(job_id)


def _cpu_can_make(job: MakeJob) -> bool:
    """Whether the puppet can make this job: it needs a face, or the mouth and eyes."""
    options = job.option_values
    if options.get("takes"):
        return True  # a person's recordings need no GPU at all
    return options.get("landmarks") == "face" or (
        options.get("mouth") is not None and options.get("eyes") is not None
    )
