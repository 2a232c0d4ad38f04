"""Real-footage lip-sync benchmark: leave-one-out on the talking-head clips in ``../shared/clips``.

For each clip: build a library from its first 65 % (face-centred framing, no ``--crop``), render
the unheard rest of the same voice, and compare the rendered mouth with the real one frame by
frame. The mouth measure is landmark openness (inner-lip gap over mouth width), measured on the
output pixels of both. Also per clip:

* ``loop r``: the training footage looped, ignoring the audio (what "no lip sync" scores);
* ``mouth~loud``: the rendered mouth's opening against the audio's loudness, beside the
  footage's own (``real~loud``);
* ``jumps``: the 95th percentile of frame-to-frame change of the render over the footage's own;
* ``tts~loud``: another voice (eSpeak NG reading a fixed text, rendered as ``say`` renders a
  story: with its phonemes) on the clip's library, its mouth against its loudness, to compare
  with ``real~loud``; ``tts jumps`` its frame jumps (as ``jumps``, over the footage's own);
  ``p/b/m`` how much more open its mouth is on open vowels than on p, b and m, in standard
  deviations of the footage's own opening (lips that meet on p, b, m score high);
* ``ceiling`` (with ``--ceiling``): the same audio rendered again with the real held-out mouth
  as the planner's target in place of the mouth model's prediction: what retrieval from this
  library can reach at these settings if the audio -> mouth prediction were perfect;
* framing: on the render, the share of frames with a face (``face``), the face's width over the
  frame's (``width``) and its centre's distance from the frame's centre, in frame widths (``off``).

Pooled figures are over clips of at least 8 s, weighted by test frames. The test parts are 2-7 s,
so one split says little (its block-bootstrap band is printed); ``--folds 3`` holds out each
third of every clip in turn instead, building on the other two (joined as two takes), so every
frame is tested once: the figure to tune by. Needs the landmark model
(``pip install --no-deps mediapipe==0.10.21``); skips clips cleanly when ``../shared/clips`` is
absent. Run by hand::

    python benchmarks/real_mouths.py                 # every clip, 256 px
    python benchmarks/real_mouths.py --clips latentsync_demo3 --sheets out/   # one clip, contact sheets
    python benchmarks/real_mouths.py --folds 3 --set loudness_target=0.5     # rotated, a planner setting
    python benchmarks/real_mouths.py --ceiling --mouth-weight 10 --set loudness_target=0.0
"""

from __future__ import annotations

import argparse
import ast
import functools
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import features as feat  # noqa: E402
from engine import landmarks  # noqa: E402
from engine.build import BuildSettings, build_library  # noqa: E402
from engine.library import open_library  # noqa: E402
from engine.media import ANALYSIS_SAMPLE_RATE, Crop, ffmpeg_exe, iter_frames, probe, read_audio, write_wav  # noqa: E402
from engine.mouth import MouthModel  # noqa: E402
from engine.planner import PlannerSettings  # noqa: E402
from engine.render import RenderConfig, SpokenAudio, render, render_stream  # noqa: E402
from engine.speech import Speech, VoiceSettings, speak  # noqa: E402
from engine.visemes import CLOSED, frame_sounds, sound_class  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "clips"
TRAIN_SHARE = 0.65
POOLED_MIN_S = 8.0
TTS_TEXT = (
    "Once upon a time, a little fox lived at the edge of a quiet wood. Every morning she ran to the river, "
    "looked at the fish, and sang a song about the sun. One day an old owl asked her why she was so happy. "
    "Mum baked a plum pie, and the puppy put a pebble in my blue boot."
)


