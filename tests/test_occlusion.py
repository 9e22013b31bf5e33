"""Occlusion-aware automatic masks on occluders with a known alpha, and the landmark backend switch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bench.occluders import composite
from faceswap_core.errors import SettingsError
from faceswap_core.faces import detect_faces
from faceswap_core.faces.detect import Face
from faceswap_core.faces.masks import combine_masks, face_mask, visible_mask
from faceswap_core.regions import face_region
from faceswap_core.settings import MaskSettings


@pytest.fixture(scope="module")
def astronaut_face(astronaut: Image.Image) -> Face:
    return detect_faces(astronaut)[0]


@pytest.fixture(scope="module")
def hand_scene(astronaut: Image.Image, astronaut_face: Face) -> tuple[Image.Image, np.ndarray, Face]:
    """The astronaut with a hand over her cheek, its alpha, and her face found on that photo."""
    scene, alpha = composite(astronaut, "hand", astronaut_face)
    [face] = detect_faces(scene)
    return scene, alpha, face


def test_a_hand_over_a_cheek_is_left_out_of_the_mask(hand_scene: tuple[Image.Image, np.ndarray, Face]) -> None:
    scene, alpha, face = hand_scene
    plain = np.asarray(face_mask(scene.size, face))
    aware = np.asarray(face_mask(scene.size, face, image=scene))
    region = plain >= 128
    hand = region & (alpha >= 128)
    visible = region & (alpha == 0)
    assert hand.sum() > 0.1 * region.sum()  # the hand really covers a good part of the face
    assert (plain[hand] >= 128).all()  # the landmark mask alone would repaint it
    assert (aware[hand] < 128).mean() >= 0.9
    assert (aware[hand] == 0).mean() >= 0.7  # most of the hand comes back exactly as it was
    assert (aware[visible] >= 128).mean() >= 0.9
    assert (aware <= plain).all()  # occlusion only takes pixels away


def _shares(photo: Image.Image, kind: str, blur: float = 0.0) -> tuple[float, float, float]:
    """The occluder composited over ``photo``'s face (the scene then blurred by ``blur`` pixels):
    (occluder left out, visible face kept, face seen through its clear parts kept), over the landmark
    mask of the face found on the composited photo."""
    from bench.occluders import LENS_ALPHA

    scene, alpha = composite(photo, kind, detect_faces(photo)[0])
    scene = scene.filter(ImageFilter.GaussianBlur(blur)) if blur else scene
    face = detect_faces(scene)[0]
    plain = np.asarray(face_mask(scene.size, face))
    aware = np.asarray(face_mask(scene.size, face, image=scene))
    region = plain >= 128
    covered, visible, lens = region & (alpha >= 128), region & (alpha == 0), region & (alpha == LENS_ALPHA)
    through = float((aware[lens] >= 128).mean()) if lens.any() else float("nan")
    return float((aware[covered] < 128).mean()), float((aware[visible] >= 128).mean()), through


@pytest.mark.parametrize("kind", ["cup", "glasses"])
def test_a_cup_and_glasses_on_the_seed_targets_meet_the_goals(seed_targets: dict[str, Path], kind: str) -> None:
    shares = np.array([_shares(Image.open(path).convert("RGB"), kind) for path in seed_targets.values()])
    left_out, kept, _ = shares.mean(axis=0)
    assert left_out >= 0.9 and kept >= 0.95, (kind, shares.round(3).tolist())
    assert shares[:, 1].min() >= 0.9  # no photo loses a tenth of its visible face


def test_glasses_frames_are_left_out_and_the_face_behind_the_lenses_kept(astronaut: Image.Image) -> None:
    left_out, kept, through = _shares(astronaut, "glasses")
    assert left_out >= 0.9 and kept >= 0.95  # not a seam band around the thin frame
    assert through >= 0.9  # the lenses are clear: the eyes behind them are repainted


def test_a_cup_is_left_out_with_its_skin_coloured_inside(astronaut: Image.Image) -> None:
    left_out, kept, _ = _shares(astronaut, "cup")
    # Her face is 92 px wide and MediaPipe puts her hidden chin on the coffee: the cup's white rim band is
    # left in (0.80 measured; the seed targets meet 0.9, above). Colour alone found 0.63: the coffee only.
    assert left_out >= 0.75 and kept >= 0.95


def test_no_occluder_leaves_the_mask_unchanged(
    astronaut: Image.Image, seed_sources: list[Path], seed_targets: dict[str, Path]
) -> None:
    """Every real face we have, with nothing in front of it: shadows on a cheek, stubble, brows and hair
    at the face's edge differ from the skin in colour, but fade into it, so none is taken for an object."""
    photos = [astronaut] + [Image.open(path).convert("RGB") for path in [*seed_sources, *seed_targets.values()]]
    for photo in photos:
        for face in detect_faces(photo):
            assert np.array_equal(
                np.asarray(face_mask(photo.size, face, image=photo)), np.asarray(face_mask(photo.size, face))
            )


def test_a_photographed_hand_over_a_cheek_is_left_out(astronaut: Image.Image, seed_targets: dict[str, Path]) -> None:
    """A real fist (HaGRID), skin against skin: found by its landmarks, fitted to its own outline."""
    shares = np.array(
        [
            _shares(photo, "real hand")[:2]
            for photo in [astronaut, *(Image.open(p).convert("RGB") for p in seed_targets.values())]
        ]
    )
    left_out, kept = shares.mean(axis=0)
    assert left_out >= 0.9 and kept >= 0.95, shares.round(3).tolist()
    assert shares.min() >= 0.85


