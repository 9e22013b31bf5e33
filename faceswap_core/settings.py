"""Defaults, allowed ranges and choices: the one source of truth read by the CLI, the UI and docs.

Each setting group is a frozen dataclass; ``validate()`` raises :class:`SettingsError` naming the
bad value, so the CLI, the UI and library callers all get the same message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from faceswap_core.errors import SettingsError


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range with the default a control starts at and its slider step."""

    minimum: float
    maximum: float
    default: float
    step: float

    def check(self, name: str, value: float) -> None:
        if not (self.minimum <= value <= self.maximum):
            low, high, got = (plain_number(v) for v in (self.minimum, self.maximum, value))
            raise SettingsError(f"{name} must be between {low} and {high}, got {got}")


def plain_number(value: float) -> str:
    """A number as a person reads it: 4294967295 (not 4.29497e+09), 0.5, 1e+23."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


# --- images -------------------------------------------------------------------------------------
MAX_PIXELS = 50_000_000  # refuse larger images before decoding them
EDITOR_MAX_SIDE = 2048  # the browser's editor works on a copy this size; the original stays on the server
MIN_IMAGE_SIDE = 32

# --- limits of the public web app (every event handler is an HTTP endpoint) -----------------------
MAX_UPLOAD_BYTES = 60_000_000  # Gradio's max_file_size: a 50 MP phone JPEG is 10-25 MB
MAX_STRENGTH_CANDIDATES = 8  # "Try strengths": more than a person can compare side by side
MAX_REFERENCE_PHOTOS = 20  # photos used to rank candidates by likeness
MAX_TRAIN_PHOTOS = 50  # photos prepared for one LoRA (5-20 is what works)
MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens; longer text only costs tokenizer time
RESULT_MAX_AGE_S = 3600  # result PNGs and Gradio's cached files older than this are deleted
SCRATCH_MAX_AGE_S = 600  # hidden staging folders untouched this long are leftovers of a killed process
PHOTO_TTL_S = 900.0  # a visitor's full-size photo is dropped from the server after this long unused
PHOTO_STORE_MAX_BYTES = 2_000_000_000  # all visitors' full-size photos together (the oldest go first)

# --- faces and masks ----------------------------------------------------------------------------
# Landmark backends: mediapipe (free for commercial use), dlib and face-alignment (68-point models
# trained on 300-W data: non-commercial). See README, "Models and their licences".
FACE_BACKENDS = ("mediapipe", "dlib", "face-alignment")
DEFAULT_FACE_BACKEND = "mediapipe"
# Grow and feather are given in pixels; when left unset they scale with the face width. The default
# mask is the landmark outline itself (brows to chin, cheek to cheek), which is what a careful person
# paints: the old default (grow 0.04, feather 0.06) was larger than hand-painted masks all round and
# scored IoU 0.835 against them. The feather is the least that softens the seam: its 50 % line stays on
# the outline and it fades out about 2 x 0.02 face widths outside, before hair and neck.
MASK_GROW_FRACTION = 0.0  # of face width; the landmark hull is grown by this much
MASK_FEATHER_FRACTION = 0.02  # of face width; Gaussian edge width (standard deviation)
MASK_GROW_PX = Range(-100, 200, 0, 1)  # slider range; 0 in the UI means "auto" is off and no growth
MASK_FEATHER_PX = Range(0, 200, 0, 1)
MASK_BROW_RAISE = 0.7  # brows are lifted by this times their height above the eyes: the mask's top edge
# (about 0.1 face widths above the brow tops with either backend). Measured on the seed targets (by
# eye, in face widths above the brow tops): hairline or hat brim at 0.35 (A), 0.35 (B), 0.13 (C, a
# beret), 0.18 (E, a hat), 0.5 (G). The top edge stays under the lowest of them, so hair and hats are
# never repainted; the strip of forehead left between is blended by the feather.
# Occlusion-aware automatic masks (faces/occlusion.py): on by default, a switch in CLI, app and API.
MASK_OCCLUSION = True
OCCLUSION_SIDE = 384  # the crop around a face is searched for hands and objects at most this size
OCCLUSION_CONTEXT = 0.5  # face widths of context around the face outline: enough to see a whole hand
OCCLUSION_SKIN_SIGMAS = 4.0  # a hue (Lab a, b) this many robust deviations from the face's skin is not skin
OCCLUSION_GREY = 0.35  # colour saturation under this share of the skin's is grey, black or white: not skin
OCCLUSION_DARK = 0.4  # lightness under this share of the skin's is darker than shading makes skin
OCCLUSION_WEAK = 0.75  # thresholds loosened by this much where an off-skin blob grows (hysteresis)
OCCLUSION_REACH = 0.08  # face widths: how far beyond a clear blob the loosened thresholds reach
OCCLUSION_HAND_MARGIN = 0.015  # face widths added around a hand drawn from its landmarks
OCCLUSION_HAND_CORE = 0.04  # face widths inside the drawn hand's edge: surely hand when fitting its outline
OCCLUSION_HAND_REACH = 0.03  # face widths beyond the drawn hand where its photographed outline may lie
OCCLUSION_EDGE = 100  # Canny's upper threshold (grey levels) for an object's outline beside a blob
OCCLUSION_WALLED = 0.75  # a part of the face whose edge is this much object (the rest outline) is inside it
OCCLUSION_INSIDE = 0.2  # of the face region: a walled-in part larger than this is face, not an object's inside
OCCLUSION_SHARP = 0.4  # an object's edge changes colour this share of its contrast per pixel (shadows fade)
OCCLUSION_SHARP_PHOTO = 1.1  # in a soft photo, an object's edge is at least this much sharper than the photo's
OCCLUSION_MIN_BLOB = 0.01  # of the face region: smaller off-colour blobs are spots, shadows, pores
# dlib looks for faces on a copy whose longest side is at most this, upsampled this many times
# (faces down to ~40 px of that copy are found), then fits landmarks at full resolution.
DETECT_MAX_SIDE = 1024
DETECT_UPSAMPLE = 1
DETECT_NMS_IOU = 0.3  # boxes overlapping a better one by more than this are the same face
DETECT_MIN_SCORE = 0.3  # weaker HOG detections are mostly clothing patterns and textures
# MediaPipe's mesh runs on a square crop this many face-box widths across (its detector wants a face
# as large as in a selfie), reduced to at most this side: the mesh itself reads a 192 px face.
DETECT_MESH_CROP = 2.0
DETECT_MESH_SIDE = 512

# --- source-photo preparation -------------------------------------------------------------------
PREPARE_SIZE = Range(256, 2048, 1024, 64)
CLASS_WORDS = ("woman", "man", "person")
DEFAULT_CLASS_WORD = "woman"
# Where the eyes land in every training crop, as fractions of the crop side: the eye midpoint at
# (0.5, PREPARE_EYE_Y) and the eye centres PREPARE_EYE_DISTANCE apart. A face is about 2.2 eye
# distances wide, so 0.2 leaves about one face width of margin across the crop.
PREPARE_EYE_Y = 0.42
PREPARE_EYE_DISTANCE = 0.2
# A second face at least this fraction of the largest face's width makes a group photo, skipped: it is
# as near the camera as the person (so it is a second subject, and whose face is whose cannot be told)
# and a crop about 2.3 face widths across would take it in. Smaller faces are people in the background.
PREPARE_SECOND_FACE_RATIO = 0.5
# dlib face descriptors of one person lie closer than this (its documented threshold, 99.4 % on LFW);
# a training photo whose median distance to the others is larger is flagged before training.
SAME_PERSON_DISTANCE = 0.6

# --- inpainting ---------------------------------------------------------------------------------
DEFAULT_BASE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
FP16_FIX_VAE = "madebyollin/sdxl-vae-fp16-fix"
DEVICES = ("auto", "cuda", "mps", "cpu")
DEFAULT_PROMPT = "a photo of a {class_word} face"
DEFAULT_NEGATIVE_PROMPT = "blurry, lowres, deformed, disfigured, cartoon, painting, extra eyes, watermark, text"
STRENGTH = Range(0.05, 1.0, 0.5, 0.05)
PADDING = Range(0.0, 3.0, 0.6, 0.05)  # context around the mask box, as a fraction of its size
STEPS = Range(1, 150, 30, 1)
GUIDANCE = Range(0.0, 20.0, 7.0, 0.5)
LORA_SCALE = Range(0.0, 2.0, 1.0, 0.05)
SEARCH_STRENGTHS = (0.3, 0.4, 0.5, 0.6)
MAX_FACES = 32  # faces repainted in one request: a crowd photo, not an unbounded job
MAX_SEED = 2**32 - 1


# --- image-prompt identity (IP-Adapter) ----------------------------------------------------------
# IP-Adapter "plus-face" for SDXL with its OpenCLIP ViT-H-14 encoder (Apache-2.0 / MIT). The encoder
# is the repository's `models/image_encoder`: `sdxl_models/image_encoder` is the ViT-bigG one, which
# does not fit the `_vit-h` adapter files. InsightFace-based variants (FaceID, InstantID, PuLID) are
# non-commercial and never a default.
DEFAULT_IP_ADAPTER = "h94/IP-Adapter"
IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHT = "ip-adapter-plus-face_sdxl_vit-h.safetensors"
IP_ADAPTER_ENCODER = "models/image_encoder"
# How strongly the photos steer the face. Photos alone carry all of the identity, so they get a
# strong scale (0.5-0.7 is the range quoted for plus-face; above ~0.8 the adapter starts to override
# the prompt, pose and lighting of the target). Beside a LoRA the LoRA carries the identity and the
# photos only add detail it missed; two full-strength identity signals over-saturate the face.
IDENTITY_SCALE = Range(0.0, 1.5, 0.7, 0.05)
IDENTITY_SCALE_WITH_LORA = 0.4
# Several photos: "concat" gives the adapter every photo's 16 tokens (what diffusers does with a
# list of images; attention weighs them, so nothing is lost); "mean" averages the encoder features
# of the aligned crops first (constant cost; the crops are aligned, so patch tokens correspond).
IDENTITY_COMBINE = ("concat", "mean")
DEFAULT_IDENTITY_COMBINE = "concat"
MAX_IDENTITY_PHOTOS = 8  # bounds the work per request and the extra attention tokens (16 per photo)
IDENTITY_CACHE_SIZE = 16  # photo sets whose embeddings stay cached (a few MB each on the GPU)
# Reference crops are tighter than training crops: the face fills about 2/3 of the square, from the
# hairline to the chin, because the encoder centre-crops and the adapter was trained on face crops.
IDENTITY_EYE_DISTANCE = 0.3
IDENTITY_EYE_Y = 0.4

# --- keep expression (a ControlNet on the target face's own landmarks) ----------------------------
# xinsir's union ControlNet for SDXL (Apache-2.0) reads an OpenPose-style face map (control mode 0):
# the target's 68 landmarks drawn as lines keep the pose, gaze and mouth while strength goes high.
DEFAULT_CONTROLNET = "xinsir/controlnet-union-sdxl-1.0"
CONTROLNET_POSE_MODE = 0  # the union model's control type for OpenPose maps (faces included)
# Weight of the face map: 0.5-0.8 keeps the expression and leaves the identity to the LoRA; near 1 the
# map also fixes the face's proportions, which are the target's, not the person's.
KEEP_EXPRESSION = Range(0.0, 1.5, 0.6, 0.05)
# With the expression held by the ControlNet, strength can go where the likeness is (0.8-1.0): the
# candidates of "Try strengths" and the recommended strength move up with it.
SEARCH_STRENGTHS_KEEP_EXPRESSION = (0.6, 0.7, 0.8, 0.9)
RECOMMENDED_STRENGTH = 0.5
RECOMMENDED_STRENGTH_KEEP_EXPRESSION = 0.85
# Dynamic strength (ADetailer-style, by face area): a small face is upscaled to the native side and
# comes out soft, so it gets more denoising; a face filling FULL_DETAIL_FACE of the native side or more
# keeps the chosen strength, a smaller one gains up to DYNAMIC_STRENGTH_GAIN.
DYNAMIC_STRENGTH_GAIN = 0.2
FULL_DETAIL_FACE = 0.4


@dataclass(frozen=True)
class ModelSpec:
    """Which base model to run and how: the one set of names the app, the CLI commands and the engine share."""

    base: str = DEFAULT_BASE_MODEL  # hub id, local diffusers folder or single .safetensors checkpoint
    base_config: str | None = None  # diffusers folder with the configs of a single-file base (offline use)
    vae: str | None = None  # VAE override, e.g. FP16_FIX_VAE
    ip_adapter: str = DEFAULT_IP_ADAPTER  # image-prompt identity adapter (hub id or folder in its layout)
    fast_lora: str | None = None  # few-step LoRA for fast mode (hub id, folder or file); None: LCM-LoRA SDXL
    controlnet: str = DEFAULT_CONTROLNET  # keep expression's ControlNet (hub id or folder), loaded on first use
    face_parser: str | None = None  # learned occluder source: "selfie-multiclass", a URL or a .tflite; None: off
    device: str = "auto"
    low_vram: bool = False  # model CPU offload for 8-12 GB cards

    def validate(self) -> None:
        if not self.base.strip():
            raise SettingsError("the base model must not be empty")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise SettingsError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")


@dataclass(frozen=True)
class MaskSettings:
    """How an automatic face mask is made; ``None`` means scale with the face."""

    grow: float | None = None
    feather: float | None = None
    occlusion: bool = MASK_OCCLUSION  # leave hands and objects in front of the face out of the mask

    def validate(self) -> None:
        if self.grow is not None:
            MASK_GROW_PX.check("grow", self.grow)
        if self.feather is not None:
            MASK_FEATHER_PX.check("feather", self.feather)
        if not isinstance(self.occlusion, bool):
            raise SettingsError(f"occlusion must be true or false, got {self.occlusion!r}")


@dataclass(frozen=True)
class SwapSettings:
    """Everything that decides one inpainting result (with the image, mask and model)."""

    prompt: str = DEFAULT_PROMPT.format(class_word=DEFAULT_CLASS_WORD)
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    strength: float = STRENGTH.default
    padding: float = PADDING.default
    steps: int = int(STEPS.default)
    guidance: float = GUIDANCE.default
    seed: int | None = None  # None: a random seed, recorded in the result
    lora: str | None = None  # registry name or path; None: no LoRA
    lora_scale: float = LORA_SCALE.default
    color_match: bool = True
    identity_photos: tuple[str, ...] = ()  # photos of the person for the image-prompt adapter; () = none
    identity_scale: float | None = None  # None: IDENTITY_SCALE's default, or IDENTITY_SCALE_WITH_LORA beside a LoRA
    fast: bool = False  # a few-step LoRA and its scheduler: steps and guidance follow the fast mode (see fast.py)
    keep_expression: float = 0.0  # weight of the ControlNet on the target's landmarks; 0 = off (nothing loaded)
    dynamic_strength: bool = False  # raise the strength for small faces (see DYNAMIC_STRENGTH_GAIN)
    extras: Mapping[str, Any] = field(default_factory=dict)  # options of conditioning plug-ins, by plug-in name

    def validate(self) -> None:
        STRENGTH.check("strength", self.strength)
        PADDING.check("padding", self.padding)
        STEPS.check("steps", self.steps)
        GUIDANCE.check("guidance", self.guidance)
        LORA_SCALE.check("lora scale", self.lora_scale)
        KEEP_EXPRESSION.check("keep expression weight", self.keep_expression)
        if self.identity_scale is not None:
            IDENTITY_SCALE.check("identity scale", self.identity_scale)
        if len(self.identity_photos) > MAX_IDENTITY_PHOTOS:
            raise SettingsError(
                f"at most {MAX_IDENTITY_PHOTOS} photos of the person are used, got {len(self.identity_photos)}"
            )
        if self.seed is not None and not (0 <= self.seed <= MAX_SEED):
            raise SettingsError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if not self.fast and self.steps * self.strength < 1:
            raise SettingsError(
                "steps x strength must be at least 1 so that one denoising step runs, "
                f"got {self.steps} x {self.strength:g}"
            )


# --- what one visitor may ask of a public app ---------------------------------------------------
@dataclass(frozen=True)
class PublicLimits:
    """Bounds on one request to the web app, so no visitor holds the only GPU for long (flags change them).

    4 faces at the full 150 steps; 2000 training steps at 1024 px is about 20 minutes on a 24 GB card.
    """

    max_face_steps: int = 600  # faces x denoising steps in one swap (strengths x steps in Try strengths)
    max_train_steps: int = 2000
    max_train_resolution: int = 1024
    max_caption_rows: int = MAX_TRAIN_PHOTOS  # rows of the Train tab's captions table
    max_trainings: int = 1  # trainings at once, each beside the swaps on the GPU (its memory is the limit)

    def check_face_steps(self, faces: int, steps: int) -> None:
        if faces * steps > self.max_face_steps:
            raise SettingsError(
                f"{faces} face(s) x {steps} steps is {faces * steps} denoising steps; this app allows at most "
                f"{self.max_face_steps} per request: use fewer steps or fewer faces"
            )

    def check_training(self, steps: int, resolution: int) -> None:
        if steps > self.max_train_steps:
            raise SettingsError(f"steps must be at most {self.max_train_steps} on this app, got {steps}")
        if resolution > self.max_train_resolution:
            raise SettingsError(f"resolution must be at most {self.max_train_resolution} on this app, got {resolution}")


# --- training -----------------------------------------------------------------------------------
TRAIN_STEPS = Range(1, 20000, 800, 1)
TRAIN_RANK = Range(1, 256, 16, 1)
TRAIN_LR = Range(1e-6, 1e-2, 1e-4, 1e-5)
TRAIN_RESOLUTION = Range(64, 2048, 1024, 64)
TRAIN_BATCH = Range(1, 64, 1, 1)
TRAIN_CHECKPOINT_EVERY = Range(1, 20000, 100, 1)
SAMPLE_STEPS = Range(1, 100, 20, 1)  # denoising steps of the sample image made at each checkpoint
DEFAULT_VQA_MODEL = "Salesforce/blip-vqa-base"  # automatic captions; weights download on first use


@dataclass(frozen=True)
class TrainSettings:
    """LoRA training hyper-parameters; defaults suit 5-20 face photos on SDXL.

    Why these defaults: rank 16 on the UNet attention projections holds one identity (a ~90 MB file on
    SDXL) without the capacity to memorise backgrounds; lr 1e-4 with AdamW is diffusers' LoRA default
    and the highest that stays stable at batch 1; 800 steps is ~40 passes over 10 photos with their
    flipped copies, about where a face becomes recognisable, and a checkpoint every 100 steps gives
    8 candidates to pick the step before over-fitting. 1024 px is SDXL's native size.
    """

    steps: int = int(TRAIN_STEPS.default)
    rank: int = int(TRAIN_RANK.default)
    alpha: float | None = None  # None: equal to rank
    learning_rate: float = TRAIN_LR.default
    resolution: int = int(TRAIN_RESOLUTION.default)
    batch_size: int = int(TRAIN_BATCH.default)
    checkpoint_every: int = int(TRAIN_CHECKPOINT_EVERY.default)
    seed: int = 0
    flip: bool = True
    train_text_encoder: bool = False
    gradient_checkpointing: bool = False
    mixed_precision: bool = True  # bf16/fp16 autocast on GPU; ignored on CPU
    use_8bit_adam: bool = True  # when bitsandbytes is installed and the device is CUDA
    sample_every_checkpoint: bool = True
    sample_prompt: str = ""  # "" = the caption template of class_word
    sample_target: str | None = None  # also inpaint the face of this photo at each checkpoint
    sample_steps: int = int(SAMPLE_STEPS.default)
    class_word: str = DEFAULT_CLASS_WORD  # captions of raw photos and the default sample prompt
    vqa_model: str | None = None  # caption raw photos with this VQA model (e.g. DEFAULT_VQA_MODEL)

    def validate(self) -> None:
        TRAIN_STEPS.check("steps", self.steps)
        TRAIN_RANK.check("rank", self.rank)
        TRAIN_LR.check("learning rate", self.learning_rate)
        TRAIN_RESOLUTION.check("resolution", self.resolution)
        TRAIN_BATCH.check("batch size", self.batch_size)
        TRAIN_CHECKPOINT_EVERY.check("checkpoint interval", self.checkpoint_every)
        if self.resolution % 8:
            raise SettingsError(f"resolution must be a multiple of 8, got {self.resolution}")
        if self.alpha is not None and not (0 < self.alpha <= 4 * TRAIN_RANK.maximum):
            raise SettingsError(f"LoRA alpha must be above 0 and at most {4 * TRAIN_RANK.maximum:g}, got {self.alpha}")
        SAMPLE_STEPS.check("sample steps", self.sample_steps)
        if not self.class_word.strip():
            raise SettingsError("the class word must not be empty (for example 'woman', 'man' or 'person')")


def as_dict(settings: object) -> dict[str, object]:
    """A plain dict of a settings dataclass, for records and JSON."""
    return {f.name: getattr(settings, f.name) for f in fields(settings)}  # type: ignore[arg-type]


# --- fast mode (few-step LoRA; see faceswap_core/fast.py for the evidence behind each value) -----
FAST_LORA = "latent-consistency/lcm-lora-sdxl"  # LCM-LoRA for SDXL base 1.0, openrail++
FAST_LORA_FILE = "pytorch_lora_weights.safetensors"  # its file inside the hub repo or a folder
FAST_STEPS = Range(1, 8, 4, 1)  # denoising steps that actually run; LCM-LoRA's card: 2-8
FAST_GUIDANCE = Range(0.0, 2.0, 1.0, 0.1)  # LCM-LoRA's card: 0 or 1-2; <= 1 turns CFG (and the negative prompt) off
FAST_LORA_WEIGHT = 1.0  # adapter weight of the few-step LoRA next to a person's LoRA


# --- video (see faceswap_core/video.py) ----------------------------------------------------------
VIDEO_FORMATS = ("mp4", "mov", "webm", "mkv", "m4v", "avi")  # containers a clip may come in
VIDEO_TRACK_MAX_GAP_S = 0.5  # a tracked face missing this long or less is interpolated; longer: it left
VIDEO_DETECT_EVERY = 1  # run the face detector on every Nth frame; frames between are interpolated
VIDEO_TEMPORAL_BLEND = Range(0.0, 0.9, 0.5, 0.05)  # share of the previous repaint, warped by optical flow
VIDEO_MATCH_DISTANCE = 0.6  # dlib descriptor distance below which two faces are the same person
VIDEO_SMOOTH_MIN_CUTOFF = 1.0  # One-Euro filter (Hz): lower is steadier when still
VIDEO_SMOOTH_BETA = 0.05  # One-Euro filter: higher follows fast moves with less lag


@dataclass(frozen=True)
class VideoLimits:
    """What one clip may be; the defaults suit a public Space (a minute of 1080p), flags raise them locally."""

    max_seconds: float = 60.0
    max_frames: int = 1800
    max_pixels: int = 1920 * 1088  # per frame

    def validate(self) -> None:
        if self.max_seconds <= 0 or self.max_frames <= 0 or self.max_pixels <= 0:
            raise SettingsError("video limits must be above 0")
