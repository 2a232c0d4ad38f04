"""Which library segment plays when: the greedy seed planner and the global (Viterbi) planner.

The output timeline is cut into *slots*: runs of speech and runs of pause (from the voice
activity of the new audio), each run cut into 10-frame slots (a run's last few frames join the
slot before, so slots are 4 to 13 frames). Every slot gets one library segment; speech slots take
speech segments, pause slots take idle segments. Playback of a segment may run a few frames past
its 10 (the recording goes on), never across the end of its source video.

``greedy`` is the seed design, kept reproducible: at each slot average the features of the next
``lookahead_s`` of audio, take the ``top_k`` segments by cosine similarity of fingerprints, and
of those play the one whose first-frame thumbnail is closest (mean absolute difference) to the
last frame played.

``global`` chooses the whole sequence at once. Each slot's candidates are its ``top_k`` segments
by frame-by-frame weighted distance between the new audio's features and the segment's own
(plus the natural continuation of every candidate of the slot before). A path's cost is the sum
of those acoustic distances and, at each join, ``join_cost`` plus ``splice_weight`` times the
thumbnail distance of the frames either side; continuing the recording where it was costs
nothing, because it is not a join at all. Viterbi finds the cheapest path exactly.

With a v2 library a mouth term joins the acoustic one: how far each piece's measured mouth is
from the mouth the new audio calls for. In the recording's own voice that is the character's
audio -> mouth model (:mod:`engine.mouth`) with the loudness; in another voice (a child, TTS:
:func:`other_voice_share`) the loudness and, for synthesised speech, its phonemes
(:mod:`engine.visemes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import features as feat
from .library import Library

MIN_SLOT_FRAMES = 4


@dataclass(frozen=True)
class PlannerSettings:
    """Planner parameters; the defaults of the greedy ones are the seed design's."""

    method: str = "global"
    top_k: int = 20
    # greedy (seed)
    lookahead_s: float = 2.0
    lookahead_decay_s: float | None = None  # None: a plain average over the look-ahead (the seed)
    # global
    feature_weights: tuple[float, ...] = field(default_factory=lambda: (6.0, 1.5) + (1.0,) * 4 + (0.2,) * 10)
    join_cost: float = 4.0
    splice_weight: float = 0.3
    idle_candidates: int = 40
    beam: int = 20  # paths per slot whose natural continuation is also a candidate of the next
    smooth_frames: int = 3  # triangular smoothing of features before matching: onsets 1 frame off still match
    slot_frames: int = feat.SEGMENT_FRAMES
    # The mouth target (v2 libraries): how much a piece's measured mouth must follow the mouth the
    # new audio calls for. With the character's audio -> mouth model alone as the target it does
    # not pay: measured with benchmarks/real_mouths.py on the shared clips, 10-frame slots cannot
    # follow it (pooled r 0.39 at 0, 0.32 at 1, 0.26 at 3), and 6-frame slots that can (the planned
    # mouth follows the target at r 0.8) turn most frames into morphs, which blur the mouth
    # (0.23). Lower-face compositing (a mouth track of 5-frame pieces over these frames) measured
    # no better either (pooled 0.33-0.35; commit before the one that took it out).
    # The model is learnt from seconds of one voice and reads another (a child, eSpeak) poorly:
    # with no target, eSpeak on the clips' libraries opened the mouth less than the footage's own
    # mouth follows its loudness on 7 of 10 clips, against the loudness on 5. So the opening
    # target is the model's prediction and the new audio's own loudness, standardised, in equal
    # parts (``loudness_target``): a mouth that opens on loud syllables in any voice. Measured
    # (benchmarks/real_mouths.py): eSpeak at or above the footage's own on 5-6 clips of 10 (3
    # before), own voice pooled r 0.38 -> 0.37 (noise: its 5-95% band is 0.15-0.43);
    # benchmarks/quality.py opening 0.90, width 0.79 -> 0.85, seams 1.10 -> 1.06 (with the join
    # weight below at 1.5; 1.15 at 1.0).
    # What limits it is the prediction: with the real held-out mouth as the target
    # (benchmarks/real_mouths.py --ceiling) the pooled r is 0.41 at these settings and 0.54 at
    # weight 10 with no loudness term (rotated folds: 0.19 and 0.47), against 0.36 (0.10) now.
    mouth_weight: float = 2.0
    mouth_dim_weights: tuple[float, float] = (1.0, 0.4)  # opening, width
    loudness_target: float = 1.0  # weight of the loudness in the opening target, the model's being 1
    # A join between unlike mouths morphs into a ghost of both: its cost grows by this much per
    # standard deviation of opening between the frames either side (v2 libraries). Measured:
    # benchmarks/real_mouths.py, latentsync_demo3 r 0.44 -> 0.50 (0.47 at 0.5); synthetic
    # (benchmarks/quality.py) opening 0.899 -> 0.897, width 0.807 -> 0.798, seams 1.15 -> 1.10.
    # With the mouth target on, 1.5 keeps the seams (1.06, against 1.15 at 1.0).
    mouth_join_weight: float = 1.5
    # Another voice than the recording's (a child, TTS): the model learnt from seconds of one voice
    # reads it poorly, and the mouth should at least open on its loud syllables. How unlike the
    # recording's voice the new audio sounds (features.voice_distance) moves the opening target
    # from the settings above (at ``other_voice[0]`` and closer) to the new audio's own (below),
    # followed with ``other_voice_mouth_weight`` (at ``other_voice[1]`` and beyond). The same
    # person scores 0.22-0.42, eSpeak 0.57-1.27.
    other_voice: tuple[float, float] = (0.45, 0.65)
    other_voice_mouth_weight: float = 40.0
    # Synthesised speech comes with its phonemes (engine.visemes): the lips must close on p, b, m
    # and open on "a", which the loudness alone does not say. Where they are known, that other-voice
    # target is the phonemes' opening and the loudness, standardised, this many to one.
    # Measured with benchmarks/real_mouths.py (--other-voice-weight, --phoneme-weight; eSpeak on
    # the 10 clips' libraries): clips where its mouth follows its loudness at least as well as the
    # footage's own mouth follows the footage's, and p/b/m (how much more open on open vowels than
    # on p, b, m, in SDs of the footage's opening, mean of the 10):
    #   weight 2, phonemes 0 (before): 6 clips, 0.03      weight 20, phonemes 0: 9, 0.11
    #   weight 20, phonemes 1: 8, 0.76                     weight 30, phonemes 0.5: 9, 0.49
    #   weight 40, phonemes 1: 9, 0.81                     weight 40, phonemes 0.7: 10, 0.66
    # The TTS render's frame jumps over the footage's: 0.50-2.31 (0.58-1.63 before). The figures
    # move by up to 0.1 a clip with small changes (margins are 0.002-0.03 on vr_face3, vr_face4);
    # the own-voice figures do not move.
    phoneme_weight: float = 0.7

    def __post_init__(self) -> None:
        if self.method not in ("greedy", "global"):
            raise ValueError(f"planner method {self.method!r}: use 'greedy' or 'global'")
        if len(self.feature_weights) != feat.FEATURE_DIM:
            raise ValueError(f"feature_weights needs {feat.FEATURE_DIM} numbers")


