"""Speed and memory benchmark: build, render against its floor, and peak memory of a long render.

Everything runs on ONE core (the script pins itself and its children to CPU 0, as
``taskset -c 0`` would). Figures are ratios to a floor measured in the same run, because these
machines are noisy:

* build: a library from a 3-minute 512x512 video (target: under 20 s);
* render: 60 s of new speech at 512x512 (targets: at least 10x faster than real time and at most
  1.3x the floor). The floor decodes the same library JPEGs the render shows and encodes that
  many frames with the same encoder settings and audio: the work no render can avoid;
* memory: peak RSS of ``gramophone render`` on 10 minutes of audio (target: under 400 MB), sampled
  from /proc every 20 ms; ffmpeg's own process is reported beside it.

Render and floor alternate ``--repeats`` times and the medians are compared, both in wall-clock
time and in CPU time (this process plus its ffmpeg children, from ``getrusage``): on a shared
machine the wall clock also counts time other processes and the host took, CPU time does not.
Run by hand::

    python benchmarks/speed.py
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if "--all-cores" not in sys.argv:
    # Pin before numpy and OpenCV start their thread pools: threads started earlier keep their cores.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import numpy as np  # noqa: E402

from engine import synthetic  # noqa: E402
from engine.build import BuildSettings, build_library  # noqa: E402
from engine.library import open_library  # noqa: E402
from engine.media import VideoEncoder, read_audio, write_wav  # noqa: E402
from engine.render import RenderConfig, plan_audio, render  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the ffmpeg encoders)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work) -> tuple[float, float]:
    """(wall seconds, CPU seconds) that ``work()`` took."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    work()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def floor_work(library, frame_ids: np.ndarray, audio_path: Path, out: Path, config: RenderConfig) -> None:
    """Decode the given library frames and encode them: the least any render must do."""
    with VideoEncoder(out, size=library.size, audio_path=audio_path, settings=config.encode) as encoder:
        for index in frame_ids:
            encoder.write(library.frame(int(index)))


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def peak_memory(command: list[str]) -> tuple[float, float, float]:
    """Run ``command``; return (peak RSS of it in MB, peak RSS of its children in MB, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    own = children = 0
    while process.poll() is None:
        own = max(own, _rss_kb(process.pid))
        children = max(children, sum(_rss_kb(child) for child in _children(process.pid)))
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()}")
    return own / 1024, children / 1024, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build-seconds", type=float, default=180.0)
    parser.add_argument("--render-seconds", type=float, default=60.0)
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    parser.add_argument("--work", help="keep generated files here (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gramophone-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    sample_rate = 16_000

    recording = work / f"recording-{args.build_seconds:g}-{args.size}"
    speech_video = recording / "speech.mp4"
    if not speech_video.exists():
        print("generating the synthetic recording (not timed)...", file=sys.stderr)
        speech_video, idle_video = synthetic.write_character_videos(
            recording, 1, args.build_seconds, size=args.size
        )
    else:
        idle_video = recording / "idle.mp4"
    read_audio(speech_video)  # warm the imports and caches the build uses
    library_path = work / "character.gchar"
    started = time.perf_counter()
    info = build_library(speech_video, library_path, idle_video, BuildSettings(size=args.size, crop="centre"))
    build_s = time.perf_counter() - started

    audio = synthetic.synth_speech(args.render_seconds, seed=1001, sample_rate=sample_rate)
    audio_path = write_wav(work / "speech-60.wav", audio, sample_rate)
    config = RenderConfig()
    renders, floors, render_cpu, floor_cpu = [], [], [], []
    with open_library(library_path) as library:
        timeline = plan_audio(library, read_audio(audio_path), sample_rate, config=config)
        for _ in range(args.repeats):
            results: list = []
            wall, cpu = timed(  # called right here, in this iteration: the loop variable is the one meant
                lambda: results.append(render(library, audio_path, work / "render.mp4", config=config))  # noqa: B023
            )
            renders.append(wall)
            render_cpu.append(cpu)
            result = results[0]
            wall, cpu = timed(
                lambda: floor_work(library, timeline.frame_source, audio_path, work / "floor.mp4", config)
            )
            floors.append(wall)
            floor_cpu.append(cpu)
    render_s, floor_s = statistics.median(renders), statistics.median(floors)
    render_c, floor_c = statistics.median(render_cpu), statistics.median(floor_cpu)

    long_audio = synthetic.synth_speech(args.long_seconds, seed=2001, sample_rate=sample_rate)
    long_path = write_wav(work / "speech-long.wav", long_audio, sample_rate)
    own_mb, ffmpeg_mb, long_s = peak_memory(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "render",
            str(library_path),
            str(long_path),
            "-o",
            str(work / "long.mp4"),
        ]
    )

    cores = "all cores" if args.all_cores else "one core"
    print(
        f"\nspeed on {cores}; library {info.speech_seconds:.0f} s + idle {info.idle_seconds:.0f} s at "
        f"{args.size}x{args.size}\n"
    )
    rows = [
        ("build 3-min video", f"{build_s:.1f} s", "< 20 s", f"{args.build_seconds / build_s:.1f}x real time"),
        (
            f"render {args.render_seconds:g} s, wall (median of {args.repeats})",
            f"{render_s:.2f} s",
            "",
            f"{args.render_seconds / render_s:.1f}x real time (>= 10x)",
        ),
        (
            "floor, wall: decode + encode",
            f"{floor_s:.2f} s",
            "",
            f"{args.render_seconds / floor_s:.1f}x real time",
        ),
        ("render / floor, wall", f"{render_s / floor_s:.2f}", "<= 1.30", ""),
        (
            f"render {args.render_seconds:g} s, CPU (median)",
            f"{render_c:.2f} s",
            "",
            f"{args.render_seconds / render_c:.1f}x real time (>= 10x)",
        ),
        ("floor, CPU", f"{floor_c:.2f} s", "", f"{args.render_seconds / floor_c:.1f}x real time"),
        (
            "render / floor, CPU",
            f"{render_c / floor_c:.2f}",
            "<= 1.30",
            f"joins: {result.joins}, morph frames: {result.morph_frames}/{result.frames}",
        ),
        (
            f"peak RSS, render {args.long_seconds / 60:g} min",
            f"{own_mb:.0f} MB",
            "< 400 MB",
            f"ffmpeg child {ffmpeg_mb:.0f} MB; took {long_s:.0f} s",
        ),
    ]
    for name, value, target, note in rows:
        print(f"{name:38} {value:>10} {target:>9}   {note}")
    print(
        f"\nwall, render runs: {', '.join(f'{s:.2f}' for s in renders)} s; floors: "
        f"{', '.join(f'{s:.2f}' for s in floors)} s"
    )
    print(
        f"CPU,  render runs: {', '.join(f'{s:.2f}' for s in render_cpu)} s; floors: "
        f"{', '.join(f'{s:.2f}' for s in floor_cpu)} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
