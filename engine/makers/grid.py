"""Pointing at a mouth in a chat: the picture with a labelled grid, and the cells as the answer.

When no model finds a face (animals, many drawings), someone has to say where the mouth and the
eyes are. In a chat nobody can click on a picture, and pixel coordinates mean nothing on a phone;
naming cells of a grid drawn over the picture does: columns are letters, rows are numbers, like a
chess board. The answer is four cells, ``left mouth corner, right mouth corner, left eye, right
eye`` (``"E9 H9 D5 I5"``), and a cell stands for its centre. A mouth open in the picture (a
panting dog) takes two more: the middle of the upper lip's edge, then of the lower lip's
(``"E9 H9 D5 I5 G9 G10"``), so the puppet moves that mouth instead of painting one over it.
Cells are square, 1/16 of the picture's long side; that is coarse for a small face in a big
picture (a tilt of a cell between the eyes turns the whole mouth), so the same question is asked
again on a closer look: the region around those cells, with a grid of its own
(:meth:`Grid.around`), and once more (:func:`next_look`) while the eyes are fewer than
:data:`PRECISE_EYE_CELLS` cells apart, three looks at most. The last answer puts each point
within about a fifteenth of the eye distance, whatever the picture's size.

:func:`draw_grid` makes the picture to send; :func:`parse_cells` checks an answer (which may be
anything a user types: it is refused with a one-line reason unless it names four (or six)
distinct cells on the grid that make a face).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from .face_rig import open_mouth_depths

CELLS_ON_LONG_SIDE = 16
CLOSER_CELLS = 16
"""Cells across a closer look."""
PRECISE_EYE_CELLS = 6.0
"""Eyes this many cells apart on a closer look are pointed at precisely enough: no further look."""
MAX_LOOKS = 3
"""Answers asked for at most: the whole picture, then up to two closer looks."""
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CELL = re.compile(r"([A-Za-z])\s*(\d{1,2})")
_MAX_ANSWER = 80  # characters: six cells and some spaces or commas
_PREVIEW_SIDE = 1024  # the grid picture's long side (without its margin): sharp on a phone, small to send


@dataclass(frozen=True)
class Grid:
    """A grid over a ``width`` x ``height`` region of a picture whose top-left corner is at
    ``(x0, y0)``: ``columns`` x ``rows`` square cells of ``cell`` picture pixels (the last column
    and row may be cut by the region's edge)."""

    width: int
    height: int
    columns: int
    rows: int
    cell: float
    x0: int = 0
    y0: int = 0

    @classmethod
    def over(cls, width: int, height: int, cells: int = CELLS_ON_LONG_SIDE) -> Grid:
        """The whole picture."""
        cell = max(width, height) / cells
        return cls(width, height, math.ceil(width / cell - 1e-9), math.ceil(height / cell - 1e-9), cell)

    @classmethod
    def around(
        cls,
        pointed: PointedFace,
        width: int,
        height: int,
        cells: int = CLOSER_CELLS,
        *,
        coarse: Grid | None = None,
    ) -> Grid:
        """A closer look: a square around a face pointed at once (its corners and eyes), half as
        big again, and big enough that the points themselves, each only known to within its cell
        of the ``coarse`` grid it was pointed on, lie inside it with half a cell to spare; inside
        the picture."""
        points = np.array([pointed.mouth, *pointed.eyes, *(pointed.open_mouth or ())], np.float64)
        half_width = pointed.mouth_width / 2
        points = np.vstack(
            [
                points,
                (pointed.mouth[0] - half_width, pointed.mouth[1]),
                (pointed.mouth[0] + half_width, pointed.mouth[1]),
            ]
        )
        low, high = points.min(axis=0), points.max(axis=0)
        extent = float((high - low).max())
        uncertain = 2 * coarse.cell if coarse is not None else 32.0
        side = min(max(extent * 1.5, extent + uncertain, 32.0), float(min(width, height)))
        centre = (low + high) / 2
        x0 = int(round(min(max(centre[0] - side / 2, 0), width - side)))
        y0 = int(round(min(max(centre[1] - side / 2, 0), height - side)))
        side_px = int(round(side))
        return cls(side_px, side_px, cells, cells, side_px / cells, x0, y0)

    def name(self, column: int, row: int) -> str:
        return f"{_LETTERS[column]}{row + 1}"

    def cell_at(self, x: float, y: float) -> str:
        """The name of the cell a picture point lies in (clamped to the grid)."""
        column = min(max(int((x - self.x0) / self.cell), 0), self.columns - 1)
        row = min(max(int((y - self.y0) / self.cell), 0), self.rows - 1)
        return self.name(column, row)

    def centre(self, column: int, row: int) -> tuple[float, float]:
        """The centre of a cell in picture pixels (inside the region for a cut edge cell)."""
        x = min((column + 0.5) * self.cell, (column * self.cell + self.width) / 2)
        y = min((row + 0.5) * self.cell, (row * self.cell + self.height) / 2)
        return self.x0 + x, self.y0 + y

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Grid:
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)})


