"""Morphs on real faces: does the mouth stay a mouth halfway through a join?

For each clip in ``../shared/clips``: build a library from its first 65 % (as
``benchmarks/real_mouths.py`` does), plan the unheard rest and its TTS story (another voice,
with many more joins), and at every join make the morph's
middle frame twice, with optical flow alone and face-guided (``MorphSettings.face_guided``: on the
face, the similarity its landmarks give). The landmark model then reads the mouth on the two end
frames and on each middle frame:

* ``centre``: how far the middle frame's mouth centre is from halfway between the ends' mouth
  centres, in mouth widths (a lip dragged sideways by the flow moves it);
* ``opening``: how far its opening is from halfway between the ends' (inner-lip gap over mouth
  width);
* ``found``: the share of middle frames on which the landmark model finds a face at all.

Lower is better for the first two. Needs the landmark model
(``pip install --no-deps mediapipe==0.10.21``); skips cleanly when ``../shared/clips`` is absent::

    python benchmarks/morphs.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from real_mouths import ffmpeg, selected_clips, tts_speech  # noqa: E402

from engine import features as feat  # noqa: E402
from engine import landmarks  # noqa: E402
from engine.build import BuildSettings, build_library  # noqa: E402
from engine.library import open_library  # noqa: E402
from engine.media import ANALYSIS_SAMPLE_RATE, probe, read_audio  # noqa: E402
from engine.morph import Morph, MorphSettings  # noqa: E402
from engine.render import plan_audio  # noqa: E402

TRAIN_SHARE = 0.65
KINDS = ("flow", "face-guided")


def mouth(tracker: landmarks.FaceTracker, image: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """(mouth centre, mouth width in pixels, opening) on ``image``, or None without a face."""
    face = tracker.find(image)
    if face is None:
        return None
    width = float(
        np.linalg.norm(face.point(landmarks.MOUTH_CORNERS[0]) - face.point(landmarks.MOUTH_CORNERS[1]))
    )
    return face.mouth_centre, max(width, 1.0), face.mouth_opening


def measure_clip(clip: Path, work: Path, size: int) -> dict[str, list[tuple[float, float] | None]]:
    """Per kind of morph, (centre error, opening error) of each join's middle frame (None: no face)."""
    duration = probe(clip).duration or 0.0
    train_s = round(duration * TRAIN_SHARE * feat.FPS) / feat.FPS
    train = work / f"{clip.stem}-train.mp4"
    ffmpeg("-i", str(clip), "-t", f"{train_s:.3f}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
           "-c:a", "aac", "-b:a", "192k", str(train))  # fmt: skip
    library_path = work / f"{clip.stem}.gchar"
    build_library(train, library_path, settings=BuildSettings(size=size))
    audio = read_audio(clip)[int(train_s * ANALYSIS_SAMPLE_RATE) :]
    results: dict[str, list[tuple[float, float] | None]] = {kind: [] for kind in KINDS}
    with open_library(library_path) as library, landmarks.FaceTracker(still=True) as tracker:
        speech = tts_speech()
        timelines = [
            plan_audio(library, audio),
            plan_audio(library, speech.audio, speech.sample_rate, phonemes=speech.phonemes()),
        ]
        anchors = library.mouth_anchors
        for timeline, transition in ((t, transition) for t in timelines for transition in t.transitions):
            if transition.a_out < 0:
                continue
            first, last = (
                int(timeline.frame_source[transition.a_out]),
                int(timeline.frame_source[transition.b_out]),
            )
            a, b = library.frame(first), library.frame(last)
            ends = [mouth(tracker, a), mouth(tracker, b)]
            if ends[0] is None or ends[1] is None:
                continue
            centre = 0.5 * (ends[0][0] + ends[1][0])
            width = 0.5 * (ends[0][1] + ends[1][1])
            opening = 0.5 * (ends[0][2] + ends[1][2])
            faces = None if anchors is None else (anchors[first], anchors[last])
            for kind in KINDS:
                settings = replace(MorphSettings(), face_guided=kind == "face-guided")
                middle = mouth(tracker, Morph(a, b, settings, faces=faces).frame(0.5))
                results[kind].append(
                    None
                    if middle is None
                    else (float(np.linalg.norm(middle[0] - centre) / width), abs(middle[2] - opening))
                )
    return results


def summary(values: list[tuple[float, float] | None]) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return f"{'-':>7} {'-':>8} {0:6.0%}"
    centre, opening = np.array(found).mean(axis=0)
    return f"{centre:7.3f} {opening:8.3f} {len(found) / len(values):6.0%}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", help="comma-separated clip names (default: all)")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    clips = selected_clips(args.clips)
    if isinstance(clips, int):
        return clips
    totals: dict[str, list[tuple[float, float] | None]] = {kind: [] for kind in KINDS}
    print(
        f"{'clip':30} {'joins':>5}  "
        + "  ".join(f"{kind + ': centre':>17} {'opening':>8} {'found':>6}" for kind in KINDS)
    )
    with tempfile.TemporaryDirectory(prefix="gramophone-morphs-") as work:
        for clip in clips:
            results = measure_clip(clip, Path(work), args.size)
            for kind in KINDS:
                totals[kind] += results[kind]
            joins = len(results[KINDS[0]])
            print(
                f"{clip.stem:30} {joins:5d}  "
                + "  ".join(f"{'':>9}{summary(results[kind])}" for kind in KINDS)
            )
    print(
        f"{'all':30} {len(totals[KINDS[0]]):5d}  "
        + "  ".join(f"{'':>9}{summary(totals[kind])}" for kind in KINDS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