@dataclass(frozen=True)
class Piece:
    """Library frames ``lib_start ..`` play on output frames ``out_start .. out_start + length``."""

    out_start: int
    length: int
    lib_start: int
    idle: bool

    @property
    def out_end(self) -> int:
        return self.out_start + self.length


def make_slots(speech: np.ndarray, slot_frames: int = feat.SEGMENT_FRAMES) -> list[tuple[int, int, bool]]:
    """Cut the timeline into ``(start, length, idle)`` slots along speech/pause runs."""
    slots: list[tuple[int, int, bool]] = []
    n = len(speech)
    run_start = 0
    while run_start < n:
        run_end = run_start
        while run_end < n and speech[run_end] == speech[run_start]:
            run_end += 1
        idle = not bool(speech[run_start])
        length = run_end - run_start
        first_slot = len(slots)
        position = run_start
        while run_end - position >= slot_frames:
            slots.append((position, slot_frames, idle))
            position += slot_frames
        remainder = run_end - position
        if remainder:
            if remainder < MIN_SLOT_FRAMES and len(slots) > first_slot:
                start, previous, _ = slots[-1]
                slots[-1] = (start, previous + remainder, idle)
            else:
                slots.append((position, remainder, idle))
        assert sum(s[1] for s in slots[first_slot:]) == length
        run_start = run_end
    return slots


