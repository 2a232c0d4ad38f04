"""How open the mouth is for each speech sound, for audio whose sounds are known.

Synthesised speech (a story, a reply) comes with its phonemes and their times
(:class:`engine.speech.SpeechEvent`). They say what the mouth must do more surely than any
model of the audio can: the lips close on p, b and m, barely part on f and v, open wide on
"a". :func:`opening_track` turns the phoneme timeline into an opening per output frame
(0 closed .. 1 wide open), which the planner follows when the new audio is in another voice
than the recording's (:mod:`engine.planner`).

Phonemes are IPA as eSpeak NG names them (stress marks and length included, ``"_"`` for a
pause); a sound is classed by its letters, so the table serves every language eSpeak speaks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .features import FPS

PAUSE = "_"
CLOSED = frozenset("pbmʙɓ")
"""Bilabials: the lips meet."""
LIP_TO_TEETH = frozenset("fvɱʋ")
OPEN_VOWELS = frozenset("aɑɐæʌɒɔɶ")
MID_VOWELS = frozenset("eɛəɘɜɚɝoøœɵɤ")
CLOSE_VOWELS = frozenset("iɪyʏuʊɨʉɯ")
ROUNDED = frozenset("wɥʍ")
OPENING = {
    "closed": 0.0,
    "lip-teeth": 0.15,
    "rounded": 0.2,
    "consonant": 0.3,
    "close": 0.4,
    "mid": 0.65,
    "open": 1.0,
}
"""Opening per class of sound, from the jaw and lip positions of the classic viseme sets."""
LEAD_S = 0.04
"""The lips move a little before the sound they make (coarticulation): the track leads by this."""
_IGNORED = frozenset("ˈˌːˑ̃ʲʰʷ̩̯͡‿-")


def sound_class(phoneme: str) -> str:
    """The viseme class of one IPA phoneme (see :data:`OPENING`); pauses are ``"closed"``."""
    letters = [c for c in phoneme if c not in _IGNORED]
    if not letters or letters[0] == PAUSE:
        return "closed"
    first = letters[0]
    # A vowel anywhere decides (a syllabic "əl", a diphthong "aɪ" by its first, wider part).
    for letter in letters:
        if letter in OPEN_VOWELS:
            return "open"
        if letter in MID_VOWELS:
            return "mid"
        if letter in CLOSE_VOWELS:
            return "close"
    if first in CLOSED:
        return "closed"
    if first in LIP_TO_TEETH:
        return "lip-teeth"
    if first in ROUNDED:
        return "rounded"
    return "consonant"


def _sounding(phonemes: Sequence[tuple[float, str]], n_frames: int, lead_s: float) -> np.ndarray:
    """Index into ``phonemes`` of the sound on each frame, ``lead_s`` early; -1 before the first."""
    starts = np.array([time for time, _ in phonemes], dtype=np.float64)
    times = np.arange(max(n_frames, 0)) / FPS + lead_s
    return np.searchsorted(starts, times, side="right") - 1


def frame_sounds(phonemes: Sequence[tuple[float, str]], n_frames: int, *, lead_s: float = 0.0) -> list[str]:
    """The phoneme sounding on each of ``n_frames`` output frames (``lead_s`` seconds early);
    :data:`PAUSE` before the first. ``phonemes`` as for :func:`opening_track`."""
    if not phonemes:
        return [PAUSE] * max(n_frames, 0)
    return [phonemes[i][1] if i >= 0 else PAUSE for i in _sounding(phonemes, n_frames, lead_s)]


def opening_track(phonemes: Sequence[tuple[float, str]], n_frames: int) -> np.ndarray:
    """The mouth opening the phonemes call for on each of ``n_frames`` output frames.

    Parameters
    ----------
    phonemes : sequence of (float, str)
        (start in seconds from the first frame, IPA phoneme), in time order; each sound lasts
        until the next starts. Before the first, the mouth is closed.
    n_frames : int
        Frames at :data:`engine.features.FPS`.

    Returns
    -------
    ndarray, shape (n_frames,), float32
        0 (closed) .. 1 (wide open), smoothed over three frames: a mouth moves between sounds,
        it does not jump.
    """
    if not phonemes or n_frames <= 0:
        return np.zeros(max(n_frames, 0), np.float32)
    values = np.array([OPENING[sound_class(name)] for _, name in phonemes], dtype=np.float32)
    index = _sounding(phonemes, n_frames, LEAD_S)
    track = np.where(index >= 0, values[np.clip(index, 0, None)], 0.0).astype(np.float32)
    padded = np.pad(track, 1, mode="edge")
    return (0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]).astype(np.float32)
