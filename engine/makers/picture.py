"""One picture in: checked, decoded, its face found and its landmarks estimated.

An admin sends ONE picture to make a new character. Before anything spends minutes animating it,
this module makes sure it is a picture we can use, with a one-line reason when it is not:

* size in bytes, format and pixel count are read from the file's *header*, before any decoding,
  so a decompression bomb (a small PNG that claims 30000 x 30000 pixels) is refused without
  allocating a byte for it. The header parser knows JPEG, PNG, WebP and BMP: what phones and
  Telegram send, and what OpenCV decodes. No Pillow: the header is a few fields, and OpenCV
  (already a dependency) decodes.
* the face is looked for with whatever detector this OpenCV has. OpenCV 4 wheels ship Haar
  cascades (``cv2.data.haarcascades``); OpenCV 5 wheels ship neither ``cv2.CascadeClassifier``
  nor any cascade file, and ``cv2.FaceDetectorYN`` exists but its YuNet model is not in the
  wheel. Nothing is downloaded: with OpenCV 5 a YuNet ``.onnx`` is used only when
  ``GRAMOPHONE_FACE_MODEL`` names one on disk; otherwise ``face`` is None and the caller gives
  the mouth and eye positions by hand (drawn characters need that anyway: face detectors are
  trained on photographs).
* :func:`estimate_landmarks` turns a face box into mouth and eye positions by ordinary face
  proportions, or takes manual positions, which is all the CPU puppet needs.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

MAX_BYTES = 10_000_000
MAX_PIXELS = 40_000_000
MIN_SIDE = 64
"""Smaller than this there is no face to animate."""
FORMATS = ("jpeg", "png", "webp", "bmp")
FACE_MODEL_ENV = "GRAMOPHONE_FACE_MODEL"
"""Environment variable naming a YuNet ``.onnx`` face model on disk (optional, never downloaded)."""
_DETECT_MAX_SIDE = 800  # detection runs on a copy at most this big: faces in portraits are large
_BACKGROUND_BGR = (255, 255, 255)  # what transparent pixels become


@dataclass(frozen=True)
class Face:
    """A face box in picture pixels."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Landmarks:
    """Where the puppet's moving parts are, in picture pixels.

    Attributes
    ----------
    mouth
        Centre of the mouth: the line where the lips meet.
    mouth_width
        Corner to corner.
    eyes
        Centres of the two eyes (any order).
    """

    mouth: tuple[float, float]
    mouth_width: float
    eyes: tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class PictureInfo:
    """A picture that passed :func:`check_picture`: its size (after EXIF rotation), format and face."""

    path: Path
    width: int
    height: int
    format: str
    face: Face | None


# ---- header parsing ----------------------------------------------------------------------------

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NOT_A_PICTURE = "this is not a picture I can read; send a JPEG, PNG or WebP image"
_DAMAGED = "the picture is damaged and cannot be decoded; send it again or try another one"


def _jpeg_size(handle: BinaryIO) -> tuple[int, int]:
    """Walk the JPEG's marker segments up to its frame header (SOFn) and read the size there."""
    handle.seek(2)
    while True:
        byte = handle.read(1)
        if not byte:
            raise InputError(_DAMAGED)
        if byte != b"\xff":
            continue
        marker = handle.read(1)
        while marker == b"\xff":  # fill bytes
            marker = handle.read(1)
        if not marker:
            raise InputError(_DAMAGED)
        code = marker[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            continue
        if code in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise InputError(_DAMAGED)
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            raise InputError(_DAMAGED)
        (length,) = struct.unpack(">H", length_bytes)
        if length < 2:
            raise InputError(_DAMAGED)
        if code in _JPEG_SOF:
            body = handle.read(5)
            if len(body) < 5:
                raise InputError(_DAMAGED)
            _, height, width = struct.unpack(">BHH", body)
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)


@dataclass(frozen=True)
class _Header:
    """What a picture's header promises, read without decoding a pixel."""

    kind: str
    width: int
    height: int
    bytes_per_pixel: int
    """As OpenCV will hold it decoded: channels (alpha counts) times bytes per sample (16-bit: 2)."""


_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels decoded (a palette becomes BGR)