class _Candidates:
    """Segment starts valid for a slot, with the library arrays the planners share."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.starts = library.segment_starts
        self.is_idle = library.segment_is_idle
        self.source_end = library.source_end
        idle_frames = library.idle_frames
        # For each frame, the end of the run of idle-playable frames it starts.
        run_end = np.empty(len(idle_frames), dtype=np.int64)
        end = len(idle_frames)
        for i in range(len(idle_frames) - 1, -1, -1):
            if not idle_frames[i]:
                end = i
            run_end[i] = end
        self.idle_run_end = np.minimum(run_end, self.source_end)

    def playable(self, frames: np.ndarray, length: int, idle: bool) -> np.ndarray:
        """Which of ``frames`` can start ``length`` frames of playback of this kind.

        Continuing the recording from any frame is allowed (not only from segment starts):
        playing on is what the recording itself did.
        """
        frames = np.asarray(frames, dtype=np.int64)
        inside = (frames >= 0) & (frames < len(self.source_end))
        safe = np.where(inside, frames, 0)
        if idle:
            return inside & self.library.idle_frames[safe] & (frames + length <= self.idle_run_end[safe])
        return inside & (self.library.sources[safe] == 0) & (frames + length <= self.source_end[safe])

    def valid(self, length: int, idle: bool) -> np.ndarray:
        """Indices of segments that can fill a slot of ``length`` frames of this kind."""
        starts = self.starts
        if idle:
            mask = self.is_idle & (starts + length <= self.idle_run_end[starts])
            if not mask.any():
                mask = self.is_idle.copy()
        else:
            mask = ~self.is_idle & (starts + length <= self.source_end[starts])
        if not mask.any():
            mask = starts + length <= self.source_end[starts]
        if not mask.any():
            mask = np.ones(len(starts), dtype=bool)
        return np.flatnonzero(mask)


def _frame_index(library: Library, start: int, offset: int) -> int:
    """Library frame ``offset`` frames into playback from ``start``, held at its source's end."""
    return int(min(start + offset, library.source_end[start] - 1))


def plan(
    library: Library,
    analysis: feat.AudioAnalysis,
    settings: PlannerSettings = PlannerSettings(),
    previous_frame: int | None = None,
) -> list[Piece]:
    """Choose library frames for every output frame; pieces cover ``analysis`` exactly.

    ``previous_frame`` is the library frame shown just before this audio, when the render goes
    on from an earlier plan (speech streamed sentence by sentence): the plan then starts where
    that frame can best continue.
    """
    slots = make_slots(analysis.speech, settings.slot_frames)
    candidates = _Candidates(library)
    if settings.method == "greedy":
        return _plan_greedy(library, analysis, slots, candidates, settings, previous_frame)
    return _plan_global(library, analysis, slots, candidates, settings, previous_frame)


