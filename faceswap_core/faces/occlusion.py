"""What covers a face: hands and objects in front of it, cut out of the automatic mask.

Two sources, each a mask of what is in front of the face (255 = occluder):

- **hands**: MediaPipe's hand landmarks (Apache-2.0, inside the ``mediapipe`` wheel), drawn as a palm
  and fingers of a width taken from the palm, then fitted to the photo's outline of the hand
  (GrabCut). Hands are skin-coloured, so colour alone cannot tell them from a cheek.
- **colour**: pixels of the face region far from the face's own skin colour (a robust model of the
  region itself, in Lab), in blobs large enough to be an object and ending in a sharp edge: a cup, a
  microphone, glasses, a phone. Eyes, brows, lips and nostrils differ from skin too, so a blob must lie
  mostly outside them to count; shadows, stubble and hair at the face's edge fade into the skin and do
  not count; a sharply trimmed beard or heavy make-up can (untick the switch then). A blob
  grows over nearby pixels only somewhat off the skin (hysteresis), and takes in what it walls in
  with its outline and the face's (a cup's skin-coloured inside), but not the lenses of glasses.

The visible-face mask (255 - occluders, feathered) is combined with the landmark mask by element-wise
minimum, as FaceFusion combines its box, occlusion and region masks. Everything runs on a crop around
the face reduced to ``OCCLUSION_SIDE`` pixels, so a 12 MP photo costs what a small one does.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from faceswap_core.faces.detect import BROWS, Face, _mp_lock, mediapipe_model
from faceswap_core.faces.parser import FaceParser, parsed_occluders
from faceswap_core.images import ImageInput, load_image, to_array
from faceswap_core.settings import (
    OCCLUSION_CONTEXT,
    OCCLUSION_DARK,
    OCCLUSION_EDGE,
    OCCLUSION_GREY,
    OCCLUSION_HAND_CORE,
    OCCLUSION_HAND_MARGIN,
    OCCLUSION_HAND_REACH,
    OCCLUSION_INSIDE,
    OCCLUSION_MIN_BLOB,
    OCCLUSION_REACH,
    OCCLUSION_SHARP,
    OCCLUSION_SHARP_PHOTO,
    OCCLUSION_SIDE,
    OCCLUSION_SKIN_SIGMAS,
    OCCLUSION_WALLED,
    OCCLUSION_WEAK,
)

FINGERS = ((0, 1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
PALM = (0, 1, 2, 5, 9, 13, 17)
EYES = (slice(36, 42), slice(42, 48))
MOUTH = slice(48, 60)
NOSE_BASE = slice(30, 36)
NOSE_TIP = 30


def occluder_mask(image: ImageInput, face: Face, outline: np.ndarray, parser: FaceParser | None = None) -> Image.Image:
    """Mask (image size, 'L') of what lies in front of ``face`` inside ``outline`` (its landmark polygon);
    with ``parser``, also what a learned face parser does not call face skin."""
    picture = load_image(image)
    pixels = to_array(picture)
    width = max(face.jaw_width, face.width)
    box = _crop_box(outline, width, pixels.shape[1], pixels.shape[0])
    x0, y0, x1, y1 = box
    scale = min(1.0, OCCLUSION_SIDE / max(x1 - x0, y1 - y0))
    crop = pixels[y0:y1, x0:x1]
    if scale < 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    to_crop = lambda points: (np.asarray(points) - (x0, y0)) * scale  # noqa: E731
    region = np.zeros(crop.shape[:2], dtype=np.uint8)
    cv2.fillPoly(region, [np.round(to_crop(outline)).astype(np.int32)], 255)
    hands = _hands(crop, width * scale)
    colour = _colour_blobs(crop, region > 0, hands > 0, to_crop(face.landmarks), width * scale)
    found = np.maximum(hands, colour)
    if parser is not None:
        features = _features(region.shape, to_crop(face.landmarks), width * scale)
        found = np.maximum(found, parsed_occluders(parser, crop, features))
    found[region == 0] = 0
    if scale < 1.0:
        found = cv2.resize(found, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    full = np.zeros(pixels.shape[:2], dtype=np.uint8)
    full[y0:y1, x0:x1] = np.where(found >= 128, 255, 0).astype(np.uint8)
    return Image.fromarray(full, mode="L")


def _crop_box(outline: np.ndarray, width: float, image_w: int, image_h: int) -> tuple[int, int, int, int]:
    """The outline's box with ``OCCLUSION_CONTEXT`` face widths around it: a hand is found whole."""
    margin = OCCLUSION_CONTEXT * width
    x0 = max(int(np.floor(outline[:, 0].min() - margin)), 0)
    y0 = max(int(np.floor(outline[:, 1].min() - margin)), 0)
    x1 = min(int(np.ceil(outline[:, 0].max() + margin)), image_w)
    y1 = min(int(np.ceil(outline[:, 1].max() + margin)), image_h)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _hands(crop: np.ndarray, face_width: float) -> np.ndarray:
    """Hands drawn from their 21 landmarks: a filled palm and fingers as thick strokes."""
    with _mp_lock:
        found = mediapipe_model("hands").process(np.ascontiguousarray(crop)).multi_hand_landmarks or []
    drawn = np.zeros(crop.shape[:2], dtype=np.uint8)
    for hand in found:
        points = np.array([(p.x * crop.shape[1], p.y * crop.shape[0]) for p in hand.landmark])
        palm_width = float(np.linalg.norm(points[5] - points[17]))
        finger = max(int(round(0.4 * palm_width)), 2)  # a finger is about a third of the palm, plus skin edge
        cv2.fillPoly(drawn, [np.round(points[list(PALM)]).astype(np.int32)], 255)
        for chain in FINGERS:
            line = np.round(points[list(chain)]).astype(np.int32)
            cv2.polylines(drawn, [line], False, 255, thickness=finger)
            for point in line:
                cv2.circle(drawn, tuple(int(v) for v in point), finger // 2, 255, -1)
    if not found:
        return drawn
    # Drawn from 21 points, a hand's outline is off by more than a colour blob's edge: a margin more.
    drawn = cv2.dilate(drawn, _disc(OCCLUSION_HAND_MARGIN * face_width))
    return _fit_outline(crop, drawn, face_width)


def _fit_outline(crop: np.ndarray, drawn: np.ndarray, face_width: float) -> np.ndarray:
    """The drawn hand moved onto the photo's own outline of it (GrabCut): a fist or a bent finger is not
    where thick strokes between its joints put it, and the drawn margin took a band of cheek beside it.

    The drawn hand's core is hand, a band ``OCCLUSION_HAND_REACH`` beyond it may be, the rest is not.
    Hand and cheek are both skin; what separates them is the edge and shadow between them, which
    GrabCut's boundary term follows. Seeded, so the same photo gives the same mask.
    """
    labels = np.full(drawn.shape, cv2.GC_BGD, dtype=np.uint8)
    labels[cv2.dilate(drawn, _disc(OCCLUSION_HAND_REACH * face_width)) > 0] = cv2.GC_PR_BGD
    labels[drawn > 0] = cv2.GC_PR_FGD
    labels[cv2.erode(drawn, _disc(OCCLUSION_HAND_CORE * face_width)) > 0] = cv2.GC_FGD
    cv2.setRNGSeed(0)  # GrabCut starts its colour models with k-means++ on OpenCV's own generator
    models = (np.zeros((1, 65)), np.zeros((1, 65)))
    cv2.grabCut(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), labels, None, *models, 3, cv2.GC_INIT_WITH_MASK)
    return np.where((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)


def _disc(radius: float) -> np.ndarray:
    steps = max(int(round(radius)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * steps + 1, 2 * steps + 1))


def _colour_blobs(
    crop: np.ndarray, region: np.ndarray, hands: np.ndarray, landmarks: np.ndarray, face_width: float
) -> np.ndarray:
    """Blobs of the face region whose colour is far from the region's skin, outside eyes, brows and lips.

    Found with hysteresis: blobs clearly off the skin are kept, then grown over pixels that are only
    somewhat off it (a white rim against pale skin), with the skin refitted without the blobs, as an
    occluder covering a quarter of the face drags the first fit toward its own colour.
    """
    features = _features(region.shape, landmarks, face_width)
    skin = region & ~features & ~hands
    if skin.sum() < 50:
        return np.zeros(region.shape, dtype=np.uint8)
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    radius = max(int(round(0.006 * face_width)), 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    clean = lambda far: cv2.morphologyEx(  # noqa: E731
        cv2.morphologyEx((far & region).astype(np.uint8), cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel
    )
    count, labels, _, _ = cv2.connectedComponentsWithStats(clean(_off_skin(lab, skin, 1.0)), connectivity=8)
    outside = np.bincount(labels[~features].ravel(), minlength=count)
    least = OCCLUSION_MIN_BLOB * region.sum()
    large = np.flatnonzero(outside >= least)
    large = large[large > 0]
    strong = np.isin(labels, large[_sharp_edged(labels, large, lab, skin, region)])
    if not strong.any():
        return np.zeros(region.shape, dtype=np.uint8)
    near = cv2.distanceTransform((~strong).astype(np.uint8), cv2.DIST_L2, 3) < OCCLUSION_REACH * face_width
    # Not over eyes and brows: off-skin themselves, they sit against a glasses frame. A cup hides the mouth.
    eyes = _features(region.shape, landmarks, face_width, mouth=False)
    weak = clean((_off_skin(lab, skin & ~strong, OCCLUSION_WEAK) & near & ~eyes) | strong)
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    blobs = np.isin(labels, np.unique(labels[strong])) & (labels > 0)
    return _fill_objects(blobs.astype(np.uint8) * 255, _outlines(crop, blobs, landmarks), region, landmarks)


def _sharp_edged(
    labels: np.ndarray, ids: np.ndarray, lab: np.ndarray, skin: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """Which of the blobs ``ids`` end in a sharp edge, as an object in front of the face does.

    A quarter of a blob's edge must change colour per pixel by ``OCCLUSION_SHARP`` of the blob's
    difference from the skin. Shadows on a cheek, stubble and brows differ from the skin as much as a
    cup does, but fade into it over many pixels; on real photos without occluders they were most of
    what the colour test cut out. A soft photo (out of focus, upscaled) softens every edge: there the
    bar is ``OCCLUSION_SHARP_PHOTO`` times the photo's own sharpness, measured at its strongest edges.
    """
    real = np.dstack([lab[..., 0] * (100.0 / 255.0), lab[..., 1] - 128.0, lab[..., 2] - 128.0])
    slopes = [cv2.Sobel(real[..., c], cv2.CV_32F, dx, 1 - dx) for c in range(3) for dx in (0, 1)]
    steepness = cv2.dilate(np.sqrt(sum(slope**2 for slope in slopes)) / 8, np.ones((3, 3), dtype=np.uint8))
    bar = min(OCCLUSION_SHARP, OCCLUSION_SHARP_PHOTO * _photo_sharpness(real, steepness, region))
    inner = cv2.erode(region.astype(np.uint8), np.ones((5, 5), dtype=np.uint8)) > 0  # not the face's outline
    skin_colour = np.median(real[skin], axis=0)
    sharp = np.ones(len(ids), dtype=bool)
    for index, label in enumerate(ids):
        blob = labels == label
        edge = blob & (cv2.erode(blob.astype(np.uint8), np.ones((3, 3), dtype=np.uint8)) == 0) & inner
        if edge.sum() >= 4:
            contrast = max(float(np.linalg.norm(np.median(real[blob], axis=0) - skin_colour)), 1.0)
            sharp[index] = np.percentile(steepness[edge], 75) >= bar * contrast
    return sharp


def _photo_sharpness(real: np.ndarray, steepness: np.ndarray, region: np.ndarray) -> float:
    """Steepness over contrast at the face's strongest edges (the top 2 %): about 1 / (2.5 sigma) for
    edges blurred by sigma pixels, the contrast being the colour range within 4 pixels."""
    window = np.ones((9, 9), dtype=np.uint8)
    spread = np.sqrt(sum((cv2.dilate(real[..., c], window) - cv2.erode(real[..., c], window)) ** 2 for c in range(3)))
    strongest = region & (steepness >= np.percentile(steepness[region], 98))
    return float(np.median(steepness[strongest] / np.maximum(spread[strongest], 1.0)))


def _outlines(crop: np.ndarray, blobs: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Edges of the photo below the eyes that run on from a blob: an object's outline where its colour
    is the skin's (a white rim on pale skin), which walls in its inside as well as the blob does. Not
    above the eyes, where the hairline's edges would wall in the forehead."""
    grey = cv2.GaussianBlur(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
    edges = (cv2.Canny(grey, OCCLUSION_EDGE // 2, OCCLUSION_EDGE) > 0) & _below_eyes(blobs.shape, landmarks)
    count, labels = cv2.connectedComponents((edges | blobs).astype(np.uint8), connectivity=8)
    return np.isin(labels, np.unique(labels[blobs])) & (labels > 0) & ~blobs


def _off_skin(lab: np.ndarray, skin: np.ndarray, strictness: float) -> np.ndarray:
    """Pixels whose colour no shading of the skin sampled at ``skin`` explains; ``strictness`` < 1 loosens."""
    samples = lab[skin]
    centre = np.median(samples, axis=0)
    spread = 1.4826 * np.median(np.abs(samples - centre), axis=0)
    spread = np.maximum(spread, (8.0, 3.0, 3.0))  # flat light or a tiny face: do not call noise an object
    distance = np.abs(lab[..., 1:] - centre[1:]) / spread[1:]
    skin_chroma = float(np.hypot(*(centre[1:] - 128.0)))
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    return (
        (distance > strictness * OCCLUSION_SKIN_SIGMAS).any(axis=2)  # another hue: a red cup, a blue phone
        | (chroma < OCCLUSION_GREY / strictness * skin_chroma)  # grey, white or black: a microphone, a frame
        | (lab[..., 0] < OCCLUSION_DARK * centre[0])  # far darker than any shading of the skin (hair is too)
    )


def _fill_objects(blobs: np.ndarray, outlines: np.ndarray, region: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The blobs with the parts of the face they wall in, unless those are beside an eye or the nose tip.

    An object's inside can be skin-coloured (coffee in a cup, its inner wall), and its rim is often cut
    open by the face outline (a cup at the chin) or the skin's colour (a white rim on pale skin): a part
    of the face walled in mostly by blobs and their outlines, the rest by the face outline, is the
    object's inside. A glasses frame walls in the eyes: the face seen through clear lenses stays in
    the mask (the whole lens, which an eye's own edges would split), and so does the face around the
    nose beside any object.
    """
    eyes = np.zeros(blobs.shape, dtype=np.uint8)
    for part in EYES:
        cv2.fillPoly(eyes, [np.round(cv2.convexHull(landmarks[part].astype(np.float32))).astype(np.int32)], 255)
    seen = eyes.copy()
    cv2.circle(seen, tuple(int(v) for v in np.round(landmarks[NOSE_TIP])), 1, 255, -1)
    lenses = _walled_parts(blobs > 0, region)
    inside = _walled_parts((blobs > 0) | outlines, region)
    walled_in = _not_touching(inside, seen > 0) & ~_touching(lenses, eyes > 0)
    beside = cv2.dilate(walled_in.astype(np.uint8), np.ones((3, 3), dtype=np.uint8)) > 0
    filled = blobs.copy()
    filled[walled_in | (outlines & beside)] = 255  # with the outlines between them
    return filled


def _below_eyes(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """The half of the crop on the chin's side of the line through the eyes (tilted with the head)."""
    left, right = (landmarks[part].mean(axis=0) for part in EYES)
    across = right - left
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    side = across[0] * (ys - left[1]) - across[1] * (xs - left[0])
    chin = landmarks[8] - left
    return np.sign(side) == np.sign(across[0] * chin[1] - across[1] * chin[0])


def _walled_parts(walls: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Labels of the parts of the face whose edge is at least ``OCCLUSION_WALLED`` ``walls`` (the rest
    the outline), no larger than an object's inside (``OCCLUSION_INSIDE``); 0 elsewhere. Counted over
    each part's four-neighbour contacts at once: Canny's edges cut the face into many small parts."""
    count, labels = cv2.connectedComponents((~walls & region).astype(np.uint8), connectivity=4)
    height, width = walls.shape
    around_labels, around_walls = np.pad(labels, 1), np.pad(walls, 1)
    contacts = np.zeros(count)
    walled = np.zeros(count)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        neighbour = around_labels[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        edge = (labels > 0) & (neighbour != labels)
        contacts += np.bincount(labels[edge], minlength=count)
        walled += np.bincount(
            labels[edge & around_walls[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]], minlength=count
        )
    sizes = np.bincount(labels.ravel(), minlength=count)
    enclosed = (walled >= OCCLUSION_WALLED * np.maximum(contacts, 1)) & (sizes <= OCCLUSION_INSIDE * region.sum())
    enclosed[0] = False
    return np.where(enclosed[labels], labels, 0)


def _touching(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.isin(labels, np.unique(labels[where])) & (labels > 0)


def _not_touching(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    return (labels > 0) & ~_touching(labels, where)


def _features(shape: tuple[int, ...], landmarks: np.ndarray, face_width: float, *, mouth: bool = True) -> np.ndarray:
    """Eyes, brows, lips and nostrils (without ``mouth``: eyes and brows), grown a little: parts of the
    face that are not skin-coloured."""
    features = np.zeros(shape[:2], dtype=np.uint8)
    grow = max(int(round(0.03 * face_width)), 1)
    for part in (*EYES, MOUTH, NOSE_BASE) if mouth else EYES:
        cv2.fillPoly(features, [np.round(cv2.convexHull(landmarks[part].astype(np.float32))).astype(np.int32)], 255)
    for brow in (slice(BROWS.start, BROWS.start + 5), slice(BROWS.start + 5, BROWS.stop)):
        cv2.polylines(features, [np.round(landmarks[brow]).astype(np.int32)], False, 255, thickness=grow)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(features, kernel) > 0
