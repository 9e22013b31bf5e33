"""A clip's swap, written down: :class:`ClipRequest` is a :class:`SwapRequest` whose photo is a clip.

The faces, the people (one per face if wanted), the settings and the seed are the photo request's
own fields, checked by the same code; a clip adds the frame its face numbers refer to and how the
repaints are held steady. In JSON it is the photo request with ``clip`` for ``image``, no painted
mask (a clip is masked from each frame's landmarks) and the clip's fields beside the rest, so the
CLI (``video --request``), the app's ``/swap_video`` and Python callers hand over the same thing.
:func:`plan_clip` turns it into the :class:`~faceswap_core.video.VideoSettings` a job runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faceswap_core.errors import SettingsError
from faceswap_core.requests import (
    FACE_ALL,
    FACE_REFERENCE,
    FaceRequest,
    SwapRequest,
    face_settings,
    json_int,
    json_number,
    json_object,
    parse_json,
    path_text,
)
from faceswap_core.settings import (
    MAX_FACES,
    VIDEO_DETECT_EVERY,
    VIDEO_TEMPORAL_BLEND,
    VIDEO_TRACK_MAX_GAP_S,
)

if TYPE_CHECKING:
    from faceswap_core.people import People
    from faceswap_core.video import VideoSettings

_CLIP_KEYS = {"clip", "pick_s", "temporal_blend", "detect_every", "max_gap_s"}


@dataclass(frozen=True)
class ClipRequest:
    """``swap.image`` is the clip; ``swap.faces`` are numbers on the frame at ``pick_s`` (largest first),
    ``all`` (every face there) or ``reference`` (the person in ``swap.reference_face``, wherever they are)."""

    swap: SwapRequest
    pick_s: float = 0.0
    temporal_blend: float = VIDEO_TEMPORAL_BLEND.default
    detect_every: int = VIDEO_DETECT_EVERY
    max_gap_s: float = VIDEO_TRACK_MAX_GAP_S

    def validate(self) -> ClipRequest:
        self.swap.validate()
        faces = self.swap.faces
        if self.swap.mask is not None:
            raise SettingsError("a clip is masked from every frame's face; a painted mask is for photos")
        if any(face.face is None for face in faces):
            raise SettingsError("each face of a clip is a number on the picked frame, 'all' or 'reference'")
        if any(face.face == FACE_REFERENCE for face in faces) and len(faces) > 1:
            raise SettingsError("a clip follows the person of the reference photo alone; leave out the other faces")
        if self.swap.landmarks is not None:
            raise SettingsError("a clip uses the app's landmark backend (--landmarks); leave out 'landmarks'")
        VIDEO_TEMPORAL_BLEND.check("temporal blend", self.temporal_blend)
        if not 1 <= self.detect_every <= 30:
            raise SettingsError(f"detect every must be between 1 and 30 frames, got {self.detect_every}")
        if not 0 <= self.max_gap_s <= 5:
            raise SettingsError(f"the longest gap filled must be between 0 and 5 s, got {self.max_gap_s:g}")
        if not self.pick_s >= 0:
            raise SettingsError(f"the frame to pick faces on must be at 0 s or later, got {self.pick_s:g}")
        return self

    @property
    def clip(self) -> str:
        return path_text(self.swap.image, "clip")

    def to_dict(self) -> dict[str, Any]:
        entry = self.swap.to_dict()
        entry["clip"] = entry.pop("image")
        del entry["mask"], entry["landmarks"]
        entry.update(
            pick_s=self.pick_s,
            temporal_blend=self.temporal_blend,
            detect_every=self.detect_every,
            max_gap_s=self.max_gap_s,
        )
        return entry

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, *, files: Mapping[str, Any] | None = None) -> ClipRequest:
        """Checked as a photo request is (one message naming the field); ``files`` supplies ``clip``,
        ``reference_face`` and ``identity_photos`` from an upload, overriding the JSON."""
        values = dict(json_object(data, "request"))
        clip_values = {key: values.pop(key) for key in _CLIP_KEYS & values.keys()}
        for key in ("image", "mask", "landmarks"):
            if key in values:
                raise SettingsError(f"request: a clip's request names its 'clip' and takes no {key!r}")
        given = dict(files or {})
        if "clip" in given:
            given["image"] = given.pop("clip")
        if "clip" in clip_values:
            values["image"] = clip_values.pop("clip")
        swap = SwapRequest.from_dict(values, files=given)
        default = cls(swap)
        return cls(
            swap,
            pick_s=json_number(clip_values.get("pick_s", default.pick_s), "pick_s"),
            temporal_blend=json_number(clip_values.get("temporal_blend", default.temporal_blend), "temporal_blend"),
            detect_every=json_int(clip_values.get("detect_every", default.detect_every), "detect_every"),
            max_gap_s=json_number(clip_values.get("max_gap_s", default.max_gap_s), "max_gap_s"),
        ).validate()

    @classmethod
    def from_json(cls, text: str | bytes, *, files: Mapping[str, Any] | None = None) -> ClipRequest:
        return cls.from_dict(parse_json(text, "request"), files=files)


def plan_clip(request: ClipRequest, people: People | None, count_faces: Callable[[], int]) -> VideoSettings:
    """The settings a clip's job runs: one :class:`SwapSettings` per followed face, its person resolved.

    ``count_faces`` counts the faces on the picked frame; it is only called for ``all``.
    """
    from faceswap_core.video import VideoSettings

    request.validate()
    swap = request.swap
    chosen = swap.faces or (FaceRequest(0),)
    reference = chosen[0] if chosen[0].face == FACE_REFERENCE else None
    numbered: list[tuple[int, FaceRequest]] = []
    if reference is None:
        named = {face.face for face in chosen if isinstance(face.face, int)}
        for face in chosen:
            if face.face == FACE_ALL:
                numbered += [(index, face) for index in range(count_faces()) if index not in named]
            else:
                numbered.append((face.face, face))  # type: ignore[arg-type]
        if not numbered:
            raise SettingsError("no face on the picked frame to replace")
        if len(numbered) > MAX_FACES:
            raise SettingsError(f"at most {MAX_FACES} faces can be followed in one clip, got {len(numbered)}")
    each = [face_settings(swap, face, people) for face in ([reference] if reference else [f for _, f in numbered])]
    return VideoSettings(
        swap=each[0],
        faces=() if reference else tuple(index for index, _ in numbered),
        pick_s=request.pick_s,
        reference=None if reference is None else path_text(swap.reference_face, "reference photo"),
        temporal_blend=request.temporal_blend,
        detect_every=request.detect_every,
        max_gap_s=request.max_gap_s,
        mask=swap.mask_settings,
        face_swaps=tuple(each) if any(one != each[0] for one in each) else (),
    )