def _plan_greedy(
    library: Library,
    analysis: feat.AudioAnalysis,
    slots,
    candidates: _Candidates,
    settings: PlannerSettings,
    previous_frame: int | None,
) -> list[Piece]:
    thumbs = library.thumbnails
    fingerprints = library.fingerprints
    norms = np.linalg.norm(fingerprints, axis=1) + 1e-9
    window = max(1, int(round(settings.lookahead_s * feat.FPS)))
    if settings.lookahead_decay_s:
        weights_full = np.exp(-np.arange(window) / (settings.lookahead_decay_s * feat.FPS))
    else:
        weights_full = np.ones(window)
    pieces: list[Piece] = []
    last_frame: int | None = previous_frame
    for start, length, idle in slots:
        valid = candidates.valid(length, idle)
        if idle:
            shortlist = valid
        else:
            upcoming = analysis.features[start : start + window]
            weights = weights_full[: len(upcoming)]
            query = (upcoming * weights[:, None]).sum(axis=0) / weights.sum()
            similarity = fingerprints[valid] @ query / (norms[valid] * (np.linalg.norm(query) + 1e-9))
            shortlist = valid[np.argsort(-similarity, kind="stable")[: settings.top_k]]
        if last_frame is None:
            chosen = shortlist[0]
        else:
            current = thumbs[last_frame].astype(np.int16)
            firsts = thumbs[candidates.starts[shortlist]].astype(np.int16)
            distance = np.abs(firsts - current).mean(axis=(1, 2))
            chosen = shortlist[int(np.argmin(distance))]
        lib_start = int(candidates.starts[chosen])
        pieces.append(Piece(start, length, lib_start, idle))
        last_frame = _frame_index(library, lib_start, length - 1)
    return pieces


class _AcousticCost:
    """Mean weighted squared distance, frame by frame, between new audio and library playback.

    Expanded as |q|^2 + |f|^2 - 2 q.f: per slot, one small matrix product of the library's
    weighted features with the slot's frames, then two cheap gathers, instead of gathering
    every feature of every frame of every candidate (16 times less memory traffic).
    """

    def __init__(self, library_features: np.ndarray, weights: np.ndarray) -> None:
        root = np.sqrt(weights).astype(np.float32)
        self.library = np.ascontiguousarray(library_features * root)
        self.library_norms = (self.library**2).sum(axis=1)
        self.root = root

    def __call__(self, query: np.ndarray, starts: np.ndarray, limit: np.ndarray) -> np.ndarray:
        query = query * self.root
        offsets = np.arange(len(query))
        index = np.minimum(starts[:, None] + offsets[None, :], limit[:, None] - 1)
        lowest, highest = int(index.min()), int(index.max()) + 1
        products = self.library[lowest:highest] @ query.T  # (library frames, slot frames)
        dots = products[index - lowest, offsets[None, :]]
        total = self.library_norms[index].sum(axis=1) - 2 * dots.sum(axis=1) + (query**2).sum()
        return total / len(query)


def _standard_mouths(library: Library) -> np.ndarray | None:
    """Each library frame's opening and width as z-scores over the measured speech frames;
    None for a v1 library (or one with almost nothing measured)."""
    if library.mouth is None:
        return None
    from .mouth import standardise

    measured = library.sources == 0
    if library.mouth_found is not None:
        measured = measured & library.mouth_found
    if measured.sum() < 10:
        return None
    return standardise(library.mouth, measured)


def _join_mouths(library: Library) -> np.ndarray | None:
    """Each library frame's standardised opening (a column), for the mouth term of join costs."""
    mouths = _standard_mouths(library)
    return None if mouths is None else mouths[:, :1]


