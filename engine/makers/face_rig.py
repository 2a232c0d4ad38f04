"""Where the moving parts of a face are in one picture: lip lines, jaw, eyelids.

The CPU puppet (:mod:`engine.makers.puppet`) parts the lips along the line where they meet and
drops the jaw, so it needs more than a mouth point: the outer and inner lip lines, the lower face
outline and each eye's lids. :class:`FaceRig` holds them, the same shape whichever way they were
found, so the puppet has one code path:

* **landmarks** (:func:`rig_from_mesh`): MediaPipe's 478-point face mesh on the picture, when the
  optional landmark model is installed (:mod:`engine.landmarks`). It finds photographs, paintings
  and 3D cartoon people; it is the only way the upper lip is where the picture's upper lip is.
* **proportions** (:func:`rig_from_points`): from a mouth centre, a mouth width and the two eyes,
  which come from the admin (the manual path, for animals and drawn faces) or from a face box
  (the Haar cascade fallback). The lip lines are drawn as an average closed mouth, or, when the
  admin also pointed at the top and bottom of a mouth open in the picture, through them.

Every point is in picture pixels; :meth:`FaceRig.mapped` carries the rig into the puppet's crop.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

# MediaPipe face-mesh indices ("left" is the image's left). Each lip line runs from the image's
# left corner to its right corner, corners included; the lower lines share their corners.
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# The face outline from the image-left temple down through the chin to the image-right temple.
JAW = (
    127,
    234,
    93,
    132,
    58,
    172,
    136,
    150,
    149,
    176,
    148,
    152,
    377,
    400,
    378,
    379,
    365,
    397,
    288,
    361,
    323,
    454,
    356,
)
# Points that stay put when the jaw drops: nose, brows, eye corners, cheekbones, forehead.
STILL = (
    1,
    2,
    4,
    5,
    98,
    327,
    129,
    358,
    168,
    6,
    197,
    195,
    10,
    109,
    338,
    67,
    297,
    105,
    334,
    70,
    300,
    33,
    133,
    263,
    362,
    116,
    345,
    50,
    280,
    205,
    425,
)
# Eyes (image-left, then image-right): the upper lid and the lower lid, corner to corner.
EYE_UPPER = ((33, 246, 161, 160, 159, 158, 157, 173, 133), (362, 398, 384, 385, 386, 387, 388, 466, 263))
EYE_LOWER = ((33, 7, 163, 144, 145, 153, 154, 155, 133), (362, 382, 381, 380, 374, 373, 390, 249, 263))

LINE_POINTS = len(UPPER_OUTER)
_LID_POINTS = 9


@dataclass(frozen=True)
class Eye:
    """One eye: its upper and lower lid lines, corner to corner (same corners, same count)."""

    upper: np.ndarray
    lower: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return (self.upper.mean(axis=0) + self.lower.mean(axis=0)) / 2

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.upper[-1] - self.upper[0]))


@dataclass(frozen=True)
class FaceRig:
    """A face's moving parts, in picture pixels.

    Attributes
    ----------
    upper_outer, upper_inner, lower_inner, lower_outer
        The lip lines, (11, 2) each, from the image-left corner to the image-right corner. In a
        closed mouth the two inner lines lie on top of each other: the line where the lips meet.
    jaw
        The lower face outline, temple to temple through the chin.
    still
        Points that do not move with the jaw (nose, brows, eye corners, cheekbones).
    eyes
        The two eyes, image-left first.
    method
        ``"landmarks"``, ``"manual"`` or ``"detector"``: how the rig was found, for the logs and
        the admin.
    """

    upper_outer: np.ndarray
    upper_inner: np.ndarray
    lower_inner: np.ndarray
    lower_outer: np.ndarray
    jaw: np.ndarray
    still: np.ndarray
    eyes: tuple[Eye, Eye]
    method: str

    @property
    def corners(self) -> np.ndarray:
        return np.stack([self.upper_outer[0], self.upper_outer[-1]])

    @property
    def mouth_width(self) -> float:
        return float(np.linalg.norm(self.upper_outer[-1] - self.upper_outer[0]))

    @property
    def mouth_centre(self) -> np.ndarray:
        """The middle of the line where the lips meet."""
        middle = LINE_POINTS // 2
        return (self.upper_inner[middle] + self.lower_inner[middle]) / 2

    @property
    def eye_centres(self) -> np.ndarray:
        return np.stack([eye.centre for eye in self.eyes])

    @property
    def eye_distance(self) -> float:
        """Between the eye centres: the face's own scale, whatever the mouth's width."""
        left, right = self.eye_centres
        return float(np.linalg.norm(right - left))

    @property
    def chin(self) -> np.ndarray:
        return self.jaw[int(np.argmax(self._down(self.jaw)))]

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors across the face (image-left eye to image-right eye) and down it."""
        left, right = self.eye_centres
        across = (right - left) / max(float(np.linalg.norm(right - left)), 1e-6)
        down = np.array([-across[1], across[0]])
        return across, down

    def _down(self, points: np.ndarray) -> np.ndarray:
        return points @ self.axes()[1]

    def mapped(self, scale: float, x0: float, y0: float) -> FaceRig:
        """The rig in another frame: ``(p - (x0, y0)) * scale`` (the puppet's crop)."""
        offset = np.array([x0, y0], np.float64)

        def move(points: np.ndarray) -> np.ndarray:
            return (np.asarray(points, np.float64) - offset) * scale

        return FaceRig(
            upper_outer=move(self.upper_outer),
            upper_inner=move(self.upper_inner),
            lower_inner=move(self.lower_inner),
            lower_outer=move(self.lower_outer),
            jaw=move(self.jaw),
            still=move(self.still),
            eyes=tuple(Eye(move(eye.upper), move(eye.lower)) for eye in self.eyes),  # type: ignore[arg-type]
            method=self.method,
        )

    def check(self) -> None:
        """Refuse rigs that make no face (a landmark model's wild guess, or crossed manual points).

        Raises
        ------
        InputError
            The eyes coincide, the mouth is not below them, or the mouth is tiny or huge for the face.
        """
        left, right = self.eye_centres
        eye_distance = self.eye_distance
        if eye_distance < 4:
            raise InputError("the landmarks make no face: the two eyes must be apart")
        across, down = self.axes()
        drop = float((self.mouth_centre - (left + right) / 2) @ down)
        if drop <= 0.2 * eye_distance:
            raise InputError("the landmarks make no face: the mouth must be below the eyes")
        if not 0.2 * eye_distance <= self.mouth_width <= 2.5 * eye_distance:
            raise InputError("the landmarks make no face: the mouth is too small or too wide for the eyes")


