"""Characters from one picture: the face rig, the lip-parting warp, the pointing grid, and
``gramophone characters make``.

The faces are generated (the synthetic rig's test face, whose lips, eyes and interior colour are
known), so every figure here has a known answer; real portraits are the benchmark's
(``benchmarks/pictures.py``).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from engine import landmarks, synthetic
from engine.characters import Catalogue
from engine.cli import main as cli
from engine.errors import InputError
from engine.makers.face_rig import LINE_POINTS, find_rig, rig_from_points
from engine.makers.grid import Grid, draw_grid, next_look, parse_cells
from engine.makers.puppet import GAP_WIDTH_PER_EYES, OPEN_GAP, UPPER_SHARE, Puppet
from engine.media import probe

SIDE = 512
MOUTH, MOUTH_WIDTH = (256.0, 368.0), 92.0  # the rig's lips meet here at 512 px
EYES = ((196.0, 228.0), (316.0, 228.0))


def rig_face(**pose: float) -> np.ndarray:
    return synthetic.draw_face(synthetic.FaceParams(**pose), SIDE)


def test_the_warp_moves_the_lips_where_asked_and_leaves_the_rest_of_the_picture_alone():
    puppet = Puppet(
        rig_face(), rig_from_points(MOUTH, MOUTH_WIDTH, EYES), SIDE, gap_bgr=synthetic.MOUTH_INTERIOR_BGR
    )
    warp = puppet._warp
    targets = warp.targets(1.0, 0.5)
    map_x, map_y = warp.maps(targets)
    x0, x1, y0, y1 = warp.roi

    def source_of(point: np.ndarray) -> np.ndarray:
        column, row = int(round(point[0])) - x0, int(round(point[1])) - y0
        return np.array([map_x[row, column], map_y[row, column]])

    middle = LINE_POINTS // 2
    gap = warp.full_gap
    upper_inner = targets[warp.slices["upper_inner"]][middle]
    lower_inner = targets[warp.slices["lower_inner"]][middle - 1]  # the lower line has no corners
    meeting = warp.meeting[middle]
    # the lips open by the gap asked for, the upper lip taking its share, along the face's down axis
    assert (lower_inner - upper_inner) @ warp.down == pytest.approx(gap, rel=0.02)
    assert (meeting - upper_inner) @ warp.down == pytest.approx(UPPER_SHARE * gap, rel=0.02)
    # ... and each moved lip point shows the picture's own lip point (smoothing blurs by a pixel or two)
    lower_outer = warp.slices["lower_outer"]
    for kind in ("upper_outer", "lower_outer", "row"):
        block = warp.slices[kind]
        for source, target in zip(warp.source[block], targets[block]):
            if np.linalg.norm(target - source) > 3:
                assert np.linalg.norm(source_of(target) - source) < 2.5, (kind, source, target)
    assert np.all(targets[lower_outer][:, 1] > warp.source[lower_outer][:, 1] + 3)  # the lower lip dropped
    # points that do not move with the jaw stay where they are, and so does all outside the region
    for still in warp.source[len(targets) - 8 :]:  # the region's frame
        inside = np.clip(still, (x0, y0), (x1 - 1, y1 - 1))
        assert np.linalg.norm(source_of(inside) - inside) < 1.0
    closed, opened = puppet.frame(synthetic.FaceParams()), puppet.frame(synthetic.FaceParams(opening=1.0))
    changed = np.any(closed != opened, axis=2)
    rows, columns = np.nonzero(changed)
    pad = puppet.pad
    assert (
        rows.min() >= y0 - pad
        and rows.max() < y1 - pad
        and columns.min() >= x0 - pad
        and columns.max() < x1 - pad
    )
    assert changed[: int(EYES[0][1]) + 20].sum() == 0  # nothing above the nose moved
    # the open mouth is the interior colour between the inner lips, and nowhere else
    interior = np.all(np.abs(opened.astype(int) - synthetic.MOUTH_INTERIOR_BGR) < 8, axis=2)
    ys, xs = np.nonzero(interior)
    assert abs(np.median(xs) + pad - meeting[0]) < 3
    assert upper_inner[1] - 2 <= ys.min() + pad and ys.max() + pad <= lower_inner[1] + 2
    assert synthetic.measure_mouth(opened)[0] > 0.5 and synthetic.measure_mouth(closed)[0] < 0.02


def test_pauses_close_a_mouth_that_was_open_in_the_picture():
    picture = rig_face(opening=0.6)  # the lips apart, the interior showing
    assert synthetic.measure_mouth(picture)[0] > 0.5
    interior = np.all(picture == np.array(synthetic.MOUTH_INTERIOR_BGR), axis=2)
    columns = np.flatnonzero(interior.any(axis=0))
    xs = np.linspace(columns[0] - 1, columns[-1] + 1, LINE_POINTS)
    tops = [
        np.flatnonzero(interior[:, int(x)]).min() - 2.0 if interior[:, int(x)].any() else MOUTH[1] for x in xs
    ]
    bottoms = [
        np.flatnonzero(interior[:, int(x)]).max() + 2.0 if interior[:, int(x)].any() else MOUTH[1] for x in xs
    ]
    tops[0] = tops[-1] = bottoms[0] = bottoms[-1] = (tops[1] + bottoms[1]) / 2  # the corners
    upper_inner, lower_inner = np.column_stack([xs, tops]), np.column_stack([xs, bottoms])
    lip = np.outer(
        np.sqrt(np.clip(1 - np.linspace(-1, 1, LINE_POINTS) ** 2, 0, 1)) * 6, (0, 1)
    )  # thin drawn lips
    rig = replace(
        rig_from_points(MOUTH, MOUTH_WIDTH, EYES),
        upper_inner=upper_inner,
        lower_inner=lower_inner,
        upper_outer=upper_inner - lip,
        lower_outer=lower_inner + lip,
    )
    puppet = Puppet(picture, rig, SIDE, gap_bgr=synthetic.MOUTH_INTERIOR_BGR)
    assert synthetic.measure_mouth(puppet.frame(synthetic.FaceParams()))[0] < 0.05  # a pause: shut
    assert synthetic.measure_mouth(puppet.frame(synthetic.FaceParams(opening=0.8)))[0] > 0.4
    blinking = puppet.frame(synthetic.FaceParams(blink=1.0))
    assert synthetic.measure_mouth(blinking)[0] < 0.05


def test_a_mouth_pointed_at_as_open_closes_in_pauses_and_opens_from_there():
    """The manual path's open mouth (a panting dog): two points, the lips' edges at the middle."""
    picture = rig_face(opening=0.6)
    interior = np.all(picture == np.array(synthetic.MOUTH_INTERIOR_BGR), axis=2)
    rows = np.flatnonzero(interior[:, int(MOUTH[0])])
    top, bottom = (MOUTH[0], rows.min() - 1.0), (MOUTH[0], rows.max() + 1.0)
    rig = rig_from_points(MOUTH, MOUTH_WIDTH, EYES, open_mouth=(bottom, top))  # either order
    middle = LINE_POINTS // 2
    assert rig.upper_inner[middle][1] == pytest.approx(top[1]) and rig.lower_inner[middle][
        1
    ] == pytest.approx(bottom[1])
    assert rig.mouth_centre[1] == pytest.approx((top[1] + bottom[1]) / 2)
    puppet = Puppet(picture, rig, SIDE, gap_bgr=synthetic.MOUTH_INTERIOR_BGR)
    assert synthetic.measure_mouth(puppet.frame(synthetic.FaceParams()))[0] < 0.05  # a pause: shut
    assert synthetic.measure_mouth(puppet.frame(synthetic.FaceParams(opening=0.8)))[0] > 0.4
    # the closed rig on the same picture leaves the picture's own mouth open in pauses: the
    # reason for pointing at it
    closed = Puppet(
        picture, rig_from_points(MOUTH, MOUTH_WIDTH, EYES), SIDE, gap_bgr=synthetic.MOUTH_INTERIOR_BGR
    )
    assert synthetic.measure_mouth(closed.frame(synthetic.FaceParams()))[0] > 0.3
    with pytest.raises(InputError, match="open mouth"):
        rig_from_points(MOUTH, MOUTH_WIDTH, EYES, open_mouth=(top, (MOUTH[0], MOUTH[1] + 3 * MOUTH_WIDTH)))


def test_a_mouth_much_wider_than_a_persons_opens_no_taller_than_a_persons():
    eye_distance = EYES[1][0] - EYES[0][0]
    for width, expected in (
        (MOUTH_WIDTH, MOUTH_WIDTH),
        (1.6 * eye_distance, GAP_WIDTH_PER_EYES * eye_distance),
    ):
        warp = Puppet(rig_face(), rig_from_points(MOUTH, width, EYES), SIDE)._warp
        assert warp.full_gap == pytest.approx(OPEN_GAP * expected)
        targets = warp.targets(1.0, 0.5)
        middle = LINE_POINTS // 2
        upper, lower = (
            targets[warp.slices["upper_inner"]][middle],
            targets[warp.slices["lower_inner"]][middle - 1],
        )
        assert (lower - upper) @ warp.down == pytest.approx(warp.full_gap, rel=0.02)


def test_the_natural_interior_is_dark_with_teeth_and_takes_its_colour_from_the_lips():
    puppet = Puppet(rig_face(), rig_from_points(MOUTH, MOUTH_WIDTH, EYES), SIDE)
    opened = puppet.frame(synthetic.FaceParams(opening=1.0)).astype(np.float32)
    mx, my = (int(v - puppet.pad) for v in puppet.rig.mouth_centre)
    gap = puppet._warp.full_gap
    back = opened[int(my + 0.3 * gap), mx - 4 : mx + 5].mean(axis=0)
    teeth = opened[int(my - UPPER_SHARE * gap + 3), mx - 4 : mx + 5].mean(axis=0)
    assert back.mean() < 90 and teeth.mean() > back.mean() + 60, (back, teeth)
    lip = puppet.lip_bgr
    assert np.argmax(back) == np.argmax(lip)  # tinted by the lips: the rig's are magenta-red


@pytest.mark.skipif(
    not landmarks.available(), reason="no face landmark model (pip install --no-deps mediapipe==0.10.21)"
)
def test_the_landmark_rig_finds_the_rigs_lips_and_eyes():
    rig = find_rig(rig_face())
    assert rig is not None and rig.method == "landmarks"
    assert np.linalg.norm(rig.mouth_centre - MOUTH) < 12
    assert np.linalg.norm(np.sort(rig.eye_centres[:, 0]) - (196, 316)) < 12
    assert rig.chin[1] > MOUTH[1] + 40 and 60 < rig.mouth_width < 130
    assert find_rig(np.full((SIDE, SIDE, 3), 128, np.uint8)) is None


def test_rigs_that_make_no_face_are_refused():
    with pytest.raises(InputError, match="below the eyes"):
        rig_from_points((256.0, 200.0), 90.0, EYES).check()
    with pytest.raises(InputError, match="too small or too wide"):
        rig_from_points(MOUTH, 900.0, EYES).check()
    with pytest.raises(InputError, match="apart"):
        rig_from_points(MOUTH, 90.0, ((200.0, 228.0), (201.0, 228.0)))


# ---- the pointing grid ----------------------------------------------------------------------


def test_the_grid_is_drawn_with_its_labels_and_its_cells_parse():
    grid = Grid.over(1000, 600)
    assert (grid.columns, grid.rows, grid.cell) == (16, 10, 62.5)
    assert grid.name(0, 0) == "A1" and grid.name(15, 9) == "P10"
    board, same = draw_grid(np.full((600, 1000, 3), 90, np.uint8))
    assert same == grid and board.shape[1] > 1024 and board.shape[0] > 600  # 1024 px wide, plus margins
    assert board[0, 0].tolist() == [255, 255, 255]  # the labels' margin
    pointed = parse_cells("e6, h6; d3 i3", grid)
    assert pointed.mouth == (6.0 * 62.5, 5.5 * 62.5) and pointed.mouth_width == 3 * 62.5
    assert pointed.eyes == ((3.5 * 62.5, 2.5 * 62.5), (8.5 * 62.5, 2.5 * 62.5))
    # an edge cell cut by the picture: its centre is inside the picture
    assert Grid.over(1000, 610).centre(0, 9)[1] < 610
    # the closer look: a square around what was pointed at, inside the picture, with cells of its own
    closer = next_look(pointed, grid, 1000, 600, looks=1)
    assert closer == Grid.around(pointed, 1000, 600, coarse=grid)
    assert (closer.columns, closer.rows) == (16, 16) and closer.x0 >= 0 and closer.y0 >= 0
    assert closer.x0 + closer.width <= 1000 and closer.y0 + closer.height <= 600
    assert closer.cell < grid.cell
    # a small face: points share cells on the first grid; the closer look still holds wherever in
    # its cell each point really is
    tiny = parse_cells("E6 E6 D3 D3", grid, rough=True)
    small = Grid.around(tiny, 1000, 600, coarse=grid)
    assert tiny.mouth_width == 0 and small.cell < grid.cell / 3
    for corner_x, corner_y in (
        (4 * 62.5, 5 * 62.5),
        (5 * 62.5, 6 * 62.5),
        (3 * 62.5, 2 * 62.5),
        (4 * 62.5, 3 * 62.5),
    ):
        assert (
            small.x0 <= corner_x <= small.x0 + small.width and small.y0 <= corner_y <= small.y0 + small.height
        )
    for x, y in (pointed.mouth, *pointed.eyes):
        assert closer.x0 <= x < closer.x0 + closer.width and closer.y0 <= y < closer.y0 + closer.height
    # the second answer is final once its eyes are six cells apart; a third look otherwise (at most)
    assert next_look(parse_cells("E12 L12 C4 N4", closer), closer, 1000, 600, looks=2) is None
    third = next_look(parse_cells("G9 J9 G6 J6", closer), closer, 1000, 600, looks=2)
    assert third is not None and third.cell < closer.cell
    assert next_look(parse_cells("G9 J9 G6 J6", third), third, 1000, 600, looks=3) is None
    finer = parse_cells(
        " ".join(closer.cell_at(x, y) for x, y in [(300, 340), (440, 345), (220, 160), (520, 160)]), closer
    )
    assert abs(finer.mouth[0] - 370) <= closer.cell and abs(finer.mouth[1] - 342.5) <= closer.cell
    assert Grid.from_dict(closer.to_dict()) == closer
    # a mouth open in the picture: two more cells, its top and bottom
    opened = parse_cells("E6 H6 D3 I3 F6 F7", grid)
    assert opened.mouth == pointed.mouth and opened.open_mouth == (
        (5.5 * 62.5, 5.5 * 62.5),
        (5.5 * 62.5, 6.5 * 62.5),
    )
    assert pointed.open_mouth is None
    board, _ = draw_grid(np.full((600, 1000, 3), 90, np.uint8), closer)
    assert board.shape[0] == board.shape[1] > 1024  # the square, at 1024 px, with margins


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("", "send four cells"),
        ("E6 H6 D3", "3 cell"),
        ("E6 H6 D3 I3 J3", "5 cell"),
        ("E6 H6 D3 I3 F7 F5", "top must be above its bottom"),
        ("E6 H6 D3 I3 J5 J7", "between the mouth corners"),
        ("E6 H6 D3 I3 F6 F10", "between the mouth corners"),
        ("E6 H6 D3 I3 F6 F6", "different"),
        ("Q1 H6 D3 I3", "not on the grid"),
        ("E0 H6 D3 I3", "not on the grid"),
        ("E11 H6 D3 I3", "not on the grid"),
        ("E6 E6 D3 I3", "different"),
        ("D3 I3 E6 H6", "below the eyes"),
        ("E6 F6 A3 P3", "too close together"),
        ("E6 H6 D3 I3 <b>", "only cell names"),
        ("E6 H6 D3 I3 " + "E6 " * 30, "send four cells"),
        ("6E 6H 3D 3I", "only cell names"),
    ],
)
def test_forged_or_off_grid_answers_are_refused_in_one_line(answer, reason):
    with pytest.raises(InputError, match=reason) as caught:
        parse_cells(answer, Grid.over(1000, 600))
    assert "\n" not in str(caught.value)


# ---- gramophone characters make -------------------------------------------------------------


def test_characters_make_writes_a_character_say_can_use(tmp_path, monkeypatch, capsys):
    picture = tmp_path / "owl.png"
    cv2.imwrite(str(picture), synthetic.draw_face(synthetic.FaceParams(), 256))
    monkeypatch.setenv("GRAMOPHONE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    owl = ["characters", "make", str(picture), "--name", "Сова Owl", "--mouth", "128,184"]
    owl += ["--eyes", "98,114,158,114", "--size", "128"]
    code = cli(owl)
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("sova-owl: Сова Owl, made on the CPU (puppet, manual)"), out
    folder = tmp_path / "data" / "characters" / "sova-owl"
    assert sorted(p.name for p in folder.iterdir()) == [
        "character.toml",
        "idle.mp4",
        "library.gchar",
        "portrait.png",
        "speech.mp4",
    ]
    assert [p.name for p in folder.parent.iterdir()] == ["sova-owl"]  # no staging folder left behind
    assert Catalogue().get("sova-owl").name == "Сова Owl"  # the default catalogue sees made characters
    assert (
        cli(["say", "Hello there, little one.", "--character", "sova-owl", "-o", str(tmp_path / "hi.mp4")])
        == 0
    )
    assert probe(tmp_path / "hi.mp4").has_audio
    # the same name again gets the next id; bad options are one line and exit 2, leaving nothing
    assert cli([*owl, "--mouth-width", "40", "--open-mouth", "128,181,128,189"]) == 0
    assert (folder.parent / "sova-owl-2" / "character.toml").is_file()
    capsys.readouterr()
    for argv, needle in [
        (["--eyes", "1,2,3"], "--eyes must be 4 numbers"),
        (["--mouth", "a,b"], "--mouth must be 2 numbers"),
        (["--mouth", "128,50", "--eyes", "98,114,158,114"], "below the eyes"),
        (["--name", "   "], "--name must be 1 to 40 characters"),
        (["--open-mouth", "128,181,128,189"], "--open-mouth needs --mouth"),
        (["--mouth", "128,184", "--open-mouth", "128,181,nan,189"], "--open-mouth must be 4 numbers"),
        (["--mouth", "128,184", "--eyes", "98,114,158,114", "--open-mouth", "128,100,128,189"], "open mouth"),
        (["--mouth-width", "40"], "--mouth-width needs --mouth"),
    ]:
        name = [] if "--name" in argv else ["--name", "Bad"]
        assert cli(["characters", "make", str(picture), *name, *argv, "--size", "128"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("gramophone: error: ") and needle in error and "\n" not in error, error
    assert sorted(p.name for p in folder.parent.iterdir()) == ["sova-owl", "sova-owl-2"]
    assert cli(["characters", "make", str(tmp_path / "none.png"), "--name", "X"]) == 2
    assert "the file is missing" in capsys.readouterr().err