class _MouthCost:
    """How far a piece's measured mouth is from the mouth the new audio calls for, per frame:
    weighted squared distance of standardised opening and width (both sides have the spread of
    the recording's own mouth), averaged over the slot and scaled by ``mouth_weight``."""

    def __init__(self, library_mouth: np.ndarray, target: np.ndarray, weights: np.ndarray) -> None:
        root = np.sqrt(weights).astype(np.float32)
        self.library = library_mouth * root
        self.target = target * root

    @classmethod
    def of(
        cls, library: Library, analysis: feat.AudioAnalysis, settings: PlannerSettings
    ) -> _MouthCost | None:
        """The cost for this library and audio; None for a v1 library or a zero weight."""
        model = library.mouth_model
        mouths = _standard_mouths(library) if settings.mouth_weight > 0 and model is not None else None
        if mouths is None or model is None:
            return None
        weights = settings.mouth_weight * np.asarray(settings.mouth_dim_weights, dtype=np.float32)
        target = model.predict(analysis.features)
        standard = _standardised(smooth(analysis.features[:, :1], 3)[:, 0])
        if settings.loudness_target > 0:
            beta = settings.loudness_target
            target[:, 0] = (target[:, 0] + beta * standard) / np.sqrt(1.0 + beta**2)
        any_voice = standard
        if analysis.spoken is not None and settings.phoneme_weight > 0:
            weight = settings.phoneme_weight
            any_voice = (standard + weight * _standardised(analysis.spoken)) / np.hypot(1.0, weight)
        other = other_voice_share(library, analysis, settings)
        if other > 0:
            target[:, 0] = (1.0 - other) * target[:, 0] + other * any_voice
            opening_weight = settings.other_voice_mouth_weight * settings.mouth_dim_weights[0]
            weights[0] = (1.0 - other) * weights[0] + other * opening_weight
        return cls(mouths, target, weights)

    def __call__(self, out_start: int, length: int, starts: np.ndarray, limit: np.ndarray) -> np.ndarray:
        offsets = np.arange(length)
        index = np.minimum(starts[:, None] + offsets[None, :], limit[:, None] - 1)
        difference = self.library[index] - self.target[out_start : out_start + length][None]
        return (difference**2).sum(axis=2).mean(axis=1)


def _standardised(track: np.ndarray) -> np.ndarray:
    """A track as z-scores over itself: targets in units of their own spread."""
    return (track - track.mean()) / (track.std() + 1e-6)


