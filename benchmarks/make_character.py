"""New character from one picture: time to a ready character, puppet speed, and the new character's lip sync.

Runs on ONE core (pinned, like ``taskset -c 0``) unless ``--all-cores``. The picture is the
synthetic rig's test face drawn with a closed mouth, so :func:`engine.synthetic.measure_mouth`
can read the mouth of everything made from it. Run by hand::

    python benchmarks/make_character.py

Figures:

* the CPU puppet's cost per frame at 512 px (warping only, no encoding; it parts the lips on a triangulated
warp: a few ms; a whole character must take <= 60 s);
* picture -> ready character on the CPU fallback (:func:`engine.makers.make.make_character`, no
  FLP): TTS of the passage, puppet performance, library build, at 512 px;
* lip sync (r, as :mod:`engine.quality` measures it) of that character saying a text it never
  read. The product's puppet paints the open mouth a natural dark, which ``measure_mouth``
  cannot see, so the figure comes from a twin made from the same picture and the same
  performance audio with the gap painted the rig's interior red (``gap_bgr``), everything else
  equal;
* the FLP path end to end through the stand-in FLP (``tests/flp_standin``, CLI mode) with a
  reference performance of the rig (60 s speech, 12 s idle): the adapter, alignment, re-timing
  and build cost on a CPU (the stand-in's own "animation" is the puppet, not a GPU), and the
  lip sync of the character it makes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "--all-cores" not in sys.argv:
    # Pin before numpy and OpenCV start their thread pools: threads started earlier keep their cores.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from engine import synthetic  # noqa: E402
from engine.build import BuildSettings, build_library  # noqa: E402
from engine.library import open_library  # noqa: E402
from engine.makers.flp import FlpConfig  # noqa: E402
from engine.makers.make import make_character  # noqa: E402
from engine.makers.picture import Landmarks  # noqa: E402
from engine.makers.puppet import Puppet, puppet_performance  # noqa: E402
from engine.media import iter_frames, read_audio, write_wav  # noqa: E402
from engine.quality import measure  # noqa: E402
from engine.render import render  # noqa: E402
from engine.speech import VoiceSettings, concatenate, speak_sentences  # noqa: E402

log = logging.getLogger("make_character")

MOUTH, EYES = (256.0, 368.0), ((196.0, 228.0), (316.0, 228.0))
NEW_TEXT = (
    "Once upon a time, a little owl lived at the top of a tall pine tree. Every night she counted the stars, "
    "and every morning she told the squirrels what she had seen. One evening a bright comet flew over the "
    "forest, "
    "and the owl was so surprised that she forgot to count at all. Good night, little one, sleep well."
)


def lip_sync(library_path: Path, audio: np.ndarray, work: Path, name: str):
    """Render ``audio`` with a library and measure it as engine.quality does."""
    wav = write_wav(work / f"{name}.wav", audio, 16_000)
    out = work / f"{name}.mp4"
    result = render(library_path, wav, out)
    with open_library(library_path) as library:
        return measure(out, read_audio(out), 16_000, result.timeline, library)


def recording_r(video: Path, size: int) -> float:
    """r between the mouth a performance video shows and the mouth its own audio implies."""
    audio = read_audio(video)
    measured = np.array([synthetic.measure_mouth(frame)[0] for frame in iter_frames(video, size)])
    truth = synthetic.mouth_track(audio, 16_000, len(measured)).opening
    return float(np.corrcoef(measured, truth)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--all-cores", action="store_true")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--reference-seconds", type=float, default=60.0)
    parser.add_argument("--skip-flp", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    work = Path(tempfile.mkdtemp(prefix="gramophone-make-"))
    size = args.size
    scale = size / 512
    picture = work / "picture.png"
    cv2.imwrite(str(picture), synthetic.draw_face(synthetic.FaceParams(), size))
    mouth = (MOUTH[0] * scale, MOUTH[1] * scale)
    eyes = tuple((x * scale, y * scale) for x, y in EYES)
    voice = VoiceSettings(voice="en-us+f3", rate=150)
    new_audio = concatenate(speak_sentences(NEW_TEXT, voice), gap_s=0.15)
    new_16k = read_audio(write_wav(work / "new.wav", new_audio.audio, new_audio.sample_rate))
    formant = synthetic.synth_speech(20.0, seed=1077, sample_rate=16_000)  # the reference's kind of voice

    # 1. the puppet's cost per frame (warping only)
    puppet = Puppet(
        synthetic.draw_face(synthetic.FaceParams(), size), Landmarks(mouth, 92 * scale, eyes), size
    )
    poses = synthetic.performance_params(synthetic.synth_speech(20.0, seed=5), 16_000, seed=1)
    poses += synthetic.idle_params(250, seed=2)
    timings = []
    for _ in range(3):
        started = time.process_time()
        for pose in poses:
            puppet.frame(pose)
        timings.append((time.process_time() - started) / len(poses) * 1000)
    frame_ms = min(timings)

    # 2. picture -> ready character on the CPU
    stages: list[tuple[str, float]] = []
    started = time.perf_counter()
    made = make_character(
        picture,
        work / "characters" / "owl",
        character_id="owl",
        name="Owl",
        language="en",
        voice=voice,
        mouth=mouth,
        eyes=eyes,
        size=size,
        progress=lambda stage, fraction: stages.append((stage, time.perf_counter() - started)),
    )
    cpu_s = time.perf_counter() - started
    first = {}
    for stage, at in stages:
        first.setdefault(stage, at)
    animate_s = first.get("building library", cpu_s)
    build_s = first.get("ready", cpu_s) - animate_s

    # 3. lip sync of that character, through its red-gap twin
    twin = work / "twin"
    performance = read_audio(made.folder / "speech.mp4")
    speech, idle = puppet_performance(
        picture,
        Landmarks(mouth, 0.78 * (eyes[1][0] - eyes[0][0]), eyes),
        performance,
        16_000,
        twin,
        size=size,
        seed=0,
        gap_bgr=synthetic.MOUTH_INTERIOR_BGR,
    )
    build_library(speech, twin / "library.gchar", idle, BuildSettings(size=size, crop="centre"))
    twin_recording_r = recording_r(speech, size)
    cpu_report = lip_sync(twin / "library.gchar", new_16k, work, "cpu")
    cpu_formant = lip_sync(twin / "library.gchar", formant, work, "cpu-formant")

    flp_s = flp_report = flp_formant = None
    flp_stages: list[tuple[str, float]] = []
    if not args.skip_flp:
        # 4. the FLP path end to end, through the stand-in
        checkout = work / "flp"
        (checkout / "configs").mkdir(parents=True)
        (checkout / "configs" / "trt_infer.yaml").write_text("# stand-in\n")
        (checkout / "run.py").symlink_to(ROOT / "tests" / "flp_standin" / "run.py")
        reference = synthetic.write_character_videos(
            work / "reference", seed=11, duration_s=args.reference_seconds, size=512, idle_s=12.0
        )
        started = time.perf_counter()
        flp_made = make_character(
            picture,
            work / "characters" / "robin",
            character_id="robin",
            name="Robin",
            language="en",
            voice=voice,
            size=size,
            reference=reference,
            flp=FlpConfig("cli", checkout=checkout, python=sys.executable),
            progress=lambda stage, fraction: flp_stages.append((stage, time.perf_counter() - started)),
        )
        flp_s = time.perf_counter() - started
        flp_animate_s = next(at for stage, at in flp_stages if stage == "building library")
        flp_recording_r = recording_r(flp_made.folder / "speech.mp4", size)
        flp_report = lip_sync(flp_made.folder / "library.gchar", new_16k, work, "flp")
        flp_formant = lip_sync(flp_made.folder / "library.gchar", formant, work, "flp-formant")

    cores = "all cores" if args.all_cores else "one core"
    log.info("\nnew character from one picture, on %s, %d px\n", cores, size)
    log.info(
        "puppet, per frame (warp only)            %6.2f ms  (the lip-parting warp; a character must take <= "
        "60 s)",
        frame_ms,
    )
    log.info(
        "CPU path: picture -> ready character      %6.1f s   (%.1f s of speech, %d frames)",
        cpu_s,
        made.info.speech_seconds,
        made.info.frames,
    )
    log.info("  TTS + puppet + encode                   %6.1f s", animate_s)
    log.info("  library build                           %6.1f s", build_s)
    log.info("  its recording (puppet vs its own audio): r opening %.3f", twin_recording_r)
    log.info(
        "CPU character, new TTS text (%4.1f s):     r opening %.3f, r width %.3f (open: %.3f)",
        len(new_16k) / 16_000,
        cpu_report.r_opening,
        cpu_report.r_width,
        cpu_report.r_width_open,
    )
    log.info(
        "CPU character, new formant speech (20 s): r opening %.3f, r width %.3f (open: %.3f)",
        cpu_formant.r_opening,
        cpu_formant.r_width,
        cpu_formant.r_width_open,
    )
    if flp_s is not None and flp_report is not None and flp_formant is not None:
        log.info(
            "FLP path via the stand-in (CLI), %.0f s + 12 s reference: %6.1f s end to end (animate + retime "
            "%.1f s)",
            args.reference_seconds,
            flp_s,
            flp_animate_s,
        )
        log.info("  its recording (re-timed vs reference audio): r opening %.3f", flp_recording_r)
        log.info(
            "FLP character, new TTS text:              r opening %.3f, r width %.3f (open: %.3f)",
            flp_report.r_opening,
            flp_report.r_width,
            flp_report.r_width_open,
        )
        log.info(
            "FLP character, new formant speech:        r opening %.3f, r width %.3f (open: %.3f)",
            flp_formant.r_opening,
            flp_formant.r_width,
            flp_formant.r_width_open,
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