def rig_from_mesh(points: np.ndarray) -> FaceRig:
    """The rig from MediaPipe's 478 face-mesh points (pixels)."""
    points = np.asarray(points, np.float64)

    def take(indices: tuple[int, ...]) -> np.ndarray:
        return points[list(indices)]

    eyes = tuple(Eye(take(upper), take(lower)) for upper, lower in zip(EYE_UPPER, EYE_LOWER))
    eyes = tuple(sorted(eyes, key=lambda eye: float(eye.centre[0])))
    return FaceRig(
        upper_outer=take(UPPER_OUTER),
        upper_inner=take(UPPER_INNER),
        lower_inner=take(LOWER_INNER),
        lower_outer=take(LOWER_OUTER),
        jaw=take(JAW),
        still=take(STILL),
        eyes=eyes,  # type: ignore[arg-type]
        method="landmarks",
    )


# Average closed-mouth proportions for the rig drawn from points, as shares of the mouth width.
_UPPER_LIP = 0.17  # outer upper lip above the lip line, at the middle
_LOWER_LIP = 0.22  # outer lower lip below it
_BOW = 0.25  # depth of the Cupid's bow, as a share of the upper lip's height
_EYE_OPEN = 0.32  # eye height per eye width
_EYE_WIDTH = 0.42  # eye width per eye distance
_CHIN_DROP = 1.05  # chin below the lip line, in mouth widths
_JAW_HALF_WIDTH = 0.95  # face half-width at the mouth, in eye distances


