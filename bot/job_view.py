"""What an admin reads about a make job: its status message and its line in /jobs.

Text only, from the job's row (and the queue position the store knows): the workshop edits the
status message with :func:`status_text`, ``/jobs`` lists :func:`state_text` lines.
"""

from __future__ import annotations

from .store import MakeJob, MakeStatus, Store
from .texts import t

STAGES = {
    "animating on GPU": "stage_animating_gpu",
    "animating on CPU": "stage_animating_cpu",
    "building library": "stage_building",
    "joining the recorded takes": "stage_joining",
    "ready": "stage_building",  # the maker is done; the bot is publishing
}
"""The engine's stages (``engine.makers.make.STAGE_*``) and the texts that say them."""


def admin_language(store: Store, chat_id: int) -> str:
    chat = store.chat(chat_id)
    return (chat.language if chat and chat.language else None) or "en"


def status_text(job: MakeJob, store: Store, *, seconds: float | None = None) -> str:
    """The status message: which character, and where its job is, in the admin's language;
    ``seconds``: how long its maker took, when the workshop knows."""
    language = admin_language(store, job.chat_id)
    state = state_text(job, store, language, seconds=seconds)
    return t("job_status", language, name=job.name, id=job.character_id, job=job.id, state=state)


def state_text(
    job: MakeJob, store: Store, language: str, *, listing: bool = False, seconds: float | None = None
) -> str:
    """One line for a job's state (``listing``: the shorter line /jobs shows)."""
    if job.status == MakeStatus.QUEUED:
        place = store.make_jobs_ahead(job) + 1
        text = t("job_queued_gpu" if job.route == "gpu" else "job_queued", language, position=place)
        if job.attempts >= 1 and job.error:
            text += " " + t("job_retrying", language, error=job.error)
        return text
    if job.status == MakeStatus.RUNNING:
        percent = f" {round(100 * job.progress)}%" if job.progress is not None else ""
        return f"{stage_text(job.stage, job.route, language)}{percent}"
    if job.status == MakeStatus.READY:
        if seconds is None and job.started and job.finished:
            seconds = job.finished - job.started
        where = t(
            {"flp": "path_flp", "person": "path_person"}.get(job.path_used or "", "path_puppet"), language
        )
        text = t(
            "jobs_ready" if listing else "job_ready",
            language,
            where=where,
            duration=duration_text(seconds or 0.0),
            name=job.name,
        )
        if job.error:  # what happened on the way (a retry, the move to the CPU)
            text += "\n" + t("job_note", language, note=job.error)
        return text
    if job.status == MakeStatus.CANCELLED:
        return t("job_cancelled", language)
    return t("job_failed", language, error=job.error or "?")


def stage_text(stage: str | None, route: str, language: str) -> str:
    """The engine's stage as the admin reads it, in the admin's language."""
    if not stage:
        return t("stage_starting", language)
    key = STAGES.get(stage)
    return t(key, language) if key else stage


def duration_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"
