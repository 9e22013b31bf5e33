"""The user's words for the expert numbers the app shows (issue 21, item 8): a likeness in per cent instead
of a descriptor distance; the distance itself stays in the result's parameters and the tooltips."""

from __future__ import annotations

from faceswap_core.settings import SAME_PERSON_DISTANCE


def likeness_percent(distance: float) -> int:
    """0-100 from a face-descriptor distance: 100 is the same photo, 50 the same-person threshold, 0 far apart."""
    return round(100 * min(1.0, max(0.0, 1.0 - distance / (2 * SAME_PERSON_DISTANCE))))


def likeness(distance: float) -> str:
    """``likeness 67 %, close match``: the per cent and a word for it (a close match is clearly the same person)."""
    if distance < SAME_PERSON_DISTANCE - 0.1:
        verdict = "close match"
    elif distance < SAME_PERSON_DISTANCE:
        verdict = "some likeness"
    else:
        verdict = "not alike"
    return f"likeness {likeness_percent(distance)} %, {verdict}"