@functools.cache
def tts_speech() -> Speech:
    """The other voice, spoken once per run: eSpeak NG's output differs slightly from one call
    to the next within a process, and every clip (in any subset of clips) must hear the same."""
    return speak(TTS_TEXT, VoiceSettings(language="en"))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def openings(frames: list[np.ndarray], centres: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(opening per frame, NaN where no face; face width over frame width). With ``centres``,
    appends each face's distance from the frame's centre, in frame widths."""
    opening = np.full(len(frames), np.nan)
    widths = np.full(len(frames), np.nan)
    with landmarks.FaceTracker() as tracker:
        for i, frame in enumerate(frames):
            face = tracker.find(frame)
            if face is not None:
                opening[i] = face.mouth_opening
                x0, y0, x1, y1 = face.box
                widths[i] = (x1 - x0) / frame.shape[1]
                if centres is not None:
                    side = frame.shape[1]
                    centres.append(float(np.hypot((x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2) / side))
    return opening, widths


def sound_classes(phonemes: tuple[tuple[float, str], ...], n_frames: int) -> np.ndarray:
    """Each frame's sound: its viseme class (:func:`engine.visemes.sound_class`), with the lips'
    own closures (p, b, m) told apart from pauses as ``closed-lips``."""
    sounds = frame_sounds(phonemes, n_frames)
    return np.array(
        ["closed-lips" if sound.strip("ˈˌ")[:1] in CLOSED else sound_class(sound) for sound in sounds],
        dtype=object,
    )


def video_frames(path: Path, size: int, crop: Crop | None = None) -> list[np.ndarray]:
    return [frame.copy() for frame in iter_frames(path, size, feat.FPS, crop)]


def jumps_p95(frames: list[np.ndarray]) -> float:
    grey = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (128, 128), interpolation=cv2.INTER_AREA).astype(
            np.int16
        )
        for f in frames
    ]
    changes = [np.abs(b - a).mean() for a, b in zip(grey, grey[1:])]
    return float(np.percentile(changes, 95)) if changes else float("nan")


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def block_resamples(
    rendered: np.ndarray, real: np.ndarray, rng: np.random.Generator, count: int = 400, block: int = 25
) -> np.ndarray:
    """r of ``count`` block-bootstrap resamples (1 s blocks: neighbouring frames are not
    independent), to show how much one clip's figure can move by chance."""
    n = len(real)
    starts = np.arange(0, max(1, n - block + 1))
    blocks = max(1, n // block)
    values = np.empty(count)
    for k in range(count):
        index = np.concatenate([np.arange(s, min(s + block, n)) for s in rng.choice(starts, blocks)])
        values[k] = pearson(rendered[index], real[index])
    return values


@dataclass
class Row:
    clip: str
    train_s: float
    test_frames: int
    r: float
    loop_r: float
    mouth_loud: float
    real_loud: float
    jumps: float
    tts_loud: float
    tts_jumps: float
    tts_lips: float
    face_found: float
    face_width: float
    face_offset: float
    build_s: float
    model_r: float
    ceiling_r: float = float("nan")
    rendered_open: np.ndarray | None = None
    real_open: np.ndarray | None = None


def _as_takes(clip: Path, train_s: float, count: int, work: Path, size: int) -> tuple[Path, list[int], Crop]:
    """The training part cut into ``count`` video-note takes (square on the face, 480 px), joined
    the way a person's takes are (:func:`engine.makers.takes.join_takes`)."""
    from family import cut

    from engine.framing import face_crop
    from engine.makers.takes import join_takes

    crop = face_crop(clip)
    takes = []
    bounds = np.linspace(0.0, train_s, count + 1)
    for index in range(count):
        take = cut(
            clip,
            bounds[index],
            bounds[index + 1] - bounds[index],
            work / f"{clip.stem}-take{index}.mp4",
            crop=crop,
        )
        takes.append(take)
    joined = work / f"{clip.stem}-takes.mp4"
    return joined, join_takes(takes, joined, size=size), crop


def run_clip(
    clip: Path,
    work: Path,
    size: int,
    config: RenderConfig,
    sheets: Path | None,
    *,
    takes: int = 0,
    ceiling: bool = False,
) -> Row:
    duration = probe(clip).duration or 0.0
    train_s = round(duration * TRAIN_SHARE * feat.FPS) / feat.FPS
    train = work / f"{clip.stem}-train.mp4"
    ffmpeg(
        "-i",
        str(clip),
        "-t",
        f"{train_s:.3f}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "16",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        str(train),
    )
    audio = read_audio(clip)
    test = audio[int(train_s * ANALYSIS_SAMPLE_RATE) :]

    library_path = work / f"{clip.stem}.gchar"
    started = time.perf_counter()
    take_crop = None
    if takes:  # as a person would record it in Telegram: video notes, joined
        joined, counts, take_crop = _as_takes(clip, train_s, takes, work, size)
        build_library(
            joined, library_path, settings=BuildSettings(size=size, crop="centre"), take_frames=counts
        )
    else:
        build_library(train, library_path, settings=BuildSettings(size=size))
    build_s = time.perf_counter() - started
    return measure_library(
        clip,
        library_path,
        train_s,
        test,
        work,
        size,
        config,
        sheets,
        crop=take_crop,
        build_s=build_s,
        ceiling=ceiling,
    )


def without_window(clip: Path, start_s: float, end_s: float, out: Path) -> list[int]:
    """``clip`` at 25 fps with ``start_s .. end_s`` cut out, as one video; returns the frame
    counts of the parts before and after (the takes of the build, so no segment spans the cut)."""
    total = int((probe(clip).duration or 0.0) * feat.FPS)
    first, last = int(round(start_s * feat.FPS)), int(round(end_s * feat.FPS))
    parts = [(a, b) for a, b in ((0, first), (last, total)) if b - a >= 2 * feat.SEGMENT_FRAMES]
    graph = []
    for index, (a, b) in enumerate(parts):
        graph.append(
            f"[0:v]fps={feat.FPS},trim=start_frame={a}:end_frame={b},setpts=PTS-STARTPTS[v{index}];"
            f"[0:a]atrim=start={a / feat.FPS:.4f}:end={b / feat.FPS:.4f},asetpts=PTS-STARTPTS[a{index}]"
        )
    inputs = "".join(f"[v{i}][a{i}]" for i in range(len(parts)))
    graph.append(f"{inputs}concat=n={len(parts)}:v=1:a=1[v][a]")
    ffmpeg(
        "-i", str(clip), "-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-c:a", "aac", "-b:a", "192k", str(out),
    )  # fmt: skip
    counts = [b - a for a, b in parts]
    made = sum(1 for _ in iter_frames(out, 64, feat.FPS))
    counts[-1] += made - sum(counts)  # the encoder's last frame, give or take one
    return counts


def run_folds(
    clip: Path, work: Path, size: int, config: RenderConfig, folds: int, *, ceiling: bool = False
) -> list[Row]:
    """Rotated leave-one-out: each of ``folds`` equal windows of the clip held out in turn, the
    library built on the rest. Every frame is tested once, so the figure rests on the whole clip
    rather than its last 35 % (a few seconds: noise)."""
    duration = probe(clip).duration or 0.0
    audio = read_audio(clip)
    rows = []
    for fold in range(folds):
        start_s = round(duration * fold / folds * feat.FPS) / feat.FPS
        end_s = round(duration * (fold + 1) / folds * feat.FPS) / feat.FPS
        train = work / f"{clip.stem}-fold{fold}.mp4"
        counts = without_window(clip, start_s, end_s, train)
        library_path = work / f"{clip.stem}-fold{fold}.gchar"
        build_library(train, library_path, settings=BuildSettings(size=size), take_frames=counts)
        test = audio[int(start_s * ANALYSIS_SAMPLE_RATE) : int(end_s * ANALYSIS_SAMPLE_RATE)]
        row = measure_library(
            clip, library_path, start_s, test, work, size, config, None, with_tts=False, ceiling=ceiling
        )
        rows.append(replace(row, clip=f"{clip.stem}#{fold}", train_s=duration - (end_s - start_s)))
    return rows


def report_folds(rows: list[Row], durations: dict[str, float]) -> None:
    """Per clip, r over its folds (weighted by test frames); pooled over clips of at least
    :data:`POOLED_MIN_S`, and over all."""
    print(f"{'clip':34} {'folds r':>24} {'r':>6} {'loop r':>6} {'ceiling':>7}")
    by_clip: dict[str, list[Row]] = {}
    for row in rows:
        by_clip.setdefault(row.clip.split("#")[0], []).append(row)
    summary = []
    for name, group in by_clip.items():
        weights = np.array([row.test_frames for row in group], float)
        r = float(np.average(np.nan_to_num([row.r for row in group]), weights=weights))
        loop = float(np.average(np.nan_to_num([row.loop_r for row in group]), weights=weights))
        best = float(np.average([row.ceiling_r for row in group], weights=weights))  # NaN: not run
        summary.append((name, weights.sum(), r, loop, best))
        folds_text = " ".join(f"{row.r:6.3f}" for row in group)
        print(f"{name:34} {folds_text:>24} {r:6.3f} {loop:6.3f} {best:7.3f}")
    for label, chosen in (
        (f"clips of >= {POOLED_MIN_S:.0f} s", [s for s in summary if durations[s[0]] >= POOLED_MIN_S - 0.05]),
        ("all clips", summary),
    ):
        if chosen:
            weights = np.array([s[1] for s in chosen])
            print(
                f"rotated, pooled over {len(chosen)} {label} (weighted by test frames): "
                f"r {np.average([s[2] for s in chosen], weights=weights):.3f}, "
                f"loop {np.average([s[3] for s in chosen], weights=weights):.3f}"
                + (
                    f", ceiling {np.average([s[4] for s in chosen], weights=weights):.3f}"
                    if all(np.isfinite(s[4]) for s in chosen)
                    else ""
                )
            )


def measure_library(
    clip: Path,
    library_path: Path,
    train_s: float,
    test: np.ndarray,
    work: Path,
    size: int,
    config: RenderConfig,
    sheets: Path | None,
    *,
    crop: Crop | None = None,
    build_s: float = float("nan"),
    with_tts: bool = True,
    ceiling: bool = False,
) -> Row:
    """Render the unheard ``test`` audio (the clip after ``train_s``) on a library built from the
    clip's first ``train_s`` and compare the mouths. The real footage is framed with ``crop``,
    or with the library's own crop when None (openness is a ratio: framing only has to show the
    face)."""
    test_audio = write_wav(work / f"{clip.stem}-test.wav", test, ANALYSIS_SAMPLE_RATE)
    with open_library(library_path) as library:
        if crop is None:
            crop_text = str(library.info().build.get("crop", "centre")).split()[-1]
            crop = None if crop_text == "centre" else Crop(*[int(v) for v in crop_text.split(",")[:3]])
        train_opening = library.mouth[:, 0] if library.mouth is not None else None
        found = library.mouth_found if library.mouth_found is not None else None
        model_r = float((library.mouth_meta.get("model") or {}).get("cv_r", [np.nan])[0])

    out = work / f"{clip.stem}-render.mp4"
    result = render(library_path, test_audio, out, config=config)
    rendered = video_frames(out, size)
    # The real footage of the unheard part, framed as the library was.
    real_all = video_frames(clip, size, crop)
    start_frame = int(round(train_s * feat.FPS))
    real = real_all[start_frame : start_frame + len(rendered)]
    n = min(len(real), len(rendered))
    rendered, real = rendered[:n], real[:n]
    centres: list[float] = []
    rendered_open, rendered_width = openings(rendered, centres)
    real_open, _ = openings(real)
    loudness = feat.frame_levels_db(test, ANALYSIS_SAMPLE_RATE, n)
    loop = np.resize(train_opening, n) if train_opening is not None else np.full(n, np.nan)
    if found is not None and train_opening is not None:
        loop = np.where(np.resize(found, n), loop, np.nan)

    tts_loud = tts_jumps = lips = float("nan")
    if with_tts:
        tts_out = work / f"{clip.stem}-tts.mp4"
        speech = tts_speech()
        tts_audio = write_wav(work / f"{clip.stem}-tts.wav", speech.audio, speech.sample_rate)
        phonemes = speech.phonemes()
        # as `say` renders a story: the speech with its phonemes
        render_stream(
            library_path, [SpokenAudio(speech.audio, phonemes)], speech.sample_rate, tts_out, config=config
        )
        tts_frames = video_frames(tts_out, size)
        tts_open, _ = openings(tts_frames)
        tts_levels = feat.frame_levels_db(read_audio(tts_audio), ANALYSIS_SAMPLE_RATE, len(tts_frames))
        classes = sound_classes(phonemes, len(tts_frames))
        lips = float(
            np.nanmean(tts_open[classes == "open"]) - np.nanmean(tts_open[classes == "closed-lips"])
        ) / max(float(np.nanstd(real_open)), 1e-6)

        tts_loud = pearson(tts_open, tts_levels)
        tts_jumps = jumps_p95(tts_frames) / max(jumps_p95(real), 1e-6)

    if sheets is not None:
        write_sheet(sheets / f"{clip.stem}.png", rendered, real, result.timeline)
    best = float("nan")
    if ceiling:
        best = ceiling_r(library_path, test_audio, real_open, work / f"{clip.stem}-ceiling.mp4", config, size)
    return Row(
        clip=clip.stem,
        train_s=train_s,
        test_frames=n,
        r=pearson(rendered_open, real_open),
        loop_r=pearson(loop, real_open),
        mouth_loud=pearson(rendered_open, loudness),
        real_loud=pearson(real_open, loudness),
        jumps=jumps_p95(rendered) / max(jumps_p95(real), 1e-6),
        tts_loud=tts_loud,
        tts_jumps=tts_jumps,
        tts_lips=lips,
        face_found=float(np.isfinite(rendered_open).mean()),
        face_width=float(np.nanmedian(rendered_width)),
        face_offset=float(np.median(centres)) if centres else float("nan"),
        build_s=build_s,
        model_r=model_r,
        ceiling_r=best,
        rendered_open=rendered_open,
        real_open=real_open,
    )


@dataclass(frozen=True)
class KnownMouth:
    """Stands in for the library's :class:`engine.mouth.MouthModel` in the ceiling run: the
    opening it "predicts" is the real mouth of the held-out footage (standardised, as the
    model's predictions are), the width is the model's own."""

    model: MouthModel
    opening: np.ndarray  # the real opening per output frame, NaN where no face was found

    def predict(self, features: np.ndarray) -> np.ndarray:
        predicted = self.model.predict(features)
        known = np.full(len(features), np.nan)
        count = min(len(features), len(self.opening))
        known[:count] = self.opening[:count]  # frames past the footage's end, or faceless: no target
        found = np.isfinite(known)
        known[~found] = known[found].mean() if found.any() else 0.0
        predicted[:, 0] = (known - known.mean()) / (known.std() + 1e-6)
        return predicted


def ceiling_r(
    library_path: Path, test_audio: Path, real_open: np.ndarray, out: Path, config: RenderConfig, size: int
) -> float:
    """r of a render whose planner follows the real held-out mouth (:class:`KnownMouth`); NaN
    for a library without a mouth model."""
    with open_library(library_path) as library:
        model = library.mouth_model
        if model is None:
            return float("nan")
        library.mouth_model = KnownMouth(model, real_open)  # type: ignore[misc,assignment]  # the cached property's slot
        render(library, test_audio, out, config=config)
    rendered_open, _ = openings(video_frames(out, size))
    n = min(len(rendered_open), len(real_open))
    return pearson(rendered_open[:n], real_open[:n])


def write_sheet(path: Path, rendered: list[np.ndarray], real: list[np.ndarray], timeline) -> None:  # noqa: ANN001
    """Rows of 12 consecutive frames around the first joins: rendered above, real below."""
    path.parent.mkdir(parents=True, exist_ok=True)
    joins = [t.start for t in timeline.transitions][:3] or [0]
    rows = []
    for join in joins:
        first = max(0, min(join - 4, len(rendered) - 12))
        pick = range(first, min(first + 12, len(rendered)))
        top = np.hstack([cv2.resize(rendered[i], (128, 128)) for i in pick])
        bottom = np.hstack([cv2.resize(real[i], (128, 128)) for i in pick])
        rows += [top, bottom, np.zeros((6, top.shape[1], 3), np.uint8)]
    cv2.imwrite(str(path), np.vstack(rows))


def report(rows: list[Row]) -> None:
    """The table, and the pooled figure over clips of at least :data:`POOLED_MIN_S`."""
    header = (
        f"{'clip':34} {'train s':>7} {'test fr':>7} {'r':>6} {'loop r':>6} {'mouth~loud':>10} "
        f"{'real~loud':>9} {'tts~loud':>8} {'jumps':>6} {'tts jumps':>9} {'p/b/m':>5} {'face':>5} "
        f"{'width':>5} {'off':>5} {'model r':>7} {'ceiling':>7} "
        f"{'build s':>7}"
    )
    print(header)
    for row in rows:
        print(
            f"{row.clip:34} {row.train_s:7.1f} {row.test_frames:7d} {row.r:6.3f} {row.loop_r:6.3f} "
            f"{row.mouth_loud:10.3f} "
            f"{row.real_loud:9.3f} {row.tts_loud:8.3f} {row.jumps:6.2f} {row.tts_jumps:9.2f} "
            f"{row.tts_lips:5.2f} {row.face_found:5.2f} "
            f"{row.face_width:5.2f} {row.face_offset:5.2f} {row.model_r:7.3f} "
            f"{row.ceiling_r:7.3f} {row.build_s:7.1f}"
        )
    pooled = [row for row in rows if row.train_s / TRAIN_SHARE >= POOLED_MIN_S - 0.05]
    if pooled:
        weights = np.array([row.test_frames for row in pooled], float)
        r = np.array([row.r for row in pooled])
        loop = np.array([row.loop_r for row in pooled])
        rng = np.random.default_rng(0)
        draws = np.array(
            [block_resamples(row.rendered_open, row.real_open, rng) for row in pooled]
        )  # (clips, draws)
        spread = np.nanpercentile(np.average(np.nan_to_num(draws), axis=0, weights=weights), [5, 95])
        print(
            f"pooled over {len(pooled)} clips of >= {POOLED_MIN_S:.0f} s (weighted by test frames): "
            f"r {np.average(r, weights=weights):.3f} (block bootstrap 5-95%: {spread[0]:.2f} to "
            f"{spread[1]:.2f}), "
            f"loop {np.average(loop, weights=weights):.3f}"
        )
        ceilings = np.array([row.ceiling_r for row in pooled])
        if np.isfinite(ceilings).all():
            print(
                "  ceiling (the real mouth as the planner's target): "
                f"{np.average(ceilings, weights=weights):.3f}"
            )
        for row, values in zip(pooled, draws):
            low, high = np.nanpercentile(values, [5, 95])
            print(f"  {row.clip}: r {row.r:.3f}, 5-95% {low:.2f} to {high:.2f}")


def selected_clips(names: str | None) -> list[Path] | int:
    """The clips named (comma-separated; all when None), or the exit status when there is nothing
    to measure: 0 without ``../shared/clips``, 2 without the landmark model (with its message)."""
    if not CLIPS.is_dir():
        print(f"no clips at {CLIPS}: nothing to measure", file=sys.stderr)
        return 0
    if not landmarks.available():
        print(
            "the landmark model is not installed: pip install --no-deps mediapipe==0.10.21", file=sys.stderr
        )
        return 2
    chosen = names.split(",") if names else None
    return [c for c in sorted(CLIPS.glob("*.mp4")) if chosen is None or c.stem in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", help="comma-separated clip names (default: all)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--mouth-weight", type=float, default=None, help="planner mouth weight (default: the planner's)"
    )
    parser.add_argument(
        "--slot-frames", type=int, default=None, help="planner slot length (default: the planner's)"
    )
    parser.add_argument(
        "--join-mouth", type=float, default=None, help="planner mouth_join_weight (default: the planner's)"
    )
    parser.add_argument(
        "--other-voice-weight",
        type=float,
        default=None,
        help="planner other_voice_mouth_weight (default: the planner's)",
    )
    parser.add_argument(
        "--phoneme-weight", type=float, default=None, help="planner phoneme_weight (default: the planner's)"
    )
    parser.add_argument("--sheets", help="write contact sheets (PNG) of rendered vs real frames here")
    parser.add_argument("--work", help="keep the generated files here (default: a temporary folder)")
    parser.add_argument(
        "--takes",
        type=int,
        default=0,
        help="build from the training part cut into this many 480 px video-note takes, joined "
        "as a person's are (the family-character path); default: the clip itself",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other planner setting, as a Python literal (repeatable): --set loudness_target=0.5",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="rotated leave-one-out instead: hold out each of this many windows of every clip in turn "
        "(every frame tested once: less noise than the 65/35 split)",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also render each test with the real held-out mouth as the planner's target: what "
        "retrieval from the library can reach with a perfect audio -> mouth prediction",
    )
    args = parser.parse_args()
    clips = selected_clips(args.clips)
    if isinstance(clips, int):
        return clips
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gramophone-real-"))
    work.mkdir(parents=True, exist_ok=True)
    planner = PlannerSettings()
    if args.mouth_weight is not None:
        planner = replace(planner, mouth_weight=args.mouth_weight)
    if args.slot_frames is not None:
        planner = replace(planner, slot_frames=args.slot_frames)
    if args.join_mouth is not None:
        planner = replace(planner, mouth_join_weight=args.join_mouth)
    if args.other_voice_weight is not None:
        planner = replace(planner, other_voice_mouth_weight=args.other_voice_weight)
    if args.phoneme_weight is not None:
        planner = replace(planner, phoneme_weight=args.phoneme_weight)
    for setting in args.set:
        name, _, value = setting.partition("=")
        planner = replace(planner, **{name: ast.literal_eval(value)})
    config = RenderConfig(planner=planner)
    if args.folds:
        fold_rows = []
        for clip in clips:
            fold_rows += run_folds(clip, work, args.size, config, args.folds, ceiling=args.ceiling)
            print(
                f"{clip.stem}: folds r {' '.join(f'{row.r:.3f}' for row in fold_rows[-args.folds :])}",
                file=sys.stderr,
            )
        report_folds(fold_rows, {clip.stem: probe(clip).duration or 0.0 for clip in clips})
        return 0
    rows = []
    for clip in clips:
        row = run_clip(
            clip,
            work,
            args.size,
            config,
            Path(args.sheets) if args.sheets else None,
            takes=args.takes,
            ceiling=args.ceiling,
        )
        rows.append(row)
        print(f"{row.clip}: r {row.r:.3f} (loop {row.loop_r:.3f})", file=sys.stderr)
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