def rig_from_points(
    mouth: tuple[float, float],
    mouth_width: float,
    eyes: tuple[tuple[float, float], tuple[float, float]],
    *,
    open_mouth: tuple[tuple[float, float], tuple[float, float]] | None = None,
    method: str = "manual",
) -> FaceRig:
    """A rig of average proportions from a mouth centre, its width and the two eye centres.

    The lip lines are a closed mouth of usual shape, tilted with the eye line; the jaw is an arc
    from below the temples through a chin one mouth width under the lips. Good enough for a
    drawn face or an animal, whose lips nobody can locate better from three points.

    ``open_mouth``: the middle of the upper and of the lower lip's inner edge, when the mouth is
    open in the picture (a panting dog). The inner lines then run from corner to corner through
    them, so the puppet closes the picture's own mouth in pauses and opens it from there,
    instead of painting a second mouth over the first."""
    left, right = sorted(
        (np.asarray(eyes[0], np.float64), np.asarray(eyes[1], np.float64)), key=lambda p: p[0]
    )
    eye_distance = float(np.linalg.norm(right - left))
    if eye_distance < 4:
        raise InputError("the two eye positions must be apart")
    across = (right - left) / eye_distance
    down = np.array([-across[1], across[0]])
    centre = np.asarray(mouth, np.float64)
    half = max(2.0, float(mouth_width) / 2)
    t = np.linspace(-1.0, 1.0, LINE_POINTS)
    bulge = np.sqrt(np.clip(1 - t**2, 0, 1))
    bow = 1.0 - _BOW * np.exp(-((t / 0.18) ** 2))  # the dip in the middle of the upper lip
    width = 2 * half

    def line(offsets: np.ndarray, shrink: float = 1.0) -> np.ndarray:
        return centre + np.outer(t * half * shrink, across) + np.outer(offsets, down)

    top = bottom = 0.0  # inner lip edges below the corners' line, at the middle
    if open_mouth is not None:
        top, bottom = sorted(open_mouth_depths(open_mouth, centre=centre, width=width, across=across))
    upper_outer = line(top * bulge**0.8 - _UPPER_LIP * width * bulge**0.7 * bow)
    lower_outer = line(bottom * bulge**0.8 + _LOWER_LIP * width * bulge**0.9)
    meeting = line(0.02 * width * (1 - bulge), shrink=0.92)
    upper_inner, lower_inner = meeting, meeting.copy()
    if open_mouth is not None:
        upper_inner = line(top * bulge**0.8, shrink=0.92)
        lower_inner = line(bottom * bulge**0.8, shrink=0.92)
    jaw_angles = np.linspace(-0.5 * math.pi, 0.5 * math.pi, 15)
    chin_drop = _CHIN_DROP * width + max(bottom, 0.0)
    temple_y = float(((left + right) / 2 - centre) @ down)  # negative: above the mouth
    jaw = np.array(
        [
            centre
            + across * _JAW_HALF_WIDTH * eye_distance * math.sin(angle)
            + down * (temple_y * 0.3 + (chin_drop - temple_y * 0.3) * math.cos(angle))
            for angle in jaw_angles
        ]
    )
    nose = centre - down * 0.45 * float((centre - (left + right) / 2) @ down)
    still = np.array(
        [
            nose,
            nose - across * 0.25 * eye_distance,
            nose + across * 0.25 * eye_distance,
            left,
            right,
            (left + right) / 2 - down * 0.35 * eye_distance,
        ]
    )
    rig_eyes = []
    for eye in (left, right):
        eye_half = _EYE_WIDTH * eye_distance / 2
        s = np.linspace(-1.0, 1.0, _LID_POINTS)
        arc = np.sqrt(np.clip(1 - s**2, 0, 1)) * _EYE_OPEN * eye_half
        rig_eyes.append(
            Eye(
                eye + np.outer(s * eye_half, across) - np.outer(arc, down),
                eye + np.outer(s * eye_half, across) + np.outer(arc * 0.8, down),
            )
        )
    left_eye, right_eye = rig_eyes
    return FaceRig(
        upper_outer=upper_outer,
        upper_inner=upper_inner,
        lower_inner=lower_inner,
        lower_outer=lower_outer,
        jaw=jaw,
        still=still,
        eyes=(left_eye, right_eye),
        method=method,
    )


def open_mouth_depths(
    open_mouth: tuple[tuple[float, float], tuple[float, float]],
    *,
    centre: np.ndarray | tuple[float, float],
    width: float,
    across: np.ndarray | tuple[float, float],
) -> tuple[float, float]:
    """How far below the mouth corners' line (through ``centre``, along ``across``) each point
    of an open mouth lies, checked: both between the corners and within a mouth width of
    their line. One rule for the grid's cells and for points given in pixels.

    Raises
    ------
    InputError
        A point beside the mouth, or far above or below it."""
    axis = np.asarray(across, np.float64)
    down = np.array([-axis[1], axis[0]])
    offsets = [np.asarray(point, np.float64) - np.asarray(centre, np.float64) for point in open_mouth]
    if not all(abs(offset @ axis) <= width / 2 + 1e-6 and abs(offset @ down) <= width for offset in offsets):
        raise InputError(
            "the open mouth's top and bottom must lie between the mouth corners, within a mouth width of "
            "their line"
        )
    first, second = (float(offset @ down) for offset in offsets)
    return first, second


_MESH_MAX_SIDE = 1024  # the mesh runs on a copy at most this big: the face fills a good share of a portrait


def find_rig(image: np.ndarray) -> FaceRig | None:
    """The rig from the landmark model, or None (no model installed, or no face it knows).

    A picture is a still: the model runs in its single-image mode, on a copy at most 1024 px."""
    from .. import landmarks

    if not landmarks.available():
        return None
    height, width = image.shape[:2]
    scale = min(1.0, _MESH_MAX_SIDE / max(height, width))
    small = (
        image
        if scale == 1
        else cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    )
    with landmarks.FaceTracker(still=True) as tracker:
        face = tracker.find(small)
    if face is None:
        return None
    rig = rig_from_mesh(face.points / scale)
    try:
        rig.check()
    except InputError as error:
        log.info("face landmarks rejected (%s): falling back", error)
        return None
    return rig
