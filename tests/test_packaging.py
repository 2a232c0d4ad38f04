"""Gramophone as a package: a wheel installed outside the checkout has its characters, passages,
demo story and bedtime stories, and works; libraries of read-only characters go to a cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine import characters as characters_module
from engine.characters import Catalogue, library_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_in_the_wheel():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for top in ("engine", "bot")
        for path in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"engine.assets"} == declared


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed (its dependencies come from this interpreter's
    site-packages: there is no network), and nothing of the checkout on its path."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(work)],
        check=True,
        capture_output=True,
    )
    (wheel,) = work.glob("gramophone-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-deps", "-q", str(wheel)], check=True, capture_output=True
    )
    return venv


def run_installed(
    venv: Path, *args: str, cwd: Path, builtin: Path | None = None
) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GRAMOPHONE_")}
    environment.update(
        XDG_CACHE_HOME=str(cwd / "cache"), GRAMOPHONE_DATA_DIR=str(cwd / "data"), PYTHONPATH=""
    )
    if builtin is not None:
        environment["GRAMOPHONE_BUILTIN_CHARACTERS_DIR"] = str(builtin)
    return subprocess.run(
        [str(venv / "bin" / "gramophone"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_wheel_installed_outside_the_checkout_lists_and_speaks(installed, tmp_path):
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import engine, bot; print(engine.__file__, bot.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in where and str(installed) in where, where  # the installed copy, not the checkout
    listed = run_installed(installed, "characters", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:2] == ["fox", "Little"], listed.stdout
    # `say` from the installed code, on a copy of the installed package data with the fox at 96 px
    # (building it at 512 px takes a minute of the suite; the files are the package's own)
    shipped = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "from engine.characters import builtin_characters_dir as b; print(b())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.strip()
    assert shipped.startswith(str(installed)) and shipped.endswith("engine/assets"), shipped
    small = tmp_path / "assets"
    shutil.copytree(shipped, small)
    toml = small / "fox" / "character.toml"
    toml.write_text(re.sub(r"(?m)^size = \d+", "size = 96", toml.read_text()))
    said = run_installed(
        installed, "say", "Hello, little one.", cwd=tmp_path, builtin=small
    )  # no -o: a default name
    assert said.returncode == 0, said.stderr
    assert (tmp_path / "fox-says.mp4").stat().st_size > 10_000
    stories = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "from bot.settings import Settings; from bot.storybook import Storybook; "
            "print(len(Storybook(Settings().stories_dir).list('en')))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert stories.returncode == 0 and int(stories.stdout) >= 5, stories.stderr


def test_a_read_only_characters_folder_builds_into_the_cache(tmp_path, monkeypatch):
    folder = tmp_path / "shipped" / "fox"
    folder.mkdir(parents=True)
    (folder / "character.toml").write_text((ROOT / "characters" / "fox" / "character.toml").read_text())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fox = Catalogue(tmp_path / "shipped").get("fox")
    assert fox.library_path == folder / "library.gchar"  # writable: next to its character.toml
    real_access = os.access
    # root may write anywhere, so "read-only" is what os.access says for this one folder
    monkeypatch.setattr(
        characters_module.os,
        "access",
        lambda path, mode: False if Path(path) == folder and mode == os.W_OK else real_access(path, mode),
    )
    assert fox.library_path == library_cache_dir() / "fox" / "library.gchar"
    assert library_cache_dir() == tmp_path / "cache" / "gramophone" / "libraries"