def _header(path: Path) -> _Header:
    """The picture's format, size and decoded weight from its header, without decoding any pixels."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        if head.startswith(b"\xff\xd8\xff"):
            return _Header("jpeg", *_jpeg_size(handle), 3)  # IMREAD_COLOR: always 8-bit BGR
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_header(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        return _webp_header(head)
    if head[:2] == b"BM" and len(head) >= 30:
        return _bmp_header(head)
    raise InputError(_NOT_A_PICTURE)


def _png_header(head: bytes) -> _Header:
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise InputError(_DAMAGED)
    width, height = struct.unpack(">II", head[16:24])
    depth, colour = head[24], head[25]
    if colour not in _PNG_CHANNELS:
        raise InputError(_DAMAGED)
    return _Header("png", width, height, _PNG_CHANNELS[colour] * (2 if depth == 16 else 1))


def _webp_header(head: bytes) -> _Header:
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        channels = 4 if head[20] & 0x10 else 3
    elif chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise InputError(_DAMAGED)
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", head[26:30]))
        channels = 3
    elif chunk == b"VP8L":
        if head[20] != 0x2F:
            raise InputError(_DAMAGED)
        bits = int.from_bytes(head[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        channels = 4 if bits >> 28 & 1 else 3
    else:
        raise InputError(_NOT_A_PICTURE)
    return _Header("webp", width, height, channels)


def _bmp_header(head: bytes) -> _Header:
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:
        width, height = struct.unpack("<HH", head[18:22])
        bits = struct.unpack("<H", head[24:26])[0]
    else:
        width, height = struct.unpack("<ii", head[18:26])
        bits = struct.unpack("<H", head[28:30])[0]
    return _Header("bmp", abs(width), abs(height), 4 if bits == 32 else 3)


def _checked_header(path: Path, max_bytes: int, max_pixels: int) -> _Header:
    """Everything that can be refused without decoding: existence, bytes, format, pixels, and the
    memory the decoded pixels will take.

    The memory budget is what ``max_pixels`` costs as 8-bit colour (3 bytes a pixel): a 16-bit
    picture with transparency weighs 8 bytes a pixel, so it may have fewer pixels. Without that,
    a 476 KB PNG of 40 MP at 16 bits with alpha decodes to 320 MB and peaks at 1.7 GB."""
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError("cannot read the picture: the file is missing") from None
    if size == 0:
        raise InputError("the picture is empty (0 bytes); send it again")
    if size > max_bytes:
        raise InputError(
            f"the picture is {size / 1e6:.1f} MB, too big; send one under {max_bytes / 1e6:.0f} MB"
        )
    header = _header(path)
    width, height = header.width, header.height
    if width <= 0 or height <= 0:
        raise InputError(_DAMAGED)
    if width * height > max_pixels:
        raise InputError(
            f"the picture is {width}x{height} pixels, too large; send one of at most {max_pixels / 1e6:.0f} "
            "megapixels"
        )
    budget = max_pixels * 3
    if width * height * header.bytes_per_pixel > budget:
        allowed = budget / header.bytes_per_pixel
        raise InputError(
            f"the picture is {width}x{height} pixels at {header.bytes_per_pixel} bytes a pixel (deep colour "
            "or "
            f"transparency), too heavy; send a JPEG, or one of at most {allowed / 1e6:.0f} megapixels"
        )
    if min(width, height) < MIN_SIDE:
        raise InputError(
            f"the picture is only {width}x{height} pixels; send one at least {MIN_SIDE} pixels on each side"
        )
    return header


_COMPOSITE_ROWS = 512
"""Rows composited at a time: the temporaries of a large picture stay a few MB."""


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """8-bit BGR whatever OpenCV decoded: grey, 16-bit, or with alpha (composited over white)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # 16 -> 8 bit at once: the rest works on a quarter
    elif image.dtype != np.uint8:
        image = cv2.normalize(  # type: ignore[call-overload]  # stub: dst may be None (allocated)
            image, None, 0, 255, cv2.NORM_MINMAX
        ).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 2:  # grey + alpha
        image = np.dstack([image[..., 0]] * 3 + [image[..., 1]])
    if image.shape[2] == 4:
        out = np.empty(image.shape[:2] + (3,), np.uint8)
        background = np.array(_BACKGROUND_BGR, np.uint16)
        for top in range(0, image.shape[0], _COMPOSITE_ROWS):
            rows = image[top : top + _COMPOSITE_ROWS]
            alpha = rows[..., 3:4].astype(np.uint16)
            mixed = rows[..., :3] * alpha + background * (255 - alpha)
            out[top : top + _COMPOSITE_ROWS] = ((mixed + 127) // 255).astype(np.uint8)
        return out
    return image[..., :3]


def read_picture(
    path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Check the header, then decode the picture to 8-bit BGR (EXIF rotation applied to JPEGs).

    Raises
    ------
    InputError
        As :func:`check_picture`.
    """
    return _load(Path(path), max_bytes, max_pixels)[1]


def _load(path: Path, max_bytes: int, max_pixels: int) -> tuple[str, np.ndarray]:
    header = _checked_header(path, max_bytes, max_pixels)
    data = np.fromfile(str(path), dtype=np.uint8)
    # JPEG: IMREAD_COLOR applies the EXIF orientation phones rely on. Others: keep alpha.
    flags = cv2.IMREAD_COLOR if header.kind == "jpeg" else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(data, flags)
    del data
    if image is None or image.size == 0:
        raise InputError(_DAMAGED)
    if {image.shape[0], image.shape[1]} != {header.width, header.height}:
        raise InputError(_DAMAGED)  # the pixels do not match what the header promised
    return header.kind, _to_bgr(image)


# ---- faces --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _haar() -> cv2.CascadeClassifier | None:
    classifier = getattr(cv2, "CascadeClassifier", None)
    data = getattr(cv2, "data", None)
    if classifier is None or data is None:
        return None
    path = Path(data.haarcascades) / "haarcascade_frontalface_default.xml"
    if not path.is_file():
        return None
    cascade = classifier(str(path))
    return None if cascade.empty() else cascade


def _yunet_model() -> Path | None:
    configured = os.environ.get(FACE_MODEL_ENV)
    if not configured or not hasattr(cv2, "FaceDetectorYN"):
        return None
    path = Path(configured)
    if not path.is_file():
        log.warning("%s=%s: no such file; face detection is off", FACE_MODEL_ENV, configured)
        return None
    return path


def face_detector() -> str | None:
    """Which face detector this installation has: ``"haar"``, ``"yunet"`` or None."""
    if _haar() is not None:
        return "haar"
    if _yunet_model() is not None:
        return "yunet"
    return None


def _float_box(values: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    """A detector's (x, y, w, h) as floats."""
    x, y, w, h = map(float, values)
    return x, y, w, h


def detect_face(image: np.ndarray) -> Face | None:
    """The largest face in a BGR picture, or None (also when no detector is available).

    The face landmark model (:mod:`engine.landmarks`, when installed) is asked first: it finds
    paintings and 3D cartoon people that the cascade misses, and its box is where the puppet's
    rig will come from. The cascade, or YuNet, is the fallback.

    Detection runs on a copy scaled to at most 800 pixels: portraits have big faces, and that
    keeps a 40-megapixel photo to tens of milliseconds.
    """
    from .face_rig import find_rig

    rig = find_rig(image)
    if rig is not None:
        points = np.concatenate([rig.jaw, rig.still, rig.upper_outer, rig.lower_outer])
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        return Face(round(x0), round(y0), round(x1 - x0), round(y1 - y0))
    kind = face_detector()
    if kind is None:
        log.debug("no face detector in this OpenCV (and no %s): skipping face detection", FACE_MODEL_ENV)
        return None
    height, width = image.shape[:2]
    scale = min(1.0, _DETECT_MAX_SIDE / max(height, width))
    small = image
    if scale < 1:
        small = cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    boxes: list[tuple[float, float, float, float]] = []
    if kind == "haar":
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        side = min(grey.shape)
        cascade = _haar()
        assert cascade is not None  # face_detector() said "haar"
        found = cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 10),) * 2
        )
        boxes = [_float_box(box) for box in found]
    else:
        model = _yunet_model()
        assert model is not None
        detector = cv2.FaceDetectorYN.create(str(model), "", (small.shape[1], small.shape[0]), 0.8, 0.3, 50)
        _, faces = detector.detect(small)
        if faces is not None:
            boxes = [_float_box(row[:4]) for row in faces]
    if not boxes:
        return None
    x, y, w, h = max(boxes, key=lambda box: box[2] * box[3])
    return Face(round(x / scale), round(y / scale), round(w / scale), round(h / scale))


