"""The rig's units: frame rate, the mouth's colours and geometry, shared by drawing and measuring.

The definitions are in the package docstring (:mod:`engine.synthetic`).
"""

from __future__ import annotations

from ..features import FPS  # noqa: F401 (the rig runs at the engine's frame rate)

MOUTH_INTERIOR_BGR: tuple[int, int, int] = (60, 0, 240)
"""Saturated red painted only inside the open mouth, in both styles (see :func:`measure_mouth`)."""

MOUTH_LIP_BGR: tuple[int, int, int] = (120, 0, 140)
"""Dark wine painted only on the lips, so the mouth's width can be read even when it is closed."""

STYLES = ("test", "fox")
"""Looks the rig can draw: ``"test"`` (a plain face) and ``"fox"`` (the demo character)."""

# --- mouth geometry, in pixels at 512 (the measurable definition of the units) -------------------
MOUTH_HALF_WIDTH_MIN = 30.0
"""Outer half-width of the lips at ``width = 0`` (a rounded "u")."""
MOUTH_HALF_WIDTH_MAX = 62.0
"""Outer half-width of the lips at ``width = 1`` (a spread "i")."""
MOUTH_OPEN_MAX = 60.0
"""Height of the open interior at ``opening = 1``."""
MOUTH_LIP = 5.0
"""Thickness of the upper and of the lower lip; a closed mouth is a band twice this thick."""
MOUTH_LIP_SIDE = 6.0
"""Thickness of the lips at the mouth corners (outer half-width minus interior half-width)."""
_MOUTH_UP = 0.2  # share of the opening that lifts the upper lip; the jaw drops the rest
_MOUTH_EXPONENT = 2.4  # superellipse exponent: blunt corners, so the extent is stable under AA
_MOUTH_POINTS = 40  # points per mouth edge

_REFERENCE_SIZE = 512
_SHIFT = 4  # sub-pixel bits for cv2 drawing: smooth motion of pupils and mouth
_ONE = 1 << _SHIFT