def test_objects_in_a_soft_photo_are_still_left_out(seed_targets: dict[str, Path]) -> None:
    """Out of focus or upscaled, every edge is soft: an object's edge is judged against the photo's own."""
    photos = [Image.open(path).convert("RGB") for path in seed_targets.values()]
    for kind, goal in (("microphone", 0.9), ("cup", 0.8)):
        shares = np.array([_shares(photo, kind, blur=1.5)[:2] for photo in photos])
        assert shares[:, 0].mean() >= goal and shares[:, 1].mean() >= 0.9, (kind, shares.round(3).tolist())


def test_the_same_photo_gives_the_same_mask(hand_scene: tuple[Image.Image, np.ndarray, Face]) -> None:
    scene, _, face = hand_scene
    first = np.asarray(face_mask(scene.size, face, image=scene))
    assert np.array_equal(first, np.asarray(face_mask(scene.size, face, image=scene)))


def test_the_switch_turns_occlusion_off(hand_scene: tuple[Image.Image, np.ndarray, Face]) -> None:
    scene, _, face = hand_scene
    off = face_region(
        scene.size, face, face_index=0, padding=0.5, mask_settings=MaskSettings(occlusion=False), image=scene
    )
    on = face_region(scene.size, face, face_index=0, padding=0.5, mask_settings=MaskSettings(), image=scene)
    assert np.array_equal(np.asarray(off.mask), np.asarray(face_mask(scene.size, face)))
    assert np.asarray(on.mask).sum() < 0.9 * np.asarray(off.mask).sum()
    with pytest.raises(SettingsError, match="occlusion"):
        MaskSettings(occlusion="no").validate()  # type: ignore[arg-type]


def test_masks_combine_by_minimum_and_occluders_stay_untouched() -> None:
    a = Image.fromarray(np.array([[0, 100, 255, 255]], dtype=np.uint8))
    b = Image.fromarray(np.array([[50, 50, 30, 255]], dtype=np.uint8))
    assert np.asarray(combine_masks(a, b)).tolist() == [[0, 50, 30, 255]]
    occluders = np.zeros((40, 40), dtype=np.uint8)
    occluders[10:20, 10:20] = 255
    visible = np.asarray(visible_mask(Image.fromarray(occluders), 2.0))
    assert (visible[10:20, 10:20] == 0).all()  # the feather fades in beside the occluder, never over it
    assert visible[0, 0] == 255 and 0 < visible[15, 25] < 255
    assert (np.asarray(visible_mask(Image.new("L", (8, 8)), 2.0)) == 255).all()


def test_both_landmark_backends_find_the_same_face(astronaut: Image.Image) -> None:
    [free] = detect_faces(astronaut, backend="mediapipe")
    [dlib] = detect_faces(astronaut, backend="dlib")
    assert free.landmarks.shape == dlib.landmarks.shape == (68, 2)
    gap = np.linalg.norm(free.landmarks - dlib.landmarks, axis=1) / dlib.eye_distance
    assert np.median(gap) < 0.1  # the same 68 points, within a tenth of the eye distance
    for face in (free, dlib):
        eyes_mid = (face.left_eye + face.right_eye) / 2
        assert face.landmarks[8][1] > face.landmarks[33][1] > eyes_mid[1] > face.landmarks[19][1]  # chin, nose, brows


def _hand_over_nose(photo: Image.Image, face: Face, size: float) -> Image.Image:
    """A hand ``size`` face widths tall centred on the nose: over most of the face."""
    from bench.occluders import hand

    drawn = hand(int(size * max(face.jaw_width, face.width)))
    nose = face.landmarks[30]
    layer = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    layer.paste(drawn, (int(nose[0] - drawn.width / 2), int(nose[1] - 0.45 * drawn.height)))
    return Image.alpha_composite(photo.convert("RGBA"), layer).convert("RGB")


def test_a_face_half_hidden_by_a_hand_is_still_found_or_the_user_is_told_why(
    astronaut: Image.Image, astronaut_face: Face
) -> None:
    from faceswap_core.errors import NoFaceError
    from faceswap_core.faces import find_face

    covered = _hand_over_nose(astronaut, astronaut_face, 0.8)  # about 30 % of the face behind the hand
    assert detect_faces(covered, backend="dlib") == []
    [found] = detect_faces(covered)  # MediaPipe's full-range detector looks again where HOG found nothing
    assert np.linalg.norm(found.landmarks[30] - astronaut_face.landmarks[30]) < 0.25 * astronaut_face.eye_distance
    with pytest.raises(NoFaceError, match="half hidden, by a hand"):
        find_face(_hand_over_nose(astronaut, astronaut_face, 1.4), name="photo")


def test_the_request_carries_the_occlusion_switch() -> None:
    from faceswap_core.requests import SwapRequest

    request = SwapRequest("photo.png", mask_settings=MaskSettings(occlusion=False))
    assert SwapRequest.from_json(request.to_json()).mask_settings.occlusion is False
    assert SwapRequest.from_json('{"version": 1, "image": "photo.png"}').mask_settings.occlusion is True
    with pytest.raises(SettingsError, match="mask_settings.occlusion must be true or false"):
        SwapRequest.from_json('{"version": 1, "image": "photo.png", "mask_settings": {"occlusion": "no"}}')
