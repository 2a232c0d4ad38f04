"""A person recorded in takes: how long from the last take to the preview, and how the takes look.

    python benchmarks/family.py                      # latentsync_demo3, the phone video
    python benchmarks/family.py --clip vr_face1 --takes 2

Takes are cut from a clip in ``../shared/clips/`` (skipped when absent) the way a person would
send them in Telegram: round video notes, 480 px, square on the face; the clip's last 3 s stand
in for the silent take (no clip has one: its mouth moves, which only makes the idle a little
livelier). Each take is checked as the bot checks it on arrival (:func:`check_take`), then the
machine's part of "last take -> preview" is timed on this machine (both cores): making the
character (:func:`engine.makers.make.make_character_from_person`, 512 px) and rendering its hello
(``say`` of the greeting), which is what the bot sends as the preview. The admin's taps in
between (consent, voice) are not machine time. The leave-one-out lip sync of a library built
from such takes is ``python benchmarks/real_mouths.py --takes 2``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.characters import load_character  # noqa: E402
from engine.framing import face_crop  # noqa: E402
from engine.makers.make import make_character_from_person  # noqa: E402
from engine.makers.takes import check_take  # noqa: E402
from engine.media import Crop, ffmpeg_exe, probe  # noqa: E402
from engine.say import say  # noqa: E402
from engine.speech import VoiceSettings  # noqa: E402

CLIPS = ROOT.parent / "shared" / "clips"
NOTE_SIDE = 480


def cut(clip: Path, start: float, length: float, out: Path, *, crop: Crop | None = None) -> Path:
    """A round video note cut from ``clip``: square on the face (or on ``crop``), 480 px, as
    Telegram records one. The benchmarks that play a person recording themselves all cut here."""
    crop = crop or face_crop(clip)
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-ss", f"{start:.3f}", "-i", str(clip),
         "-t", f"{length:.3f}",
         "-vf", f"crop={crop.side}:{crop.side}:{crop.x}:{crop.y},scale={NOTE_SIDE}:{NOTE_SIDE}",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "aac", "-b:a", "96k", str(out)],
        check=True,
    )  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default="latentsync_demo3")
    parser.add_argument("--takes", type=int, default=2)
    args = parser.parse_args()
    clip = CLIPS / f"{args.clip}.mp4"
    if not clip.is_file():
        print(f"skipped: {clip} is absent")
        return 0
    duration = probe(clip).duration or 0.0
    speech_s = duration - 3.0
    with tempfile.TemporaryDirectory(prefix="family-") as work:
        work_dir = Path(work)
        takes = []
        for index in range(args.takes):
            length = speech_s / args.takes
            takes.append(cut(clip, index * length, length, work_dir / f"take{index}.mp4"))
        idle = cut(clip, speech_s, 3.0, work_dir / "idle.mp4")
        for take in takes:
            report = check_take(take, kind="speech", seconds=(2.0, 61.0))
            print(
                f"{take.name}: {report.seconds:.1f} s, face {report.face_share:.0%}, mouth "
                f"{report.mouth_share:.0%}, "
                f"voiced {report.voiced_share:.0%}, peak {report.peak_dbfs:.0f} dBFS, light "
                f"{report.brightness:.0f}: "
                f"{'ok' if report.ok else '; '.join(report.problems)}"
            )
        started = time.perf_counter()
        made = make_character_from_person(
            takes,
            idle,
            work_dir / "person",
            character_id="person",
            name="Person",
            language="en",
            voice=VoiceSettings(language="en"),
            size=512,
        )
        made_s = time.perf_counter() - started
        character = load_character(made.folder)
        preview_started = time.perf_counter()
        say(character, character.greeting_for("en"), work_dir / "preview.mp4", video_note=True)
        preview_s = time.perf_counter() - preview_started
        print(
            f"{args.clip}: {args.takes} takes of {speech_s / args.takes:.1f} s at {NOTE_SIDE} px -> 512 px "
            "library "
            f"({made.info.speech_frames} speech frames): made in {made_s:.1f} s, preview rendered in "
            f"{preview_s:.1f} s, "
            f"last take -> preview {made_s + preview_s:.1f} s of machine time (both cores)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