def check_picture(
    path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS
) -> PictureInfo:
    """Check that ``path`` is a picture a character can be made from, and look for its face.

    Parameters
    ----------
    path
        The file the admin sent.
    max_bytes, max_pixels
        Limits; pixels are checked from the header, before decoding (decompression bombs).

    Returns
    -------
    PictureInfo
        Size after EXIF rotation, format (``jpeg``, ``png``, ``webp`` or ``bmp``) and the largest
        face, or None when none was found or no detector is available (see the module docstring).

    Raises
    ------
    InputError
        A one-line, friendly reason: missing, empty, too many bytes, not a picture, too many or
        too few pixels, damaged.
    """
    path = Path(path)
    kind, image = _load(path, max_bytes, max_pixels)
    face = detect_face(image)
    height, width = image.shape[:2]
    log.info("picture %s: %s %dx%d, face %s", path.name, kind, width, height, face)
    return PictureInfo(path=path, width=width, height=height, format=kind, face=face)


# ---- landmarks ----------------------------------------------------------------------------------

# Proportions of a frontal face in a detector's box (Haar and YuNet boxes span brows to chin).
_EYE_Y, _EYE_X = 0.38, 0.30  # eye centres: 38 % down the box, 30 % in from each side
_MOUTH_Y, _MOUTH_W = 0.76, 0.27
# Between manual points: mouth width and eye-to-mouth drop as shares of the eye distance.
_MOUTH_W_PER_EYES = 0.78  # the rig: 92 / 120; adult faces about 0.8
_DROP_PER_EYES = 1.1
_EYES_PER_SIDE = 0.24  # no face and only a mouth: eye distance as a share of the picture's short side