def draw_grid(image: np.ndarray, grid: Grid | None = None) -> tuple[np.ndarray, Grid]:
    """The picture with the grid drawn over it, at 1024 px on its long side, and the grid.

    Like a chess board: thin light lines with a dark edge (they show on any picture), column
    letters along the top and bottom and row numbers down both sides, in a white margin, so the
    picture itself stays visible and nobody has to count cells on a phone."""
    grid = grid or Grid.over(image.shape[1], image.shape[0])
    image = image[grid.y0 : grid.y0 + grid.height, grid.x0 : grid.x0 + grid.width]
    height, width = image.shape[:2]
    scale = _PREVIEW_SIDE / max(width, height)
    shown = cv2.resize(
        image,
        (round(width * scale), round(height * scale)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
    )
    step = grid.cell * scale
    margin = round(0.8 * step)
    lines = shown.copy()
    for column in range(1, grid.columns):
        x = round(column * step)
        cv2.line(lines, (x, 0), (x, shown.shape[0]), (0, 0, 0), 3, cv2.LINE_AA)
        cv2.line(lines, (x, 0), (x, shown.shape[0]), (255, 255, 255), 1, cv2.LINE_AA)
    for row in range(1, grid.rows):
        y = round(row * step)
        cv2.line(lines, (0, y), (shown.shape[1], y), (0, 0, 0), 3, cv2.LINE_AA)
        cv2.line(lines, (0, y), (shown.shape[1], y), (255, 255, 255), 1, cv2.LINE_AA)
    shown = cv2.addWeighted(lines, 0.45, shown, 0.55, 0)
    board = cv2.copyMakeBorder(
        shown, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=(255, 255, 255)
    )
    font, font_scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, step / 70, max(1, round(step / 32))

    def label(text: str, cx: float, cy: float) -> None:
        (w, h), _ = cv2.getTextSize(text, font, font_scale, thickness)
        cv2.putText(
            board,
            text,
            (round(cx - w / 2), round(cy + h / 2)),
            font,
            font_scale,
            (20, 20, 20),
            thickness,
            cv2.LINE_AA,
        )

    for column in range(grid.columns):
        cx = margin + min((column + 0.5) * step, (column * step + shown.shape[1]) / 2)
        label(grid.name(column, 0)[0], cx, margin / 2)
        label(grid.name(column, 0)[0], cx, board.shape[0] - margin / 2)
    for row in range(grid.rows):
        cy = margin + min((row + 0.5) * step, (row * step + shown.shape[0]) / 2)
        label(str(row + 1), margin / 2, cy)
        label(str(row + 1), board.shape[1] - margin / 2, cy)
    return board, grid


def next_look(pointed: PointedFace, grid: Grid, width: int, height: int, *, looks: int) -> Grid | None:
    """The grid to ask on next, after ``looks`` answers (the last one ``pointed``, on ``grid``),
    over a ``width`` x ``height`` picture; None when that answer is precise enough to use.

    The whole picture's answer always gets a closer look; a closer look gets another while its
    eyes are fewer than :data:`PRECISE_EYE_CELLS` cells apart (a small face in a big picture),
    up to :data:`MAX_LOOKS` answers."""
    if looks >= MAX_LOOKS:
        return None
    if looks >= 2 and math.dist(*pointed.eyes) >= PRECISE_EYE_CELLS * grid.cell:
        return None
    return Grid.around(pointed, width, height, coarse=grid)


@dataclass(frozen=True)
class PointedFace:
    """What the admin pointed at, in picture pixels.

    ``open_mouth``: the middle of the upper and of the lower lip's edge, when the mouth is open in
    the picture; None for a closed mouth."""

    mouth: tuple[float, float]
    mouth_width: float
    eyes: tuple[tuple[float, float], tuple[float, float]]
    open_mouth: tuple[tuple[float, float], tuple[float, float]] | None = None


def parse_cells(text: str | None, grid: Grid, *, rough: bool = False) -> PointedFace:
    """Four cells, mouth corners then eyes, as the mouth centre and width and the eye centres;
    or six, the last two the top and bottom of a mouth open in the picture.

    ``rough``: the first, whole-picture answer, which only says where to look closer. On a
    small face two points may share a cell, or the mouth a row with the eyes, so only the cells
    themselves are checked.

    Raises
    ------
    InputError
        Not four or six cells, a cell off the grid, the same cell twice, or cells that make no
        face (the mouth not below the eyes, the corners on top of each other, an open mouth's
        top below its bottom or away from the mouth)."""
    text = (text or "").strip()
    if not text or len(text) > _MAX_ANSWER:
        raise InputError("send four cells: the two mouth corners, then the two eyes, for example E9 H9 D5 I5")
    leftover = _CELL.sub(" ", text)
    if leftover.replace(",", " ").replace(";", " ").strip():
        raise InputError(
            "send only cell names like E9, four of them: the two mouth corners, then the two eyes"
        )
    cells = [(match.group(1).upper(), int(match.group(2))) for match in _CELL.finditer(text)]
    if len(cells) not in (4, 6):
        raise InputError(
            f"that is {len(cells)} cell(s); send four: the two mouth corners, then the two eyes "
            "(and two more for a mouth open in the picture: the top and bottom of the opening)"
        )
    points = []
    last_column, last_row = _LETTERS[grid.columns - 1], grid.rows
    for letter, number in cells:
        column, row = _LETTERS.find(letter), number - 1
        if not (0 <= column < grid.columns and 0 <= row < grid.rows):
            raise InputError(
                f"{letter}{number} is not on the grid: columns A-{last_column}, rows 1-{last_row}"
            )
        points.append((column, row))
    c1, c2, e1, e2, *opening = (grid.centre(column, row) for column, row in points)
    mouth = ((c1[0] + c2[0]) / 2, (c1[1] + c2[1]) / 2)
    open_mouth = (opening[0], opening[1]) if opening else None
    if rough:
        return PointedFace(mouth=mouth, mouth_width=math.dist(c1, c2), eyes=(e1, e2), open_mouth=open_mouth)
    if len(set(points)) != len(points):
        raise InputError(f"each of the {len(points)} cells must be a different one")
    eye_line = max(e1[1], e2[1])
    if mouth[1] <= eye_line:
        raise InputError("the mouth corners must be below the eyes (first the mouth, then the eyes)")
    width = math.dist(c1, c2)
    eye_distance = math.dist(e1, e2)
    if not 0.2 * eye_distance <= width <= 3.0 * eye_distance:
        raise InputError("those mouth corners are too close together or too far apart for those eyes")
    if open_mouth is not None:
        top, bottom = open_mouth
        if not top[1] < bottom[1]:
            raise InputError("the open mouth's top must be above its bottom (the upper lip first)")
        open_mouth_depths(open_mouth, centre=mouth, width=width, across=(1.0, 0.0))
    return PointedFace(mouth=mouth, mouth_width=width, eyes=(e1, e2), open_mouth=open_mouth)
