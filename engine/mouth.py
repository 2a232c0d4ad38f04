"""The mouth: what it does in every library frame, and what it should do for new audio.

At build time every frame gets two measures (:class:`MouthMeter`):

* ``opening``: inner-lip gap over inner mouth width (0 when closed);
* ``width``: outer mouth width over the distance between the eyes (wide on i/e, narrow on o/u);

plus a small appearance code (the mouth region's grey patch on its main principal components).
With the face landmark model (:mod:`engine.landmarks`) these come from the lips themselves.
Without it, or where no face is found (drawn characters, animals), they come from pixels: the
mouth region is located once, as the part of the lower face that changes most while the
recording speaks, and its darkness and dark width stand in for opening and width.

Then a small per-character model learns the recording's own audio -> mouth mapping
(:func:`fit_mouth_model`): ridge regression from the speaker-normalised features of
:mod:`engine.features` over a context window of about +-0.36 s, pooled in seven bands. For new
audio (a child's voice, TTS, the same person) it predicts a mouth track; the planner then prefers
recorded pieces whose measured mouth follows it. Predictions are standardised by their own
spread on the training audio, so the track asks for the recording's full range of mouths
rather than ridge regression's timid average.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from . import landmarks

log = logging.getLogger(__name__)

MOUTH_DIMS = 2
OPENING, WIDTH = 0, 1
CODE_DIMS = 8
PATCH_W, PATCH_H = 32, 16
ANCHORS = (
    landmarks.NOSE_TIP,
    landmarks.EYE_CORNERS[0],
    landmarks.EYE_CORNERS[1],
    landmarks.MOUTH_CORNERS[0],
    landmarks.MOUTH_CORNERS[1],
    landmarks.OUTER_LIPS[0],
    landmarks.OUTER_LIPS[1],
    landmarks.CHIN,
)
"""Landmarks kept per frame: where the face and the mouth are, for lower-face compositing."""
CONTEXT_BANDS: tuple[tuple[int, int], ...] = ((-9, -6), (-5, -3), (-2, -1), (0, 0), (1, 2), (3, 5), (6, 9))
"""Frame offsets pooled into one feature band each: near frames alone, far ones averaged."""
RIDGE_GRID = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0)
CV_FOLDS = 5
MIN_TRAIN_FRAMES = 50
GIVE_UP_AFTER = 50
"""Frames without a face after which the landmark model is not asked again."""


@dataclass(frozen=True)
class MouthMeasures:
    """Per-frame mouth measures of a whole library (all sources, in frame order)."""

    values: np.ndarray  # (n, 2) float32: opening, width (missing frames interpolated)
    found: np.ndarray  # (n,) bool: measured on this frame (a face, or the pixel region)
    code: np.ndarray  # (n, CODE_DIMS) float32 appearance code
    method: str  # "landmarks" or "pixels"
    anchors: np.ndarray | None = None  # (n, len(ANCHORS), 2) float32 landmark points (landmarks only)

    @property
    def found_fraction(self) -> float:
        return float(self.found.mean()) if len(self.found) else 0.0


def _patch(image: np.ndarray, centre: np.ndarray, width: float) -> np.ndarray:
    """The mouth region as a PATCH_W x PATCH_H grey patch, scaled by the mouth's width."""
    half_w = max(4.0, 0.8 * width)
    half_h = half_w * PATCH_H / PATCH_W
    source = np.array(
        [
            [centre[0] - half_w, centre[1] - half_h],
            [centre[0] + half_w, centre[1] - half_h],
            [centre[0] - half_w, centre[1] + half_h],
        ],
        dtype=np.float32,
    )
    target = np.array([[0, 0], [PATCH_W, 0], [0, PATCH_H]], dtype=np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.warpAffine(
        grey,
        cv2.getAffineTransform(source, target),
        (PATCH_W, PATCH_H),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )


class MouthMeter:
    """Measures each frame of a build as it goes by; :meth:`finish` returns the measures.

    Call :meth:`new_source` between videos: landmark tracking must not carry over a cut.
    """

    def __init__(self, *, use_landmarks: bool = True, stride: int = 2) -> None:
        self.use_landmarks = use_landmarks and landmarks.available()
        self.stride = max(1, stride)
        self._tracker: landmarks.FaceTracker | None = None
        self._values: list[tuple[float, float]] = []
        self._anchors: list[np.ndarray] = []
        self._found: list[bool] = []
        self._skipped: list[bool] = []
        self._patches: list[np.ndarray] = []
        self._phase = 0

    def new_source(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    def add(self, frame: np.ndarray) -> None:
        if not self.use_landmarks:
            return
        if len(self._found) >= GIVE_UP_AFTER and not any(self._found):
            # A drawn character or an animal: no face in the first frames, none later either.
            # Stop paying 3-5 ms a frame for nothing; the pixel measure takes over.
            log.info("no face in the first %d frames: measuring the mouth from pixels", GIVE_UP_AFTER)
            self.use_landmarks = False
            return
        if self._tracker is None:
            self._tracker = landmarks.FaceTracker()
            self._phase = 0
        self._phase += 1
        if (self._phase - 1) % self.stride:
            # Every other frame: the mouth moves at syllable rate (4-8 Hz), 12.5 measures a
            # second follow it, at half the cost (the model is 3-5 ms a frame). Interpolated.
            self._values.append((np.nan, np.nan))
            self._anchors.append(np.full((len(ANCHORS), 2), np.nan, np.float32))
            self._found.append(False)
            self._patches.append(
                self._patches[-1] if self._patches else np.zeros((PATCH_H, PATCH_W), np.uint8)
            )
            self._skipped.append(True)
            return
        self._skipped.append(False)
        face = self._tracker.find(frame)
        if face is None:
            self._values.append((np.nan, np.nan))
            self._anchors.append(np.full((len(ANCHORS), 2), np.nan, np.float32))
            self._found.append(False)
            self._patches.append(np.zeros((PATCH_H, PATCH_W), np.uint8))
            return
        self._values.append((face.mouth_opening, face.mouth_width))
        self._anchors.append(face.points[list(ANCHORS)].astype(np.float32))
        self._found.append(True)
        width = float(
            np.linalg.norm(face.point(landmarks.MOUTH_CORNERS[0]) - face.point(landmarks.MOUTH_CORNERS[1]))
        )
        self._patches.append(_patch(frame, face.mouth_centre, width))

    def finish(self, thumbnails: np.ndarray, speech: np.ndarray) -> MouthMeasures:
        """The measures of every frame added; ``thumbnails`` and ``speech`` (the recording's
        voice activity, False past the speech source) serve the pixel measure."""
        self.new_source()
        found = np.asarray(self._found, dtype=bool)
        looked = ~np.asarray(self._skipped, dtype=bool)
        if (
            self.use_landmarks
            and len(found) == len(thumbnails)
            and looked.any()
            and found[looked].mean() >= 0.5
        ):
            measured = found
            values = _interpolate(np.asarray(self._values, dtype=np.float32), measured)
            found = measured | (np.asarray(self._skipped, dtype=bool) & _between_found(measured))
            code = _principal_codes(np.stack(self._patches), found)
            anchors = np.stack(self._anchors)
            # From the frames measured (not those between two, which were skipped and hold NaN).
            flat = _interpolate(anchors.reshape(len(anchors), -1), measured).reshape(anchors.shape)
            return MouthMeasures(values, found, code, "landmarks", flat.astype(np.float32))
        if self.use_landmarks:
            log.info(
                "a face in only %.0f%% of frames: measuring the mouth from pixels",
                100 * (found.mean() if len(found) else 0),
            )
        return pixel_measures(thumbnails, speech)


def _between_found(found: np.ndarray) -> np.ndarray:
    """Frames whose both neighbours were measured (a skipped frame between two faces)."""
    before = np.concatenate([[False], found[:-1]])
    after = np.concatenate([found[1:], [False]])
    return before & after


def _interpolate(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Missing frames take values interpolated from the nearest measured ones."""
    if not found.any():
        return np.nan_to_num(values)
    if found.all():
        return values
    found = found & np.isfinite(values).all(axis=1)
    index = np.arange(len(values))
    out = values.copy()
    for column in range(values.shape[1]):
        out[~found, column] = np.interp(index[~found], index[found], values[found, column])
    return out


def _principal_codes(patches: np.ndarray, found: np.ndarray, dims: int = CODE_DIMS) -> np.ndarray:
    flat = patches.reshape(len(patches), -1).astype(np.float32)
    sample = flat[found] if found.sum() > dims else flat
    mean = sample.mean(axis=0)
    centred = sample - mean
    # Principal directions from the (small) pixel covariance: 512 x 512 at most.
    _, _, vectors = np.linalg.svd(centred[:: max(1, len(centred) // 2000)], full_matrices=False)
    components = vectors[:dims].T
    codes = (flat - mean) @ components
    if codes.shape[1] < dims:
        codes = np.pad(codes, ((0, 0), (0, dims - codes.shape[1])))
    return codes.astype(np.float32)


def locate_mouth_region(thumbnails: np.ndarray, speech: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) on the thumbnails: where the lower face changes most while speaking."""
    side = thumbnails.shape[1]
    moving = thumbnails[: len(speech)][speech] if speech.sum() >= 10 else thumbnails
    spread = moving.astype(np.float32).std(axis=0)
    spread = cv2.GaussianBlur(spread, (0, 0), side / 32)
    spread[: int(side * 0.4)] = 0  # the mouth is in the lower part of a face-centred frame
    y, x = np.unravel_index(int(np.argmax(spread)), spread.shape)
    half_w, half_h = max(3, side // 8), max(2, side // 14)
    return (max(0, x - half_w), max(0, y - half_h), min(side, x + half_w + 1), min(side, y + half_h + 1))


def pixel_measures(thumbnails: np.ndarray, speech: np.ndarray) -> MouthMeasures:
    """Opening and width from pixels, for faces no landmark model finds."""
    x0, y0, x1, y1 = locate_mouth_region(thumbnails, speech)
    region = thumbnails[:, y0:y1, x0:x1].astype(np.float32)
    reference = np.median(region, axis=0)  # the region as it usually looks
    darker = np.clip(reference[None] - region, 0, None)  # an open mouth is darker than the face
    opening = darker.mean(axis=(1, 2)) / 255.0
    dark_columns = (darker > 12).mean(axis=1)  # (n, width): how much of each column went dark
    width = (dark_columns > 0.2).mean(axis=1)
    values = np.stack([opening, width], axis=1).astype(np.float32)
    patches = np.stack(
        [cv2.resize(r.astype(np.uint8), (PATCH_W, PATCH_H), interpolation=cv2.INTER_AREA) for r in region]
    )
    found = np.ones(len(thumbnails), dtype=bool)
    return MouthMeasures(values, found, _principal_codes(patches, found), "pixels")


# -- the audio -> mouth model ----------------------------------------------------------------------


def context_features(features: np.ndarray) -> np.ndarray:
    """Each frame's features pooled over :data:`CONTEXT_BANDS` (edges held), one row per frame."""
    n = len(features)
    cumulative = np.vstack([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0, dtype=np.float64)])
    index = np.arange(n)
    columns = []
    for low, high in CONTEXT_BANDS:
        start = np.clip(index + low, 0, n - 1)
        stop = np.clip(index + high, 0, n - 1) + 1
        columns.append((cumulative[stop] - cumulative[start]) / np.maximum(stop - start, 1)[:, None])
    return np.hstack(columns).astype(np.float32)


@dataclass(frozen=True)
class MouthModel:
    """Ridge regression from :func:`context_features` to standardised mouth measures."""

    weights: np.ndarray  # (d + 1, MOUTH_DIMS), the last row the intercept
    x_mean: np.ndarray  # (d,)
    x_std: np.ndarray  # (d,)
    prediction_mean: np.ndarray  # (MOUTH_DIMS,) of predictions on the training audio
    prediction_std: np.ndarray  # (MOUTH_DIMS,)
    ridge: float
    cv_r: tuple[float, ...]  # held-out correlation per measure, from blocked cross-validation

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The mouth track new audio calls for, standardised: (n, MOUTH_DIMS), mean 0, spread 1
        as the recording's own mouth would have."""
        raw = self._raw(features)
        return ((raw - self.prediction_mean) / self.prediction_std).astype(np.float32)

    def _raw(self, features: np.ndarray) -> np.ndarray:
        x = (context_features(features) - self.x_mean) / self.x_std
        return x @ self.weights[:-1] + self.weights[-1]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "mouth_model_weights": self.weights.astype(np.float32),
            "mouth_model_x": np.stack([self.x_mean, self.x_std]).astype(np.float32),
            "mouth_model_y": np.stack([self.prediction_mean, self.prediction_std]).astype(np.float32),
        }

    def meta(self) -> dict[str, object]:
        return {"ridge": self.ridge, "cv_r": [round(r, 3) for r in self.cv_r], "bands": list(CONTEXT_BANDS)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> MouthModel:
        x, y = arrays["mouth_model_x"], arrays["mouth_model_y"]
        ridge = cast(float, meta.get("ridge", 0.0))  # meta as meta() wrote it (through JSON)
        cv_r = cast(Iterable[float], meta.get("cv_r", ()))
        return cls(
            arrays["mouth_model_weights"],
            x[0],
            x[1],
            y[0],
            y[1],
            float(ridge),
            tuple(float(r) for r in cv_r),
        )


def standardise(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Measures as z-scores over the frames in ``mask`` (the library's own spread)."""
    mean = values[mask].mean(axis=0)
    std = values[mask].std(axis=0) + 1e-6
    return ((values - mean) / std).astype(np.float32)


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    x1 = np.hstack([x, np.ones((len(x), 1), np.float32)])
    regulariser = penalty * np.eye(x1.shape[1], dtype=np.float64)
    regulariser[-1, -1] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(x1.T @ x1 + regulariser, x1.T @ y)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.corrcoef(a, b)[0, 1])
    return r if np.isfinite(r) else 0.0


def fit_mouth_model(features: np.ndarray, mouth: np.ndarray, train: np.ndarray) -> MouthModel | None:
    """Learn the recording's audio -> mouth mapping on the frames in ``train``; None when there
    are too few of them. The ridge penalty is chosen by cross-validation over contiguous blocks
    (neighbouring frames are nearly copies: shuffled folds would flatter any penalty)."""
    if train.sum() < MIN_TRAIN_FRAMES:
        return None
    x_all = context_features(features)
    y_all = standardise(mouth, train)
    rows = np.flatnonzero(train)
    x, y = x_all[rows], y_all[rows]
    x_mean, x_std = x.mean(axis=0), x.std(axis=0) + 1e-3
    x = (x - x_mean) / x_std
    folds = np.array_split(np.arange(len(rows)), CV_FOLDS)
    results: list[tuple[float, float, tuple[float, ...]]] = []
    for penalty in RIDGE_GRID:
        fold_scores = []
        for fold in folds:
            keep = np.ones(len(rows), dtype=bool)
            keep[max(0, fold[0] - 9) : fold[-1] + 10] = False  # a guard band: no context leaks across
            if keep.sum() < MIN_TRAIN_FRAMES // 2:
                keep = np.ones(len(rows), dtype=bool)
                keep[fold] = False
            weights = _ridge(x[keep], y[keep], penalty)
            predicted = x[fold] @ weights[:-1] + weights[-1]
            fold_scores.append([_pearson(predicted[:, k], y[fold, k]) for k in range(MOUTH_DIMS)])
        scores = tuple(float(v) for v in np.mean(fold_scores, axis=0))
        results.append((scores[OPENING], penalty, scores))
    # Short recordings make the scores noisy: take the strongest penalty within 0.02 of the best.
    best_score = max(score for score, _, _ in results)
    _, penalty, scores = max((r for r in results if r[0] >= best_score - 0.02), key=lambda r: r[1])
    weights = _ridge(x, y, penalty).astype(np.float32)
    fitted = x @ weights[:-1] + weights[-1]
    model = MouthModel(
        weights,
        x_mean.astype(np.float32),
        x_std.astype(np.float32),
        fitted.mean(axis=0).astype(np.float32),
        (fitted.std(axis=0) + 1e-6).astype(np.float32),
        penalty,
        scores,
    )
    log.info(
        "mouth model: ridge %g, held-out r opening %.2f, width %.2f", penalty, scores[OPENING], scores[WIDTH]
    )
    return model