def _point(value, name: str, info: PictureInfo) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"the {name} position must be two numbers x, y in picture pixels") from None
    if not (math.isfinite(x) and math.isfinite(y) and 0 <= x < info.width and 0 <= y < info.height):
        raise InputError(
            f"the {name} position {x:g},{y:g} lies outside the {info.width}x{info.height} picture"
        )
    return x, y


def estimate_landmarks(
    info: PictureInfo,
    mouth: tuple[float, float] | None = None,
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> Landmarks:
    """Mouth and eye positions: given by hand, or estimated from the face box by proportions.

    Manual positions win over the detected face (a detector can pick the wrong face, and drawn
    characters are rarely detected at all). Given only the eyes, the mouth is placed below their
    midpoint; given only the mouth, the eyes are placed above it (sized from the face box, or
    from the picture when there is none).

    Raises
    ------
    InputError
        No face and no positions, or positions outside the picture, coinciding eyes, or a mouth
        that is not below the eyes.
    """
    if mouth is None and eyes is None:
        face = info.face
        if face is None:
            raise InputError(
                "no face found in the picture; give the positions of the mouth and eyes in picture pixels"
            )
        eye_y = face.y + _EYE_Y * face.h
        return Landmarks(
            mouth=(face.x + 0.5 * face.w, face.y + _MOUTH_Y * face.h),
            mouth_width=_MOUTH_W * face.w,
            eyes=((face.x + _EYE_X * face.w, eye_y), (face.x + (1 - _EYE_X) * face.w, eye_y)),
        )
    if eyes is not None:
        try:
            first, second = eyes
        except (TypeError, ValueError):
            raise InputError("give two eye positions, each x, y in picture pixels") from None
        left, right = sorted((_point(first, "eye", info), _point(second, "eye", info)))
        distance = math.dist(left, right)
        if distance < 4:
            raise InputError("the two eye positions must be apart")
    else:
        assert mouth is not None
        mx, my = _point(mouth, "mouth", info)
        distance = (
            (1 - 2 * _EYE_X) * info.face.w
            if info.face is not None
            else _EYES_PER_SIDE * min(info.width, info.height)
        )
        drop = _DROP_PER_EYES * distance
        left, right = (mx - distance / 2, my - drop), (mx + distance / 2, my - drop)
        log.info("eyes placed above the mouth by face proportions: %s, %s", left, right)
    if mouth is None:
        mid = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
        # perpendicular to the eye line, towards the bottom of the picture
        nx, ny = -(right[1] - left[1]) / distance, (right[0] - left[0]) / distance
        mouth_point = (mid[0] + nx * _DROP_PER_EYES * distance, mid[1] + ny * _DROP_PER_EYES * distance)
        mouth_point = (
            min(max(mouth_point[0], 0.0), info.width - 1.0),
            min(max(mouth_point[1], 0.0), info.height - 1.0),
        )
    else:
        mouth_point = _point(mouth, "mouth", info)
    if mouth_point[1] <= max(left[1], right[1]):
        raise InputError("the mouth must be below the eyes")
    return Landmarks(mouth=mouth_point, mouth_width=_MOUTH_W_PER_EYES * distance, eyes=(left, right))
