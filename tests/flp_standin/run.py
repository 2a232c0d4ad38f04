"""A stand-in for FasterLivePortrait's ``run.py``: its arguments, its outputs, no GPU, no weights.

The contracts copied (from reading warmshao/FasterLivePortrait ``run.py``, not its code):

* ``python run.py --src_image PIC --dri_video VIDEO --cfg CFG [--paste_back] [--animal] [--realtime]``
  run in the checkout; unknown arguments are ignored (``parse_known_args``); the config must exist.
* no face in the picture: prints ``no face in PIC! exit!`` and exits 1.
* writes ``./results/<YYYY-mm-dd-HHMMSS>/`` with ``<pic>-<video>-crop.mp4`` (1024 x 512: the driving
  frame resized to 256 and back to 512 on the LEFT, the animated 512 x 512 crop on the RIGHT) and
  ``<pic>-<video>-org.mp4`` (the animation pasted back at the picture's size), both mp4v through
  ``cv2.VideoWriter`` at ``int(CAP_PROP_FPS)``; driving frames with "no face" are skipped with
  ``no face in driving frame:N`` (N counted from 1); when the driving video has sound, ffmpeg adds
  ``...-crop-audio.mp4`` and ``...-org-audio.mp4`` (libx264 + aac, ``-shortest``); last the motion
  template ``<video>.pkl`` (n_frames, output_fps, motion, c_eyes_lst, c_lip_lst).

The "animation" is the CPU puppet (:mod:`engine.makers.puppet`) posed from the driving frames:
mouth opening and width measured with :func:`engine.synthetic.measure_mouth` (so a driving video
of the synthetic rig makes the lip sync measurable end to end), head shift by phase correlation
against the first frame. The open mouth is painted in the rig's interior red.

Environment (test knobs, not FLP's):

``FLP_STANDIN_DROP``
    Driving frames (0-based) to skip as "no face", e.g. ``0-2,50`` (default none). Real FLP only
    loses frames before its first detection; the stand-in can lose any, to test the alignment.
``FLP_STANDIN_NO_FACE``
    ``1``: behave as if the picture had no face.
``FLP_STANDIN_LANDMARKS``
    ``mx,my,mouth_width,e1x,e1y,e2x,e2y`` as shares of the picture's width/height (default: the
    rig's ``test`` face).
``FLP_STANDIN_RECORD``
    A file to append one JSON line per run to: the arguments, the inputs' names, whether the
    driving video had sound (what the tests check the adapter sends).

As FLP does, ``flag_crop_driving_video: true`` in the config crops the driving frame around its
face before the left half of the crop video is made (here: the centre 70 %), so that half is no
longer the whole driving frame.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine import synthetic  # noqa: E402
from engine.makers.picture import Landmarks  # noqa: E402
from engine.makers.puppet import Puppet  # noqa: E402
from engine.media import ffmpeg_exe, probe  # noqa: E402

log = logging.getLogger("flp_standin")

RIG_LANDMARKS = (256 / 512, 368 / 512, 92 / 512, 196 / 512, 228 / 512, 316 / 512, 228 / 512)


def dropped_frames() -> set[int]:
    """The driving frames to treat as "no face", from ``FLP_STANDIN_DROP``."""
    spec = os.environ.get("FLP_STANDIN_DROP", "").strip()
    frames: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        first, _, last = part.partition("-")
        frames.update(range(int(first), int(last or first) + 1))
    return frames


def _landmarks(width: int, height: int) -> Landmarks:
    spec = os.environ.get("FLP_STANDIN_LANDMARKS")
    values = tuple(float(v) for v in spec.split(",")) if spec else RIG_LANDMARKS
    mx, my, mw, e1x, e1y, e2x, e2y = values
    return Landmarks(
        (mx * width, my * height), mw * width, ((e1x * width, e1y * height), (e2x * width, e2y * height))
    )


def source_has_face() -> bool:
    return os.environ.get("FLP_STANDIN_NO_FACE", "") != "1"


def _video_has_audio(path: str) -> bool:
    try:
        return probe(path).has_audio
    except Exception:  # FLP's helper answers False for anything it cannot read
        return False


def record(**facts) -> None:
    path = os.environ.get("FLP_STANDIN_RECORD")
    if path:
        import json

        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(facts) + "\n")


def crops_driving_video(cfg: str) -> bool:
    """``infer_params.flag_crop_driving_video`` of an FLP config (a YAML file)."""
    try:
        text = open(cfg, encoding="utf-8").read()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flag_crop_driving_video":
            return value.strip().lower() in ("true", "yes", "on")
    return False


def run_with_video(
    src_image: str, dri_video: str, save_dir: str, say=print, crop_driving: bool = False
) -> tuple[str, str] | None:
    """Animate ``src_image`` with ``dri_video`` into ``save_dir``; None when the picture has no face."""
    picture = cv2.imread(src_image)
    if picture is None or not source_has_face():
        say(f"no face in {src_image}! exit!")
        return None
    h, w = picture.shape[:2]
    puppet = Puppet(picture, _landmarks(w, h), 512, gap_bgr=synthetic.MOUTH_INTERIOR_BGR)
    capture = cv2.VideoCapture(dri_video)
    fps = int(capture.get(cv2.CAP_PROP_FPS))
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    stem = f"{os.path.basename(src_image)}-{os.path.basename(dri_video)}"
    crop_path = os.path.join(save_dir, f"{stem}-crop.mp4")
    org_path = os.path.join(save_dir, f"{stem}-org.mp4")
    crop_out = cv2.VideoWriter(crop_path, fourcc, fps, (512 * 2, 512))
    org_out = cv2.VideoWriter(org_path, fourcc, fps, (w, h))
    drop = dropped_frames()
    first_grey = None
    motion, eyes, lips = [], [], []
    frame_ind = 0
    while capture.isOpened():
        ok, frame = capture.read()
        if not ok:
            break
        index = frame_ind
        frame_ind += 1
        if index in drop:
            say(f"no face in driving frame:{frame_ind}")
            continue
        opening, width = synthetic.measure_mouth(frame)
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if first_grey is None:
            first_grey = grey
        (dx, dy), _ = cv2.phaseCorrelate(first_grey, grey)
        unit = 512.0 / frame.shape[1]
        animated = puppet.frame(
            synthetic.FaceParams(opening=opening, width=width, head_dx=dx * unit, head_dy=dy * unit)
        )
        if crop_driving:  # FLP crops around the driving face: the left half is no longer the whole frame
            fh, fw = frame.shape[:2]
            side = int(0.7 * min(fh, fw))
            frame = frame[(fh - side) // 2 : (fh + side) // 2, (fw - side) // 2 : (fw + side) // 2]
        driving_crop = cv2.resize(cv2.resize(frame, (256, 256)), (512, 512))
        crop_out.write(np.concatenate([driving_crop, animated], axis=1))
        org_out.write(cv2.resize(animated, (w, h), interpolation=cv2.INTER_AREA))
        motion.append({"opening": opening, "width": width, "t": (dx, dy)})
        eyes.append(np.zeros((1, 2), np.float32))
        lips.append(np.array([[opening]], np.float32))
    capture.release()
    crop_out.release()
    org_out.release()
    if _video_has_audio(dri_video):
        for path in (crop_path, org_path):
            with_audio = os.path.splitext(path)[0] + "-audio.mp4"
            subprocess.call(
                [
                    ffmpeg_exe(),
                    "-loglevel",
                    "error",
                    "-i",
                    path,
                    "-i",
                    dri_video,
                    "-b:v",
                    "10M",
                    "-c:v",
                    "libx264",
                    "-map",
                    "0:v",
                    "-map",
                    "1:a",
                    "-c:a",
                    "aac",
                    "-pix_fmt",
                    "yuv420p",
                    with_audio,
                    "-y",
                    "-shortest",
                ]
            )
            say(with_audio)
    else:
        say(crop_path)
        say(org_path)
    template = {
        "n_frames": len(motion),
        "output_fps": fps,
        "motion": motion,
        "c_eyes_lst": eyes,
        "c_lip_lst": lips,
    }
    with open(os.path.join(save_dir, f"{os.path.basename(dri_video)}.pkl"), "wb") as handle:
        pickle.dump(template, handle)
    return crop_path, org_path


def main() -> int:
    parser = argparse.ArgumentParser(description="Faster Live Portrait Pipeline (stand-in)")
    parser.add_argument("--src_image", required=False, type=str, default="assets/examples/source/s12.jpg")
    parser.add_argument("--dri_video", required=False, type=str, default="assets/examples/driving/d14.mp4")
    parser.add_argument("--cfg", required=False, type=str, default="configs/onnx_infer.yaml")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--animal", action="store_true")
    parser.add_argument("--paste_back", action="store_true", default=False)
    args, _unknown = parser.parse_known_args()
    if not os.path.exists(args.cfg):  # OmegaConf.load would fail the same way
        print(f"FileNotFoundError: {args.cfg}", file=sys.stderr)
        return 1
    if not args.dri_video or not os.path.exists(args.dri_video):
        print("no camera found! exit!")
        return 1
    save_dir = f"./results/{datetime.datetime.now().strftime('%Y-%m-%d-%H%M%S')}"
    os.makedirs(save_dir, exist_ok=True)
    record(argv=sys.argv[1:], driving_has_audio=_video_has_audio(args.dri_video), paste_back=args.paste_back)
    done = run_with_video(
        args.src_image, args.dri_video, save_dir, crop_driving=crops_driving_video(args.cfg)
    )
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
