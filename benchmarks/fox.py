"""The fox: build time, `say` speed (with the TTS share), lip sync on text it never heard, demo time.

Runs on ONE core (pinned, like ``taskset -c 0``) in a fresh copy of the characters folder, so the
fox is built from nothing. Run by hand::

    python benchmarks/fox.py

Targets (issue 3): fox built from nothing in under 60 s; `say` of a 60 s text at least 8x faster
than real time end to end; lip-sync r (opening) >= 0.8 on text the fox never read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "--all-cores" not in sys.argv:
    # Pin before numpy and OpenCV start their thread pools: threads started earlier keep their cores.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

from engine.characters import Catalogue, ensure_library  # noqa: E402
from engine.library import open_library  # noqa: E402
from engine.media import read_audio  # noqa: E402
from engine.quality import measure  # noqa: E402
from engine.say import say  # noqa: E402
from engine.speech import speak_sentences  # noqa: E402

STORY = ROOT / "bot" / "stories" / "en" / "three-little-pigs.txt"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--all-cores", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the text to say")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gramophone-fox-"))
    characters = work / "characters"
    shutil.copytree(
        ROOT / "characters", characters, ignore=shutil.ignore_patterns("library.gchar", ".build.lock")
    )
    os.environ["GRAMOPHONE_BUILTIN_CHARACTERS_DIR"] = str(characters)

    fox = Catalogue(characters).get("fox")
    started = time.perf_counter()
    ensure_library(fox)
    build_s = time.perf_counter() - started

    # A text of about --seconds when spoken: the start of a story the fox has never read.
    words = STORY.read_text(encoding="utf-8").split("\n\n", 1)[1].split()
    text = " ".join(words[: int(args.seconds * 2.85)])
    started = time.perf_counter()
    spoken = list(speak_sentences(text, fox.voice_for("en")))
    tts_s = time.perf_counter() - started
    audio_s = sum(s.duration for s in spoken)
    out = work / "say.mp4"
    started = time.perf_counter()
    result = say(fox, text, out)
    say_s = time.perf_counter() - started

    # Ground truth: the mouth the rig would draw for the audio in the output file.
    audio = read_audio(out)
    with open_library(fox.library_path) as library:
        report = measure(out, audio, 16_000, result.timeline, library)

    env = {**os.environ, "GRAMOPHONE_BUILTIN_CHARACTERS_DIR": str(work / "fresh")}
    shutil.copytree(
        ROOT / "characters", work / "fresh", ignore=shutil.ignore_patterns("library.gchar", ".build.lock")
    )
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "demo", "-o", str(work / "demo.mp4")],
        env=env,
        check=True,
        capture_output=True,
    )
    demo_s = time.perf_counter() - started

    cores = "all cores" if args.all_cores else "one core"
    print(f"\nthe fox, on {cores}\n")
    rows = [
        ("fox built from nothing", f"{build_s:.1f} s", "< 60 s"),
        (
            f"say {audio_s:.0f} s of speech, end to end",
            f"{say_s:.1f} s",
            f"{audio_s / say_s:.1f}x real time (>= 8x)",
        ),
        ("  of which TTS (eSpeak NG)", f"{tts_s:.2f} s", f"{100 * tts_s / say_s:.1f}% of the time"),
        ("lip sync r, opening (unseen text)", f"{report.r_opening:.3f}", ">= 0.8"),
        ("lip sync r, width", f"{report.r_width:.3f}", ""),
        ("demo.mp4 from a fresh clone", f"{demo_s:.1f} s", "builds the fox + renders the story"),
    ]
    for name, value, note in rows:
        print(f"{name:38} {value:>10}   {note}")
    print(f"\nfiles in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
