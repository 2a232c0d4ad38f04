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
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env={**base, **(env or {})}, timeout=120)


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
