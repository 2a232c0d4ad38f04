"""Quality benchmark: lip sync, seams and silence on the synthetic test character.

Builds a library from a synthetic "recording" (the rig of ``engine.synthetic`` driven by synthetic
speech), renders speech the library has never heard with each planner, and measures the output
pixels (see ``engine.quality``). Run by hand::

    python benchmarks/quality.py                      # 180 s library, 60 s of new speech, 512 px
    python benchmarks/quality.py --library-seconds 60 --test-seconds 30 --size 256   # quicker

Targets (issue 2): r opening >= 0.8, r width >= 0.6, seam p95 ratio <= 1.5, largest change
<= 3x the library's p99, >= 95 % of frames in pauses of 0.5 s or more closed.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import synthetic  # noqa: E402
from engine.build import BuildSettings, build_library  # noqa: E402
from engine.library import open_library  # noqa: E402
from engine.media import write_wav  # noqa: E402
from engine.planner import PlannerSettings  # noqa: E402
from engine.quality import measure  # noqa: E402
from engine.render import RenderConfig, render  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--library-seconds", type=float, default=180.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--test-seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the recording; the new speech uses seed + 1000"
    )
    parser.add_argument("--planners", default="greedy,global")
    parser.add_argument(
        "--no-idle-video", action="store_true", help="derive the idle library from the speech pauses"
    )
    parser.add_argument("--work", help="keep the generated files here (default: a temporary folder)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a planner setting, as a Python literal (repeatable): --set mouth_weight=5.0",
    )
    args = parser.parse_args()
    planner = PlannerSettings()
    for setting in args.set:
        name, _, value = setting.partition("=")
        planner = replace(planner, **{name: ast.literal_eval(value)})

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gramophone-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    library_path = work / f"test-{args.seed}-{args.library_seconds:g}-{args.size}.gchar"
    if not library_path.exists():
        started = time.perf_counter()
        speech_video, idle_video = synthetic.write_character_videos(
            work / f"recording-{args.seed}",
            args.seed,
            args.library_seconds,
            size=args.size,
            idle_s=args.idle_seconds,
        )
        print(f"generated the recording in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        build_library(
            speech_video,
            library_path,
            None if args.no_idle_video else idle_video,
            BuildSettings(size=args.size, crop="centre"),
        )

    sample_rate = 16_000
    audio = synthetic.synth_speech(args.test_seconds, seed=args.seed + 1000, sample_rate=sample_rate)
    audio_path = write_wav(work / "new-speech.wav", audio, sample_rate)

    rows = []
    with open_library(library_path) as library:
        for method in args.planners.split(","):
            config = RenderConfig(planner=replace(planner, method=method))
            out = work / f"render-{method}.mp4"
            result = render(library, audio_path, out, config=config)
            report = measure(out, audio, sample_rate, result.timeline, library)
            rows.append((method, result, report))

    print(
        f"\nlibrary: {args.library_seconds:g} s synthetic recording, {args.size} px; new speech: "
        f"{args.test_seconds:g} s (seed {args.seed + 1000})\n"
    )
    header = f"{'figure':34} {'target':>10} " + " ".join(f"{method:>10}" for method, _, _ in rows)
    print(header)
    print("-" * len(header))

    def line(name: str, target: str, values: list[str]) -> None:
        print(f"{name:34} {target:>10} " + " ".join(f"{value:>10}" for value in values))

    line("lip sync r, opening", ">= 0.80", [f"{r.r_opening:.3f}" for _, _, r in rows])
    line("lip sync r, width", ">= 0.60", [f"{r.r_width:.3f}" for _, _, r in rows])
    line("  r width where mouth open", "", [f"{r.r_width_open:.3f}" for _, _, r in rows])
    line("seam p95 joins / inside", "<= 1.50", [f"{r.seam_ratio:.2f}" for _, _, r in rows])
    line("  p95 change at joins", "", [f"{r.seam_p95_joins:.2f}" for _, _, r in rows])
    line("  p95 change inside segments", "", [f"{r.seam_p95_inside:.2f}" for _, _, r in rows])
    line("largest change / library p99", "<= 3.00", [f"{r.max_change_ratio:.2f}" for _, _, r in rows])
    line("closed in pauses >= 0.5 s", ">= 95%", [f"{100 * r.silence_closed:.1f}%" for _, _, r in rows])
    line("  frames in such pauses", "", [str(r.pause_frames) for _, _, r in rows])
    line("joins (morphs)", "", [str(r.joins) for _, _, r in rows])
    line("render speed (x real time)", "", [f"{res.duration_s / res.seconds:.1f}" for _, res, _ in rows])
    print(f"\nfiles in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
