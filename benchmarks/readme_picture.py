"""The README's picture: the fox saying a line, as a contact sheet of consecutive frames.

    python benchmarks/readme_picture.py          # writes docs/fox-talking.png

Made by the project's own code (``say`` on the built-in fox), so it shows what a user gets.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from engine.characters import Catalogue, ensure_library  # noqa: E402
from engine.media import iter_frames  # noqa: E402
from engine.say import say  # noqa: E402

LINE = "Hello, little one! Shall I tell you a story?"
TILE = 176
COLUMNS, ROWS = 6, 2
STEP = 3  # every third frame: 8 fps, enough to see the mouth move


def main() -> int:
    fox = Catalogue().get("fox")
    ensure_library(fox)
    with tempfile.TemporaryDirectory() as work:
        video = Path(work) / "fox.mp4"
        say(fox, LINE, video)
        frames = [frame.copy() for frame in iter_frames(video, 512, 25)]
    start = 10  # past the first breath
    chosen = frames[start : start + STEP * COLUMNS * ROWS : STEP]
    tiles = [cv2.resize(frame, (TILE, TILE), interpolation=cv2.INTER_AREA) for frame in chosen]
    rows = [np.hstack(tiles[r * COLUMNS : (r + 1) * COLUMNS]) for r in range(ROWS)]
    out = ROOT / "docs" / "fox-talking.png"
    out.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{out}: {len(chosen)} frames, every {STEP}th, of the fox saying {LINE!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
