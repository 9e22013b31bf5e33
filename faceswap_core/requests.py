"""One swap, written down: :class:`SwapRequest` is what the CLI, the app, its API and Python callers build.

A request names the photo, the faces (by index, ``"all"``, or ``"reference"``: the face most like a
photo of the person), the person and overrides for each face, the mask, the settings and the seed.
It is validated in one place, round-trips through JSON with a schema version, and :func:`resolve`
turns it into per-face plans (:class:`~faceswap_core.engine.FaceTarget`) for the engine. A result's
record is the request (its public form: files by name and content hash, never a server path) plus
what happened, so ``replay`` can run it again.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceswap_core.errors import NoFaceError, SettingsError, first_line
from faceswap_core.settings import (
    IDENTITY_SCALE,
    MASK_OCCLUSION,
    MAX_FACES,
    MAX_IDENTITY_PHOTOS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    STRENGTH,
    MaskSettings,
    SwapSettings,
)

if TYPE_CHECKING:
    from PIL import Image

    from faceswap_core.engine import FaceTarget
    from faceswap_core.faces.detect import Face
    from faceswap_core.images import ImageInput
    from faceswap_core.people import People

SCHEMA_VERSION = 1
FACE_ALL = "all"  # every face not named by index
FACE_REFERENCE = "reference"  # the face most like ``SwapRequest.reference_face``
MAX_REQUEST_CHARS = 100_000  # a request is a few hundred bytes; this bounds what a hostile one costs to parse
MAX_NAME_CHARS = 300  # person names and file references
MAX_EXTRAS_CHARS = 10_000  # plug-in options, as JSON


@dataclass(frozen=True)
class FaceRequest:
    """One face and what it becomes; each ``None`` takes the request's value.

    ``face``: an index among the detected faces (0 = largest), ``"all"``, ``"reference"``, or None
    (wherever the mask paints). ``person``: a person's name ("" = the base model, no person).
    ``likeness``: the weight of the person's photos (0 = off).
    """

    face: int | str | None = 0
    person: str | None = None
    strength: float | None = None
    prompt: str | None = None
    likeness: float | None = None
    seed: int | None = None

    def validate(self) -> None:
        if self.face not in (None, FACE_ALL, FACE_REFERENCE) and not (_is_int(self.face) and self.face >= 0):
            raise SettingsError(f"face must be an index (0, 1, ...), 'all' or 'reference', got {_short(self.face)}")
        if self.strength is not None:
            STRENGTH.check("strength", self.strength)
        if self.likeness is not None:
            IDENTITY_SCALE.check("likeness", self.likeness)
        _check_seed(self.seed)


@dataclass(frozen=True)
class SwapRequest:
    """A whole swap: the photo, the faces and what each becomes, the mask, the settings and the seed.

    ``settings`` are every face's defaults (``settings.seed`` the request's seed; a face may override
    it). ``image``, ``mask`` and ``reference_face`` are file paths in JSON; Python callers may pass
    images. ``mask`` is one painted mask shared by the chosen faces (255 = replace).
    """

    image: ImageInput
    faces: tuple[FaceRequest, ...] = ()  # () = the largest face, or wherever the mask paints
    person: str | None = None  # every face's person unless it names its own; None: settings.lora as given
    settings: SwapSettings = SwapSettings()
    mask: ImageInput | None = None
    mask_settings: MaskSettings = MaskSettings()
    reference_face: ImageInput | None = None
    landmarks: str | None = None  # this call's landmark backend; None: the engine's (``--landmarks``)
    version: int = SCHEMA_VERSION

    def validate(self) -> SwapRequest:
        if self.version != SCHEMA_VERSION:
            raise SettingsError(f"request version {_short(self.version)} is not supported (this is {SCHEMA_VERSION})")
        if len(self.faces) > MAX_FACES:
            raise SettingsError(f"at most {MAX_FACES} faces can be replaced in one photo, got {len(self.faces)}")
        for face in self.faces:
            face.validate()
        indices = [face.face for face in self.faces if _is_int(face.face)]
        repeated = sorted({index for index in indices if indices.count(index) > 1})
        if repeated:
            raise SettingsError(f"face {repeated[0]} is chosen more than once")
        if sum(face.face in (FACE_ALL, None) for face in self.faces) > 1:
            raise SettingsError("'all' (or a face chosen by the mask alone) can be given once")
        if any(face.face == FACE_REFERENCE for face in self.faces) and self.reference_face is None:
            raise SettingsError("face 'reference' needs a reference photo of the person to find")
        if self.mask is not None and len(self.faces) > 1 and any(face.face is None for face in self.faces):
            raise SettingsError("a mask shared by several faces needs a face index for each of them")
        if self.landmarks is not None:
            from faceswap_core.faces.detect import check_backend

            check_backend(self.landmarks)
        self.settings.validate()
        self.mask_settings.validate()
        return self

    def seeded(self) -> SwapRequest:
        """This request with a fixed seed (a random one when none is set), so its record reproduces it."""
        if self.settings.seed is not None:
            return self
        return replace(self, settings=replace(self.settings, seed=secrets.randbelow(MAX_SEED + 1)))

    # --- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The request as JSON values; its files must be paths (an image in memory has no JSON form)."""
        return {
            "version": self.version,
            "image": path_text(self.image, "image"),
            "faces": [_drop_none(_fields_of(face)) for face in self.faces],
            "person": self.person,
            "settings": _settings_dict(self.settings),
            "mask": None if self.mask is None else path_text(self.mask, "mask"),
            "mask_settings": _fields_of(self.mask_settings),
            "reference_face": None if self.reference_face is None else path_text(self.reference_face, "reference"),
            "landmarks": self.landmarks,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, *, files: Mapping[str, Any] | None = None) -> SwapRequest:
        """A request from JSON values, checked field by field: unknown keys, wrong types and overlong lists
        are refused with one message naming the field. ``files`` supplies ``image``, ``mask``,
        ``reference_face`` and ``identity_photos`` from elsewhere (an upload), overriding the JSON."""
        data = json_object(data, "request")
        json_known(data, _REQUEST_KEYS, "request")
        given = dict(files or {})
        version = data.get("version", SCHEMA_VERSION)
        if not _is_int(version):
            raise SettingsError(f"request version must be a whole number, got {_short(version)}")
        faces = _list(data.get("faces", []), "faces", MAX_FACES)
        settings = _settings(data.get("settings", {}), given.get("identity_photos"))
        mask_settings = json_object(data.get("mask_settings", {}), "mask_settings")
        json_known(mask_settings, {"grow", "feather", "occlusion"}, "mask_settings")
        image = given.get("image", data.get("image"))
        if image is None:
            raise SettingsError("request: no image was given")
        request = cls(
            image=image if "image" in given else _name(image, "image"),
            faces=tuple(_face(item, i) for i, item in enumerate(faces)),
            person=_optional_name(data.get("person"), "person"),
            settings=settings,
            mask=given["mask"] if "mask" in given else _optional_name(data.get("mask"), "mask"),
            mask_settings=MaskSettings(
                grow=_optional_number(mask_settings.get("grow"), "mask_settings.grow"),
                feather=_optional_number(mask_settings.get("feather"), "mask_settings.feather"),
                occlusion=_bool(mask_settings.get("occlusion", MASK_OCCLUSION), "mask_settings.occlusion"),
            ),
            reference_face=given["reference_face"]
            if "reference_face" in given
            else _optional_name(data.get("reference_face"), "reference_face"),
            landmarks=data.get("landmarks"),
            version=version,
        )
        return request.validate()

    @classmethod
    def from_json(cls, text: str | bytes, *, files: Mapping[str, Any] | None = None) -> SwapRequest:
        return cls.from_dict(parse_json(text, "request"), files=files)

    # --- the record ----------------------------------------------------------------------------
    def public(self, hashes: Mapping[str, str]) -> dict[str, Any]:
        """The request as a record shows it: files by name and content hash (of the pixels used), never a
        server path. ``hashes`` holds ``image``, ``mask`` and ``reference_face`` as the engine computed them."""
        named = replace(
            self,
            image=_label(self.image),
            mask=None if self.mask is None else _label(self.mask),
            reference_face=None if self.reference_face is None else _label(self.reference_face),
            settings=replace(self.settings, identity_photos=tuple(map(_label, self.settings.identity_photos))),
        )
        entry = named.to_dict()
        for key in ("image", "mask", "reference_face"):
            if entry[key] is not None:
                entry[key] = {"name": entry[key], "sha256": hashes.get(key)}
        return entry


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON with a clear one-line error for everything a hostile sender can try: size, depth, NaN, huge ints."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise SettingsError(f"{what} must be JSON text, got {_short(text)}")
    if len(text) > MAX_REQUEST_CHARS:
        raise SettingsError(f"{what} is {len(text)} characters long; at most {MAX_REQUEST_CHARS} are allowed")

    def refuse(constant: str) -> Any:
        raise SettingsError(f"{what}: {constant} is not a number a request may hold")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as err:
        raise SettingsError(f"{what} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise SettingsError(f"{what} is nested too deeply") from None
    except ValueError as err:  # e.g. an integer of thousands of digits
        raise SettingsError(f"{what}: {first_line(err, 120)}") from None


# --- resolving: a request -> per-face plans -------------------------------------------------------
def resolve(
    request: SwapRequest,
    faces: Sequence[Face],
    people: People | None,
    picture: Image.Image | None = None,
) -> list[FaceTarget]:
    """One :class:`FaceTarget` per face to repaint, in the order the request names them; ``all`` adds every
    face not named by index, ``reference`` the face most like the reference photo.

    ``faces`` are the photo's detected faces (largest first); ``people`` turns names into settings.
    """
    from faceswap_core.engine import FaceTarget

    chosen = request.faces or (FaceRequest(0 if request.mask is None else None),)
    named = {face.face for face in chosen if _is_int(face.face)}
    targets: list[FaceTarget] = []
    for face in chosen:
        settings = face_settings(request, face, people)
        if face.face == FACE_ALL:
            if not faces:
                raise NoFaceError("target image: no face found for 'all'; paint over the faces to replace instead")
            person = _person(request, face)
            targets.extend(FaceTarget(settings, i, person=person) for i in range(len(faces)) if i not in named)
        elif face.face == FACE_REFERENCE:
            index = reference_index(request.reference_face, faces, picture)
            if index in named:
                raise SettingsError(f"the reference photo's face is face {index}, which is also chosen by index")
            targets.append(FaceTarget(settings, index, person=_person(request, face)))
        else:
            targets.append(FaceTarget(settings, face.face, person=_person(request, face)))  # type: ignore[arg-type]
    return targets


def reference_index(reference: ImageInput | None, faces: Sequence[Face], picture: Image.Image | None) -> int:
    """The face most like the person in ``reference`` (dlib descriptor distance): "the person in this photo"."""
    from faceswap_core.faces.identity import IdentityScorer

    if not faces or picture is None:
        raise NoFaceError("target image: no face found to match the reference photo")
    scorer = IdentityScorer([reference])  # type: ignore[list-item]
    distances = [scorer.distance(picture, face) for face in faces]
    return min(range(len(faces)), key=distances.__getitem__)


def needs_faces(request: SwapRequest) -> bool:
    """Whether resolving the request needs the photo's faces (any face chosen other than by the mask alone)."""
    return not request.faces and request.mask is None or any(face.face is not None for face in request.faces)


def _person(request: SwapRequest, face: FaceRequest) -> str | None:
    return face.person if face.person is not None else request.person


def face_settings(request: SwapRequest, face: FaceRequest, people: People | None) -> SwapSettings:
    """The request's settings with the face's overrides and its person's LoRA and photos."""
    base = request.settings
    overrides = {"strength": face.strength, "prompt": face.prompt, "seed": face.seed}
    base = replace(base, **{name: value for name, value in overrides.items() if value is not None})
    who = _person(request, face)
    if who is None:
        if face.likeness is None:
            return base
        photos = base.identity_photos if face.likeness > 0 else ()
        return replace(base, identity_photos=photos, identity_scale=face.likeness if photos else None)
    from faceswap_core.people import Person

    if who == "":
        person = Person("")
    elif people is None:
        raise SettingsError(f"person {who!r} cannot be found without a people folder")
    else:
        person = people.resolve(who)
    return person.settings(base, face.likeness if face.likeness is not None else base.identity_scale)


# --- JSON field checks ----------------------------------------------------------------------------
_REQUEST_KEYS = {
    "version",
    "image",
    "faces",
    "person",
    "settings",
    "mask",
    "mask_settings",
    "reference_face",
    "landmarks",
}
_FACE_KEYS = {"face", "person", "strength", "prompt", "likeness", "seed"}


def _face(item: Any, position: int) -> FaceRequest:
    where = f"faces[{position}]"
    data = json_object(item, where)
    json_known(data, _FACE_KEYS, where)
    face = data.get("face", 0)
    if not (face is None or face in (FACE_ALL, FACE_REFERENCE) or _is_int(face)):
        raise SettingsError(f"{where}.face must be an index (0, 1, ...), 'all' or 'reference', got {_short(face)}")
    return FaceRequest(
        face=face,
        person=_optional_name(data.get("person"), f"{where}.person"),
        strength=_optional_number(data.get("strength"), f"{where}.strength"),
        prompt=_optional_text(data.get("prompt"), f"{where}.prompt"),
        likeness=_optional_number(data.get("likeness"), f"{where}.likeness"),
        seed=_optional_int(data.get("seed"), f"{where}.seed"),
    )


def _settings(value: Any, identity_photos: Any) -> SwapSettings:
    data = json_object(value, "settings")
    names = {f.name for f in fields(SwapSettings)}
    json_known(data, names, "settings")
    default = SwapSettings()
    checks: dict[str, Callable[[Any, str], Any]] = {
        "prompt": _text,
        "negative_prompt": _text,
        "strength": json_number,
        "padding": json_number,
        "steps": json_int,
        "guidance": json_number,
        "seed": _optional_int,
        "lora": _optional_name,
        "lora_scale": json_number,
        "color_match": _bool,
        "identity_photos": _photos,
        "identity_scale": _optional_number,
        "fast": _bool,
        "keep_expression": json_number,
        "dynamic_strength": _bool,
        "extras": _extras,
    }
    values = {name: checks[name](data[name], f"settings.{name}") for name in data}
    if identity_photos is not None:
        values["identity_photos"] = tuple(str(photo) for photo in identity_photos)
        _photos(list(values["identity_photos"]), "identity photos")
    return replace(default, **values)


def _settings_dict(settings: SwapSettings) -> dict[str, Any]:
    values = _fields_of(settings)
    values["identity_photos"] = list(settings.identity_photos)
    values["extras"] = dict(settings.extras)
    return values


def _fields_of(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None or key == "face"}


def json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be a JSON object, got {_short(value)}")
    return value


def _list(value: Any, where: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise SettingsError(f"{where} must be a JSON list, got {_short(value)}")
    if len(value) > most:
        raise SettingsError(f"{where}: at most {most} entries are allowed, got {len(value)}")
    return value


def json_known(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        shown = ", ".join(key[:40] for key in unknown[:5])
        raise SettingsError(f"{where}: unknown field(s) {shown} (allowed: {', '.join(sorted(allowed))})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError(f"{where} must be a number, got {_short(value)}")
    return float(value)


def _optional_number(value: Any, where: str) -> float | None:
    return None if value is None else json_number(value, where)


def json_int(value: Any, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_int(value):
        raise SettingsError(f"{where} must be a whole number, got {_short(value)}")
    return value


def _optional_int(value: Any, where: str) -> int | None:
    return None if value is None else json_int(value, where)


def _check_seed(seed: Any) -> None:
    if seed is not None and not (_is_int(seed) and 0 <= seed <= MAX_SEED):
        raise SettingsError(f"seed must be between 0 and {MAX_SEED}, got {_short(seed)}")


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where} must be true or false, got {_short(value)}")
    return value


def checked_text(value: Any, where: str, *, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """A string of at most ``max_chars`` characters, or a message naming the field (the app's guards use it too)."""
    if not isinstance(value, str):
        raise SettingsError(f"{where} must be text, got {_short(value)}")
    if len(value) > max_chars:
        raise SettingsError(f"{where} is {len(value)} characters long; at most {max_chars} are allowed")
    return value


def _text(value: Any, where: str) -> str:
    return checked_text(value, where)


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise SettingsError(f"{where} must be a name of at most {MAX_NAME_CHARS} characters, got {_short(value)}")
    return value


def _optional_name(value: Any, where: str) -> str | None:
    return None if value is None else _name(value, where)


def _photos(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where, MAX_IDENTITY_PHOTOS)
    return tuple(_name(item, f"{where}[{i}]") for i, item in enumerate(items))


def _extras(value: Any, where: str) -> dict[str, Any]:
    data = json_object(value, where)
    if len(json.dumps(data)) > MAX_EXTRAS_CHARS:
        raise SettingsError(f"{where}: at most {MAX_EXTRAS_CHARS} characters of options are allowed")
    return data


def _is_path(value: Any) -> bool:
    return isinstance(value, str | Path)


def path_text(value: Any, what: str) -> str:
    if not _is_path(value):
        raise SettingsError(f"the {what} is an image in memory; save it to a file to write the request as JSON")
    return str(value)


def _label(value: Any) -> str:
    """A file's own name (no folder: records never show server paths), or what an in-memory image is."""
    return Path(str(value)).name if _is_path(value) else "(in memory)"


def pixel_hash(image: Image.Image) -> str:
    """The content hash of decoded pixels: the same for a file and for the image a browser sent of it."""
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:40] + "..."
