"""Characters from one picture on the CPU, judged on their own output frames.

For every picture in ``../shared/pictures/`` (skipped cleanly when the folder is absent), this
makes a character on the CPU path (:func:`engine.makers.make.make_character`, 512 px, the
process pinned to one core), has it say about 22 s of TTS it never read (its five sentences
0.6 s apart, as a storyteller pauses), and measures the video
it rendered::

    python benchmarks/pictures.py                 # all pictures
    python benchmarks/pictures.py --only s10,s33  # some (liveportrait_s10.jpg, ...)
    python benchmarks/pictures.py --sheets /tmp/sheets

People (photos, paintings, a statue) go the landmark path; the animals go the manual path, with
the mouth corners and eyes an admin would point at on the bot's grids (:data:`POINTED`, picture
pixels, snapped to the cells of the whole picture and then of the closer look, and read back
through :func:`engine.makers.grid.parse_cells`, exactly as the bot does).

Measures, per character (the landmark model on the output frames):

* ``face``: share of output frames in which the landmark model finds the face (>= 95 %);
* ``r``: the mouth's opening (inner-lip gap over width) against the audio's loudness (>= 0.3);
* ``centre``: where the open mouth is, against where the still's lips meet, carried into each
  frame by a similarity fitted on landmarks that do not move with the jaw (eye corners, nose
  bridge, forehead), in face widths; the median over open frames (<= 0.06);
* ``lip``: the upper lip's colour on open frames against the still's, over the still's
  lip-to-skin contrast (CIE Lab); the median (<= 0.5; at 1.0 the lip is gone);
* ``closed``: share of frames in pauses (>= 0.3 s of silence) whose mouth is shut (>= 95 %);
* ``s``: seconds to make the character on one core (<= 60).

The animals have no face the landmark model knows, so their mouths are measured from pixels in
the region the admin pointed at: ``r`` is the darkening there against loudness, ``closed`` the
share of pause frames with no darkening, ``centre`` the offset of the centre
of the pixels that are darker than the still and of the mouth interior's colour, from the
pointed mouth, in face widths (twice the eye distance); ``face`` and ``lip`` do not apply.

Each character gets a contact sheet (still, a closed, a half-open and an open frame of its
face, and the open frame whole): look at every one.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "--all-cores" not in sys.argv:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before numpy and OpenCV start threads

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from real_mouths import pearson  # noqa: E402 -- the same r as the real-mouths benchmark

from engine import features as feat  # noqa: E402
from engine import landmarks, synthetic  # noqa: E402
from engine.characters import ensure_library, load_character  # noqa: E402
from engine.makers.face_rig import UPPER_INNER, UPPER_OUTER  # noqa: E402
from engine.makers.grid import Grid, PointedFace, next_look, parse_cells  # noqa: E402
from engine.makers.make import make_character, puppet_rig  # noqa: E402
from engine.makers.picture import check_picture, read_picture  # noqa: E402
from engine.makers.puppet import Puppet  # noqa: E402
from engine.media import ANALYSIS_SAMPLE_RATE, iter_frames, read_audio, write_wav  # noqa: E402
from engine.render import render  # noqa: E402
from engine.speech import VoiceSettings, concatenate, speak_sentences  # noqa: E402

log = logging.getLogger("pictures")

PICTURES = ROOT.parent / "shared" / "pictures"
SIZE = 512
TEXT = (
    "Once upon a time, a little boat sailed across the quiet sea. The moon was round and bright, "
    "and the waves were soft and gentle. Far away, on a small green island, an old lighthouse "
    "blinked its friendly eye. Good night, little boat, said the moon. Good night, said the boat, "
    "and it dreamed of morning."
)
PAUSE_S = 0.6
"""Silence between the sentences, as a storyteller leaves it."""
# The animals: left and right mouth corner, left and right eye (and, for a mouth open in the
# picture, the middle of the upper and lower lip's edge), as an admin points at them on the bot's
# grid (picture pixels; they are snapped to cells before use).
POINTED = {
    "s22": [(450, 301), (525, 297), (448, 220), (509, 214)],
    "s23": [(308, 410), (370, 410), (256, 343), (394, 343)],
    "s25": [(187, 322), (263, 322), (170, 234), (303, 230)],
    "s30": [(105, 186), (154, 184), (96, 111), (159, 111), (129, 187), (129, 206)],
    "s31": [(105, 192), (142, 192), (94, 111), (159, 111), (122, 188), (122, 199)],
    "s32": [(104, 157), (165, 175), (111, 105), (171, 105), (132, 167), (134, 204)],
    "s33": [(215, 413), (290, 413), (160, 207), (349, 207)],
    "s36": [(389, 284), (438, 284), (341, 197), (483, 197)],
    "s38": [(412, 918), (560, 918), (317, 676), (655, 676)],
    "s39": [(530, 626), (609, 612), (411, 479), (629, 414)],
    "s40": [(593, 531), (652, 531), (546, 421), (694, 421)],
}
STABLE = (33, 133, 263, 362, 168, 6, 197, 10, 109, 338, 151)  # eye corners, nose bridge, forehead
CHEEKS = (205, 425, 50, 280)
TARGETS = {"face": 0.95, "r": 0.3, "centre": 0.06, "lip": 0.5, "closed": 0.95, "s": 60.0}


@dataclass
class Row:
    name: str
    path: str
    seconds: float
    face: float = float("nan")
    r: float = float("nan")
    centre: float = float("nan")
    lip: float = float("nan")
    closed: float = float("nan")

    def passed(self) -> bool:
        checks = [
            self.r >= TARGETS["r"],
            self.centre <= TARGETS["centre"],
            self.closed >= TARGETS["closed"],
            self.seconds <= TARGETS["s"],
        ]
        if self.path == "landmarks":
            checks += [self.face >= TARGETS["face"], self.lip <= TARGETS["lip"]]
        return all(checks)


def pauses(loudness_db: np.ndarray, *, min_frames: int = 8, trim: int = 3) -> np.ndarray:
    """Frames inside silences of at least ``min_frames`` (0.32 s), less ``trim`` at each end
    (the mouth closing and opening again)."""
    silent = loudness_db < loudness_db.max() - 35.0
    out = np.zeros_like(silent)
    start = None
    for i, quiet in enumerate(np.append(silent, False)):
        if quiet and start is None:
            start = i
        elif not quiet and start is not None:
            if i - start >= min_frames:
                out[start + trim : i - trim] = True
            start = None
    return out


def polygon_mean_lab(frame: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    lab = cv2.cvtColor(frame, cv2.COLOR_BGR2LAB).astype(np.float32)
    return lab[mask > 0].mean(axis=0) if mask.any() else np.full(3, np.nan)


def disc_mean_lab(frame: np.ndarray, centres: np.ndarray, radius: int) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], np.uint8)
    for x, y in np.round(centres).astype(int):
        cv2.circle(mask, (int(x), int(y)), radius, 255, -1)
    lab = cv2.cvtColor(frame, cv2.COLOR_BGR2LAB).astype(np.float32)
    return lab[mask > 0].mean(axis=0)


def pointed_cells(picture: Path, points: list[tuple[int, int]]) -> tuple[str, PointedFace]:
    """What an admin types on the bot's grids (the whole picture, then each closer look) for
    these points, and what the bot reads from the last answer."""
    info = check_picture(picture)
    grid: Grid | None = Grid.over(info.width, info.height)
    answers: list[str] = []
    pointed = None
    while grid is not None:
        answers.append(" ".join(grid.cell_at(x, y) for x, y in points))
        pointed = parse_cells(answers[-1], grid, rough=len(answers) == 1)
        grid = next_look(pointed, grid, info.width, info.height, looks=len(answers))
    assert pointed is not None
    return ", then ".join(answers), pointed


def measure_landmarks(
    row: Row, still: np.ndarray, frames: list[np.ndarray], loudness: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    with landmarks.FaceTracker(still=True) as tracker:
        rest = tracker.find(still)
    if rest is None:
        raise RuntimeError("no face in the still")
    openings = np.full(len(frames), np.nan)
    faces = []
    with landmarks.FaceTracker() as tracker:
        for i, frame in enumerate(frames):
            face = tracker.find(frame)
            faces.append(face)
            if face is not None:
                openings[i] = face.mouth_opening
    row.face = float(np.isfinite(openings).mean())
    row.r = pearson(openings, loudness)
    quiet = pauses(loudness)
    closed_limit = rest.mouth_opening + 0.05
    row.closed = float(np.mean(openings[quiet] <= closed_limit)) if quiet.any() else float("nan")
    voiced = np.isfinite(openings) & ~quiet
    threshold = (
        max(np.nanpercentile(openings[voiced], 70), rest.mouth_opening + 0.1) if voiced.any() else np.inf
    )
    open_frames = [i for i in np.flatnonzero(voiced) if openings[i] >= threshold]
    face_width = float(np.linalg.norm(rest.point(234) - rest.point(454)))
    lip_line = (rest.point(13) + rest.point(14)) / 2
    still_lip = polygon_mean_lab(still, rest.points[list(UPPER_OUTER) + list(UPPER_INNER[::-1])])
    skin = disc_mean_lab(still, rest.points[list(CHEEKS)], max(2, round(0.02 * face_width)))
    contrast = float(np.linalg.norm(still_lip - skin))
    offsets, colours = [], []
    for i in open_frames:
        face = faces[i]
        matrix, _ = cv2.estimateAffinePartial2D(
            rest.points[list(STABLE)].astype(np.float32), face.points[list(STABLE)].astype(np.float32)
        )
        if matrix is None:
            continue
        expected = matrix[:, :2] @ lip_line + matrix[:, 2]
        centre = (face.point(13) + face.point(14)) / 2
        offsets.append(float(np.linalg.norm(centre - expected)) / face_width)
        lip = polygon_mean_lab(frames[i], face.points[list(UPPER_OUTER) + list(UPPER_INNER[::-1])])
        colours.append(float(np.linalg.norm(lip - still_lip)) / max(contrast, 1e-6))
    row.centre = float(np.median(offsets)) if offsets else float("nan")
    row.lip = float(np.median(colours)) if colours else float("nan")
    return openings, open_frames


def measure_pixels(
    row: Row, puppet: Puppet, still: np.ndarray, frames: list[np.ndarray], loudness: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    rig = puppet.rig
    width = rig.mouth_width
    eye_distance = rig.eye_distance
    cx, cy = puppet.lips_meet
    x0, x1 = int(max(0, cx - 0.8 * width)), int(min(SIZE, cx + 0.8 * width))
    y0, y1 = int(max(0, cy - 0.5 * width)), int(min(SIZE, cy + 0.8 * width))
    still_grey = cv2.cvtColor(still, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # The head drifts and nods: each frame is compared with the still moved as the nose moved (a
    # dog's dark lips, shifted a pixel, would otherwise read as a mouth opening).
    nx, ny = rig.still[0] - puppet.pad
    half = int(0.5 * eye_distance)
    nose = (slice(max(0, int(ny) - half), int(ny) + half // 2), slice(max(0, int(nx) - half), int(nx) + half))
    window = cv2.createHanningWindow((nose[1].stop - nose[1].start, nose[0].stop - nose[0].start), cv2.CV_32F)
    interior = np.asarray(puppet.gap_bgr, np.float32)
    darkening = np.zeros(len(frames))
    centres = []
    for i, frame in enumerate(frames):
        patch = frame[y0:y1, x0:x1]
        grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
        frame_nose = cv2.cvtColor(frame[nose], cv2.COLOR_BGR2GRAY).astype(np.float32)
        (dx, dy), _ = cv2.phaseCorrelate(still_grey[nose], frame_nose, window)
        # the still moved by (dx, dy), only over the patch
        rest = cv2.warpAffine(
            still_grey,
            np.float32([[1, 0, dx - x0], [0, 1, dy - y0]]),
            (x1 - x0, y1 - y0),
            borderMode=cv2.BORDER_REPLICATE,
        )
        dark = np.clip(rest - grey - 25.0, 0, None)  # clearly darker than the still: the open mouth
        darkening[i] = dark.mean()
        # where the mouth is open: darker than the still AND of the interior's own dark colour (not
        # the dark fur or nose beside it, which the head's small motion also darkens)
        opened = (dark > 0) & (np.linalg.norm(patch.astype(np.float32) - interior, axis=2) < 40.0)
        if opened.sum() >= 4:
            ys, xs = np.nonzero(opened)
            centres.append((float(xs.mean()) + x0, float(ys.mean()) + y0))
        else:
            centres.append((np.nan, np.nan))
    row.r = pearson(darkening, loudness)
    quiet = pauses(loudness)
    speaking = darkening[~quiet]
    limit = 0.1 * np.percentile(speaking, 95) if len(speaking) else 0.0
    row.closed = float(np.mean(darkening[quiet] <= limit)) if quiet.any() else float("nan")
    open_frames = [i for i in np.flatnonzero(~quiet) if darkening[i] >= np.percentile(speaking, 70)]
    face_width = 2 * eye_distance
    offsets = [
        float(np.hypot(centres[i][0] - cx, centres[i][1] - cy)) / face_width
        for i in open_frames
        if np.isfinite(centres[i][0])
    ]
    row.centre = float(np.median(offsets)) if offsets else float("nan")
    return darkening, open_frames


def write_sheet(
    path: Path,
    still: np.ndarray,
    frames: list[np.ndarray],
    measure: np.ndarray,
    open_frames: list[int],
    puppet: Puppet,
    label: str,
) -> None:
    cx, cy = (np.asarray(puppet.rig.mouth_centre) - puppet.pad).astype(int)
    half = int(1.6 * puppet.rig.mouth_width)

    def face(image: np.ndarray) -> np.ndarray:
        top, left = max(0, cy - 2 * half), max(0, cx - half * 3 // 2)
        crop = image[top : cy + half, left : cx + half * 3 // 2]
        return cv2.resize(crop, (300, 300), interpolation=cv2.INTER_AREA)

    finite = np.where(np.isfinite(measure), measure, np.nanmin(measure))
    order = np.argsort(finite)
    closed, middle = order[len(order) // 10], order[len(order) // 2]
    wide = open_frames[int(np.argmax(finite[open_frames]))] if open_frames else order[-1]
    tiles = [
        face(still),
        face(frames[closed]),
        face(frames[middle]),
        face(frames[wide]),
        cv2.resize(frames[wide], (300, 300), interpolation=cv2.INTER_AREA),
    ]
    for tile, text in zip(
        tiles, ("still", f"closed {closed}", f"mid {middle}", f"open {wide}", "open, whole")
    ):
        cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    sheet = np.hstack(tiles)
    cv2.putText(sheet, label, (6, 292), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 255), 2, cv2.LINE_AA)
    cv2.imwrite(str(path), sheet)


def run_picture(picture: Path, work: Path, sheets: Path | None) -> Row:
    key = picture.stem.replace("liveportrait_", "")
    folder = work / key
    mouth = eyes = width = opening = None
    if key in POINTED:
        cells, pointed = pointed_cells(picture, POINTED[key])
        mouth, eyes, width, opening = pointed.mouth, pointed.eyes, pointed.mouth_width, pointed.open_mouth
        log.info("%s: pointed at %s", key, cells)
    started = time.perf_counter()
    made = make_character(
        picture,
        folder,
        character_id=f"p-{key}",
        name=key,
        language="en",
        voice=VoiceSettings(language="en", voice="en-us+f3"),
        mouth=mouth,
        eyes=eyes,
        mouth_width=width,
        open_mouth=opening,
        size=SIZE,
    )
    row = Row(name=key, path=made.face, seconds=time.perf_counter() - started)
    video = work / f"{key}.mp4"
    character = load_character(folder)
    # sentence by sentence, with a storyteller's pause between them: pauses long enough to judge
    # whether the mouth closes (eSpeak's own sentence pause leaves a frame or two to look at)
    speech = concatenate(speak_sentences(TEXT, character.voice_for()), gap_s=PAUSE_S)
    render(ensure_library(character), write_wav(work / f"{key}.wav", speech.audio, speech.sample_rate), video)
    frames = [frame.copy() for frame in iter_frames(video, SIZE, feat.FPS)]
    audio = read_audio(video, ANALYSIS_SAMPLE_RATE)
    loudness = feat.frame_levels_db(audio, ANALYSIS_SAMPLE_RATE, len(frames))
    info = check_picture(picture)
    rig = puppet_rig(info, mouth=mouth, eyes=eyes, mouth_width=width, open_mouth=opening)
    puppet = Puppet(read_picture(picture), rig, SIZE)
    still = puppet.frame(synthetic.FaceParams())
    if made.face == "landmarks":
        measure, open_frames = measure_landmarks(row, still, frames, loudness)
    else:
        measure, open_frames = measure_pixels(row, puppet, still, frames, loudness)
    if sheets is not None:
        write_sheet(
            sheets / f"{key}.png",
            still,
            frames,
            measure,
            open_frames,
            puppet,
            f"{key} {row.path}: r {row.r:.2f} centre {row.centre:.3f} lip {row.lip:.2f} closed "
            f"{row.closed:.2f}",
        )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated picture keys (s10,s33)")
    parser.add_argument("--sheets", type=Path, help="write a contact sheet per character here")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not PICTURES.is_dir():
        print(f"skipped: {PICTURES} is absent")
        return 0
    if not landmarks.available():
        print("skipped: the landmark model is not installed (pip install --no-deps mediapipe==0.10.21)")
        return 0
    pictures = sorted(PICTURES.glob("*.jpg"), key=lambda p: int(p.stem.rsplit("s", 1)[-1]))
    if args.only:
        wanted = set(args.only.split(","))
        pictures = [p for p in pictures if p.stem.replace("liveportrait_", "") in wanted]
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pictures-") as work:
        for picture in pictures:
            rows.append(run_picture(picture, Path(work), args.sheets))
            log.info("%s", rows[-1])
    print("\n| picture | path | s | face | r | centre | lip | closed | all met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.name} | {row.path} | {row.seconds:.1f} | {row.face:.3f} | {row.r:.2f} | "
            f"{row.centre:.3f} | "
            f"{row.lip:.2f} | {row.closed:.2f} | {'yes' if row.passed() else 'NO'} |"
        )
    print(
        f"targets: face >= {TARGETS['face']}, r >= {TARGETS['r']}, centre <= {TARGETS['centre']}, "
        f"lip <= {TARGETS['lip']}, closed >= {TARGETS['closed']}, s <= {TARGETS['s']} (animals: pixels, no "
        "face/lip)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