def other_voice_share(library: Library, analysis: feat.AudioAnalysis, settings: PlannerSettings) -> float:
    """0 when the new audio sounds like the recording (or either voice is unknown), 1 when it is
    clearly another voice, linear in :func:`engine.features.voice_distance` between
    ``settings.other_voice``."""
    if library.voice is None or analysis.voice is None:
        return 0.0
    near, far = settings.other_voice
    distance = feat.voice_distance(library.voice, analysis.voice)
    return float(np.clip((distance - near) / max(far - near, 1e-6), 0.0, 1.0))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b`` (as one matrix product)."""
    squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def smooth(features: np.ndarray, frames: int) -> np.ndarray:
    """Triangular moving average along time (``frames`` wide, odd); ends are held."""
    if frames <= 1:
        return features
    half = frames // 2
    kernel = np.concatenate([np.arange(1, half + 2), np.arange(half, 0, -1)]).astype(np.float32)
    kernel /= kernel.sum()
    padded = np.pad(features, ((half, half), (0, 0)), mode="edge")
    out = np.zeros_like(features, dtype=np.float32)
    for k, weight in enumerate(kernel):
        out += weight * padded[k : k + len(features)]
    return out


def _plan_global(
    library: Library,
    analysis: feat.AudioAnalysis,
    slots,
    candidates: _Candidates,
    settings: PlannerSettings,
    previous_frame: int | None,
) -> list[Piece]:
    lib_features = smooth(library.features, settings.smooth_frames)
    query_features = smooth(analysis.features, settings.smooth_frames)
    embeddings = library.embeddings
    # Embedding distance approximates the L2 pixel distance of thumbnails; divide to get RMS grey levels.
    pixel_scale = float(np.sqrt(library.thumbnails.shape[1] * library.thumbnails.shape[2]))
    weights = np.asarray(settings.feature_weights, dtype=np.float32)
    acoustic = _AcousticCost(lib_features, weights / weights.mean())
    starts_all = candidates.starts
    source_end = candidates.source_end

    visual = _MouthCost.of(library, analysis, settings)
    join_mouths = _join_mouths(library) if settings.mouth_join_weight > 0 else None

    slot_candidates: list[np.ndarray] = []  # library start frames per slot
    backpointers: list[np.ndarray] = []
    previous_starts: np.ndarray | None = None
    previous_costs: np.ndarray | None = None
    previous_length = 0
    if previous_frame is not None:
        # A virtual slot holding the frame already shown; it continues into previous_frame + 1.
        previous_starts = np.array([previous_frame], dtype=np.int64)
        previous_costs = np.zeros(1)
        previous_length = 1
    for start, length, idle in slots:
        valid = candidates.valid(length, idle)
        valid_starts = starts_all[valid]
        if idle:
            if len(valid_starts) > settings.idle_candidates:
                pick = np.linspace(0, len(valid_starts) - 1, settings.idle_candidates).round().astype(int)
                valid_starts = valid_starts[pick]
            shortlist = valid_starts
        else:
            query = query_features[start : start + length]
            costs = acoustic(query, valid_starts, source_end[valid_starts])
            top = np.argpartition(costs, min(settings.top_k, len(costs) - 1))[: settings.top_k]
            shortlist = valid_starts[top]
            if visual is not None:  # and the pieces whose mouth fits best, all things counted
                costs = costs + visual(start, length, valid_starts, source_end[valid_starts])
                top = np.argpartition(costs, min(settings.top_k, len(costs) - 1))[: settings.top_k]
                shortlist = np.union1d(shortlist, valid_starts[top])
        if previous_starts is not None:
            # Only the best paths so far propose their continuation (a beam): without the cut the
            # candidate sets grow slot after slot along a long run of speech.
            assert previous_costs is not None  # set with previous_starts
            best_paths = previous_starts[np.argsort(previous_costs, kind="stable")[: settings.beam]]
            continuations = best_paths + previous_length
            continuations = continuations[candidates.playable(continuations, length, idle)]
            shortlist = np.unique(np.concatenate([shortlist, continuations]))
        if idle:
            unary = np.zeros(len(shortlist))
        else:
            unary = acoustic(query_features[start : start + length], shortlist, source_end[shortlist])
            if visual is not None:
                unary = unary + visual(start, length, shortlist, source_end[shortlist])
        if previous_starts is None:
            total = unary
            backpointers.append(np.zeros(len(shortlist), dtype=np.int64))
        else:
            assert previous_costs is not None  # set with previous_starts
            ends = np.minimum(previous_starts + previous_length, source_end[previous_starts]) - 1
            distance = _distances(embeddings[ends], embeddings[shortlist]) / pixel_scale
            transition = settings.join_cost + settings.splice_weight * distance
            if join_mouths is not None:  # a join between unlike mouths morphs into a ghost of two
                transition = transition + settings.mouth_join_weight * _distances(
                    join_mouths[ends], join_mouths[shortlist]
                )
            transition[(previous_starts + previous_length)[:, None] == shortlist[None, :]] = 0.0
            paths = previous_costs[:, None] + transition
            best = np.argmin(paths, axis=0)
            total = paths[best, np.arange(len(shortlist))] + unary
            backpointers.append(best)
        slot_candidates.append(shortlist)
        previous_starts, previous_costs, previous_length = shortlist, total, length

    chosen = _backtrack(slot_candidates, backpointers, previous_costs)
    return [Piece(start, length, lib_start, idle) for (start, length, idle), lib_start in zip(slots, chosen)]


def _backtrack(
    slot_candidates: list[np.ndarray], backpointers: list[np.ndarray], final_costs: np.ndarray | None
) -> list[int]:
    """The library start chosen for each slot, back along the cheapest path."""
    if final_costs is None:  # no slots (and no previous frame): nothing to choose
        return []
    choice = int(np.argmin(final_costs))
    chosen = [0] * len(slot_candidates)
    for j in range(len(slot_candidates) - 1, -1, -1):
        chosen[j] = int(slot_candidates[j][choice])
        choice = int(backpointers[j][choice])
    # (with previous_frame, backpointers[0] point into the virtual slot and are not needed)
    return chosen
