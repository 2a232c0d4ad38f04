"""The command line as Python users expect it: ``--version``, ``python -m engine``, and a bad
setting told in one line with exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("GRAMOPHONE_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **(env or {})},
        timeout=120,
    )


def test_version_and_python_dash_m() -> None:
    for args in (("-m", "engine", "--version"), ("-m", "engine.cli", "--version")):
        result = _run(*args)
        assert result.returncode == 0 and result.stdout.strip() == f"gramophone {version('gramophone')}"
    result = _run("-m", "engine", "no-such-command")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {"GRAMOPHONE_WORKERS": "abc", "GRAMOPHONE_ADMINS": "12, bob", "GRAMOPHONE_DATA_DIR": str(tmp_path)}
    for args in (("-m", "engine", "worker"), ("-m", "bot.worker")):
        result = _run(*args, env=env)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "GRAMOPHONE_WORKERS 'abc'" in lines[0] and "GRAMOPHONE_ADMINS item 2 'bob'" in lines[0]


def test_every_command_has_help_with_an_example() -> None:
    from engine.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 -- argparse has no public walk
    pages = {name: command.format_help() for name, command in commands.items()}
    actions = commands["characters"]._subparsers._group_actions[0].choices  # noqa: SLF001
    pages.update({f"characters {name}": command.format_help() for name, command in actions.items()})
    assert {
        "build",
        "info",
        "render",
        "say",
        "demo",
        "characters",
        "bot",
        "worker",
        "characters make",
    } <= set(pages)
    for name, page in pages.items():
        if name == "characters":
            continue  # its actions each have theirs
        assert "example" in page, name
    assert "exit status" in parser.format_help()


def test_exit_status_usage_two_runtime_one_interrupt_130(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gchar"
    broken.write_bytes(b"not a library at all" * 100)
    result = _run("-m", "engine", "info", str(broken))
    assert result.returncode == 1 and result.stderr.startswith("gramophone: error: "), result.stderr
    result = _run("-m", "engine", "say", "hi", "--character", "dragon")
    assert result.returncode == 2 and "unknown character 'dragon'" in result.stderr
    story = tmp_path / "long.txt"
    story.write_text("Once upon a time there was a fox who loved the moon. " * 150)  # under the 10000 limit
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "say", "--file", str(story), "-o", str(tmp_path / "x.mp4")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import signal
    import time

    time.sleep(4)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "gramophone: interrupted" in stderr, stderr
    assert not (tmp_path / "x.mp4").exists()


def test_log_level_applies_to_bot_and_worker() -> None:
    from bot.cli import _overrides
    from bot.settings import load_settings
    from engine.cli import build_parser

    for argv, level in (
        (["--log-level", "debug", "worker"], "DEBUG"),
        (["-v", "bot"], "INFO"),
        (["worker"], None),
    ):
        overrides = _overrides(build_parser().parse_args(argv))
        assert overrides.get("log_level") == level, argv
        if level:
            assert load_settings(**overrides).log_level == level


def test_every_environment_variable_is_documented() -> None:
    """Each bot setting in deploy/README.md's table, each engine variable in the README's."""
    import re

    from bot.settings import Settings

    deploy = (ROOT / "deploy" / "README.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        variable = "TELEGRAM_BOT_TOKEN" if name == "telegram_bot_token" else f"GRAMOPHONE_{name.upper()}"
        assert f"`{variable}`" in deploy, variable
    read = set()
    for path in (ROOT / "engine").rglob("*.py"):
        read |= set(re.findall(r"\"(GRAMOPHONE_[A-Z_]+)\"", path.read_text()))
    assert read, "the engine reads no variables?"
    for variable in read - {"GRAMOPHONE_CHARACTERS_DIR"}:  # the old name, documented as such
        assert f"`{variable}`" in readme, variable
