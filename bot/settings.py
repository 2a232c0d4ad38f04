"""Every setting of the bot and its workers, in one place, with defaults that just work.

Read from environment variables prefixed ``GRAMOPHONE_`` (``GRAMOPHONE_DATA_DIR=/data``) and from
a ``.env`` file in the working directory; the token is the one exception, ``TELEGRAM_BOT_TOKEN``,
because that is the name every Telegram deployment guide uses. With nothing set, the bot keeps its
state under ``./data``, queues work in an embedded SQLite queue and renders with one worker per
core: ``gramophone bot`` with a token is the whole set-up.

Lists (``GRAMOPHONE_CHARACTERS_DIRS``, ``GRAMOPHONE_ADMINS``) accept JSON (``[1, 2]``) or plain
separated values (``1,2``; directories separated by ``:`` like ``PATH``), because the latter is
what people type in a compose file.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.errors import InputError

DEFAULT_API_URL = "https://api.telegram.org"
VIDEO_NOTE_MAX_S = 60.0
"""Telegram's own limit on a round video note."""


def _split(value: Any, separator: str) -> Any:
    """JSON lists stay lists; ``"a,b"`` (or ``"a:b"`` for paths) becomes ``["a", "b"]``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(separator) if part.strip()]


def _cores() -> int:
    """Cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    """The bot's configuration; one instance per process, built from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="GRAMOPHONE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # -- Telegram ---------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "GRAMOPHONE_TELEGRAM_BOT_TOKEN"),
        description="Bot token from @BotFather; workers do not need it.",
    )
    bot_api_url: str = Field(
        default=DEFAULT_API_URL,
        description="Root of the Bot API server: the cloud one, or a self-hosted telegram-bot-api.",
    )
    bot_api_local: bool = Field(
        default=False,
        description="The server at bot_api_url runs with --local: files up to 2 GB, read from its disk.",
    )
    poll_timeout_s: float = Field(default=10.0, gt=0, description="Long-polling timeout of getUpdates.")
    webhook_url: str | None = Field(
        default=None, repr=False, description="Public HTTPS URL: webhook mode instead of polling."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (webhook mode)."
    )
    listen: str = Field(default="0.0.0.0", description="Address the webhook server binds.")
    port: int = Field(default=8443, ge=1, le=65535, description="Port the webhook server binds.")

    # -- storage and queue ------------------------------------------------------------------
    data_dir: Path = Field(default=Path("data"), description="state.db, queue.db, inbox/, results/.")
    redis_url: str | None = Field(
        default=None,
        repr=False,  # may hold a password
        description="redis://host:port/db: workers on other machines. None: embedded SQLite queue.",
    )
    workers: int = Field(
        default_factory=lambda: _cores(), ge=1, description="Render processes (default: one per core)."
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Tasks in the queue at once (default 2 x workers; set it to 2 x all workers in Redis "
        "mode).",
    )
    characters_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Character roots (default: the built-in characters and data_dir/characters).",
    )
    default_character: str = "fox"
    stories_dir: Path = Field(
        default_factory=lambda: Path(str(resources.files("bot") / "stories")),
        description="Bedtime stories: <lang>/<slug>.txt, the title on the first line.",
    )

    # -- limits -----------------------------------------------------------------------------
    max_pending_per_chat: int = Field(default=3, ge=1, description="Unanswered requests one chat may have.")
    max_queue: int = Field(default=50, ge=1, description="Unanswered requests of all chats before 'busy'.")
    video_note_max_s: float = Field(default=VIDEO_NOTE_MAX_S, gt=0, le=VIDEO_NOTE_MAX_S)
    voice_max_s: float = Field(default=300.0, gt=0, description="Longest voice note or audio accepted.")
    text_max_chars: int = Field(default=2000, ge=1)
    download_max_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="The cloud Bot API's getFile limit."
    )
    story_part_chars: int = Field(default=600, ge=80, description="Characters of a story per video.")
    recorded_story_max_s: float = Field(
        default=1200.0, gt=0, description="Longest story an admin may record (/newstory)."
    )
    recorded_story_part_s: float = Field(
        default=30.0, ge=10, le=55, description="Seconds of a recorded story per video."
    )
    probe_workers: int = Field(
        default=2,
        ge=1,
        description="Threads that check users' files: a file that hangs ffmpeg costs one, not the bot.",
    )
    probe_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest one check of a user's file may take."
    )

    # -- floods and who may talk ------------------------------------------------------------
    chat_rate_messages: int = Field(
        default=12, ge=1, description="Messages and button presses one chat may send per chat_rate_window_s."
    )
    chat_rate_window_s: float = Field(default=60.0, gt=0, description="The window of chat_rate_messages.")
    refusal_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="At most one refusal ('too many', 'slow down', 'busy') per chat this often.",
    )
    allow_groups: bool = Field(
        default=False, description="Answer in groups too (default: private chats only)."
    )

    # -- children's data --------------------------------------------------------------------
    retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Finished requests' texts, voices and videos are deleted after this; counts stay.",
    )
    retention_sweep_s: float = Field(default=3600.0, gt=0, description="How often old data is looked for.")

    # -- rendering and retries --------------------------------------------------------------
    render_attempts: int = Field(default=3, ge=1, description="Tries per request before apologising.")
    render_timeout_s: float = Field(default=600.0, gt=0, description="Longest a render may take.")
    heartbeat_timeout_s: float = Field(
        default=30.0, gt=0, description="A task whose worker has been silent this long is lost."
    )
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often the dispatcher looks at the queue."
    )
    send_read_timeout_s: float = Field(
        default=60.0, gt=0, description="How long to wait for Telegram's answer to a video upload."
    )
    chat_action_interval_s: float = Field(default=4.0, gt=0, description="'recording video...' refresh.")
    worker_health_check_s: float = Field(default=5.0, gt=0, description="How soon a dead worker is replaced.")

    # -- people -----------------------------------------------------------------------------
    admins: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Telegram user ids allowed the admin commands (/newcharacter, /jobs, ...).",
    )

    # -- making characters (admins) ---------------------------------------------------------
    flp_mode: Literal["cli", "http"] | None = Field(
        default=None,
        description="How the GPU worker reaches FasterLivePortrait. None: no GPU worker; characters are "
        "made on CPU.",
    )
    flp_checkout: Path | None = Field(default=None, description="FLP checkout (cli mode).")
    flp_python: str | None = Field(default=None, description="The Python of FLP's environment (cli mode).")
    flp_cfg: str | None = Field(
        default=None, description="FLP's inference config, relative to the checkout (cli mode)."
    )
    flp_url: str | None = Field(default=None, repr=False, description="FLP's HTTP endpoint (http mode).")
    flp_timeout_s: float | None = Field(default=None, gt=0, description="Longest one FLP run may take.")
    flp_start_wait_s: float | None = Field(
        default=None, ge=0, description="http: how long the GPU worker waits for FLP's port to open (900 s)."
    )
    flp_max_lost_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Frames FLP may fail to animate before the CPU puppet is used instead.",
    )
    flp_reference_speech: Path | None = Field(
        default=None, description="The recorded reference performance FLP animates the picture with (speech)."
    )
    flp_reference_idle: Path | None = Field(
        default=None, description="... and its idle take (blinks, mouth closed)."
    )
    draft_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="An unfinished /newcharacter conversation is dropped after this long idle.",
    )
    make_size: int = Field(
        default=512, ge=64, description="Side in pixels of a new character's videos (even)."
    )
    make_attempts: int = Field(default=2, ge=1, description="Tries per new character before giving up.")
    make_timeout_s: float = Field(default=3600.0, gt=0, description="Longest making one character may take.")
    gpu_start_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="A GPU job no GPU worker has started by then is made on CPU instead (when the CPU path "
        "can).",
    )
    maker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness of the embedded CPU maker, so children's renders come first.",
    )
    status_edit_interval_s: float = Field(
        default=3.0,
        gt=0,
        description="Least time between two edits of a make job's status message (Telegram limits edits).",
    )
    picture_max_bytes: int = Field(
        default=10_000_000, ge=1, description="Largest picture accepted for a character."
    )
    picture_max_pixels: int = Field(
        default=40_000_000, ge=1, description="Most pixels a picture may decode to."
    )
    log_level: str = "INFO"

    @field_validator("characters_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        return _split(value, os.pathsep)

    @field_validator("admins", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        return _split(value, ",")

    @field_validator(
        "flp_mode",
        "flp_checkout",
        "flp_python",
        "flp_cfg",
        "flp_url",
        "flp_reference_speech",
        "flp_reference_idle",
        "flp_timeout_s",
        "flp_max_lost_fraction",
        "flp_start_wait_s",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """``GRAMOPHONE_FLP_MODE=`` (what a compose file passes for an unset variable) means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("make_size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("make_size must be even (H.264 frames)")
        return value

    @field_validator("bot_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if not self.characters_dirs:
            from engine.characters import builtin_characters_dir

            self.characters_dirs = [builtin_characters_dir(), self.data_dir / "characters"]
        return self

    # -- derived ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder.base_url``: PTB appends the token."""
        return f"{self.bot_api_url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder.base_file_url``: PTB appends token and file path."""
        return f"{self.bot_api_url}/file/bot"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def recorded_stories_dir(self) -> Path:
        """Stories admins recorded in a real voice (``bot.recorded_stories``)."""
        return self.data_dir / "recorded_stories"

    @property
    def alive_path(self) -> Path:
        """Touched by the running bot's dispatcher every few seconds (``gramophone health``)."""
        return self.data_dir / "bot.alive"

    @property
    def conversations_path(self) -> Path:
        """Admins' unfinished /newcharacter conversations (PTB's PicklePersistence)."""
        return self.data_dir / "conversations.pickle"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def inbox_dir(self) -> Path:
        """Downloaded voice notes waiting to be rendered."""
        return self.data_dir / "inbox"

    @property
    def results_dir(self) -> Path:
        """Rendered videos waiting to be sent."""
        return self.data_dir / "results"

    @property
    def pictures_dir(self) -> Path:
        """Pictures of characters being made (kept until their job is over)."""
        return self.data_dir / "pictures"

    @property
    def made_characters_dir(self) -> Path:
        """Where characters made from a picture are published (one folder each)."""
        return self.data_dir / "characters"

    @property
    def character_roots(self) -> list[Path]:
        """The catalogue's roots: ``characters_dirs``, and the made characters' folder last even
        when ``characters_dirs`` was set without it (a made character must be found by the bot
        that published it and by workers sharing its data folder)."""
        roots = list(self.characters_dirs)
        made = self.made_characters_dir
        if not any(Path(root).resolve() == made.resolve() for root in roots):
            roots.append(made)
        return roots

    @property
    def gpu_configured(self) -> bool:
        """New characters go to the GPU queue (a ``gramophone worker --gpu`` makes them)."""
        return self.flp_mode is not None

    def flp_config(self) -> Any:
        """The :class:`engine.makers.flp.FlpConfig` of these settings (the GPU worker's), or None.

        Only the settings given are passed, so FLP's own defaults stay in one place (the engine)."""
        if self.flp_mode is None:
            return None
        from engine.makers.flp import FlpConfig

        values: dict[str, Any] = {"mode": self.flp_mode}
        for name in ("checkout", "python", "cfg", "url", "timeout_s", "max_lost_fraction", "start_wait_s"):
            value = getattr(self, f"flp_{name}")
            if value is not None:
                values[name] = value
        return FlpConfig(**values)

    def flp_reference(self) -> tuple[Path, Path] | None:
        """The reference performance (speech, idle) FLP drives the picture with, if recorded."""
        if self.flp_reference_speech is None or self.flp_reference_idle is None:
            return None
        return (self.flp_reference_speech, self.flp_reference_idle)

    @property
    def in_flight_limit(self) -> int:
        return self.max_in_flight or 2 * self.workers

    def token(self) -> str:
        """The bot token, or a clear error naming the variable to set."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value().strip():
            raise SystemExit("gramophone: set TELEGRAM_BOT_TOKEN (from @BotFather) to run the bot")
        return self.telegram_bot_token.get_secret_value().strip()

    def secrets(self) -> list[str]:
        """What must never appear in a log line: the token, the webhook secret, the Redis password."""
        found = [
            value.get_secret_value().strip()
            for value in (self.telegram_bot_token, self.webhook_secret)
            if value
        ]
        if self.redis_url and "@" in self.redis_url:
            credentials = self.redis_url.partition("://")[2].rsplit("@", 1)[0]
            found.append(credentials.rpartition(":")[2])
        return [secret for secret in found if secret]

    def describe(self) -> str:
        """One log line of what matters, never the token or the webhook secret."""
        queue = f"redis {self._redacted(self.redis_url)}" if self.redis_url else f"sqlite {self.queue_path}"
        mode = f"webhook {self.webhook_url}" if self.webhook_url else "polling"
        maker = f"GPU (FLP {self.flp_mode})" if self.flp_mode else "CPU"
        return (
            f"data {self.data_dir}, queue {queue}, {self.workers} workers, in flight <= "
            f"{self.in_flight_limit}, "
            f"api {self.bot_api_url}{' (local)' if self.bot_api_local else ''}, {mode}, "
            f"characters {[str(path) for path in self.character_roots]}, new characters on {maker}, "
            f"{len(self.admins)} admins"
        )

    @staticmethod
    def _redacted(url: str) -> str:
        """A Redis URL without its password."""
        if "@" not in url:
            return url
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class SettingsError(InputError):
    """A setting that cannot be used; the message names its variable and what it expects (a
    usage error: the ``gramophone`` command exits 2)."""


def load_settings(**overrides: Any) -> Settings:
    """:class:`Settings` from the environment (and ``.env``), with one line per bad setting
    instead of pydantic's traceback: ``GRAMOPHONE_ADMINS: item 2 'bob': expected an integer``.

    Raises
    ------
    SettingsError
        A variable is malformed.
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            location = problem.get("loc") or ("?",)
            name = str(location[0])
            variable = "TELEGRAM_BOT_TOKEN" if name == "telegram_bot_token" else f"GRAMOPHONE_{name.upper()}"
            item = (
                f" item {int(location[1]) + 1}" if len(location) > 1 and isinstance(location[1], int) else ""
            )
            expected = (
                str(problem.get("msg", "invalid"))
                .replace("Input should be", "expected")
                .replace("Value error, ", "")
            )
            problems.append(f"{variable}{item} {problem.get('input')!r}: {expected}")
        raise SettingsError("; ".join(problems)) from None
