"""``video``: swap a face through a whole clip, steady from frame to frame, resumable from a job folder."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from faceswap_core.cli.faces import landmarks_option
from faceswap_core.cli.model_args import model_parent, model_spec
from faceswap_core.cli.ray_args import add_ray_flags, checked_workers
from faceswap_core.cli.swap import face_spec, flag_settings, keep_expression_option, read_request
from faceswap_core.clip_request import ClipRequest
from faceswap_core.requests import FACE_REFERENCE, FaceRequest, SwapRequest
from faceswap_core.settings import (
    GUIDANCE,
    PADDING,
    STEPS,
    STRENGTH,
    VIDEO_DETECT_EVERY,
    VIDEO_TEMPORAL_BLEND,
    VIDEO_TRACK_MAX_GAP_S,
    SwapSettings,
    VideoLimits,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "video",
        parents=[model_parent()],
        help="replace a face through a whole clip (tracked, steady, resumable)",
        description=(
            "Follow the chosen faces through IN (face numbers on one frame, or a photo of the person) and repaint "
            "them frame by frame with one seed per face, smoothed masks and an optical-flow blend. OUT.mp4 is "
            "H.264 with IN's audio; OUT.mkv is lossless FFV1; OUT without a suffix is a folder of PNG frames. "
            "Work is kept in a job folder: after a cancel (Ctrl-C) the same command resumes after the last "
            "finished frame."
        ),
    )
    parser.add_argument("clip", type=Path, nargs="?", metavar="IN", help="mp4, mov, webm or mkv clip")
    parser.add_argument(
        "--request",
        type=Path,
        metavar="FILE.json",
        help="a clip's swap as JSON (IN, if given, is its clip)",
    )
    parser.add_argument("--save-request", type=Path, metavar="FILE.json", help="also write the request as JSON")
    landmarks_option(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="OUT.mp4, OUT.mkv or a folder")
    parser.add_argument("--person", metavar="NAME", help="a person in --lora-dir: their LoRA and photos")
    parser.add_argument("--lora", metavar="NAME_OR_PATH", help="a LoRA name in --lora-dir, or a .safetensors path")
    parser.add_argument(
        "--face",
        default="0",
        metavar="SPEC",
        help="faces on the frame at --at, largest first: 0, 0,2 or all, each with an optional :PERSON "
        "(0:Maria,1:Ben); a face without :PERSON uses --person or --lora (default 0)",
    )
    parser.add_argument("--at", type=float, default=0.0, metavar="SECONDS", help="the frame --face numbers refer to")
    parser.add_argument("--reference", type=Path, metavar="PHOTO", help="follow the person in this photo instead")
    parser.add_argument("--job", type=Path, metavar="DIR", help="job folder (default: OUT's name + .job)")
    parser.add_argument("--prompt", default=SwapSettings.prompt, metavar="TEXT")
    parser.add_argument("--strength", type=float, default=STRENGTH.default, metavar="S")
    parser.add_argument("--steps", type=int, default=int(STEPS.default), metavar="N")
    parser.add_argument("--guidance", type=float, default=GUIDANCE.default, metavar="G")
    parser.add_argument("--padding", type=float, default=PADDING.default, metavar="F")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="base seed; each face gets its own from it")
    parser.add_argument("--fast", action="store_true", help="a few-step LoRA and its scheduler (~4 UNet evaluations)")
    keep_expression_option(parser)
    parser.add_argument(
        "--temporal-blend",
        type=float,
        default=VIDEO_TEMPORAL_BLEND.default,
        metavar="F",
        help="share of the previous repaint, warped by optical flow, mixed into each (default %(default)s)",
    )
    parser.add_argument(
        "--detect-every", type=int, default=VIDEO_DETECT_EVERY, metavar="N", help="detect on every Nth frame"
    )
    parser.add_argument(
        "--max-gap", type=float, default=VIDEO_TRACK_MAX_GAP_S, metavar="SECONDS", help="misses filled in"
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-seconds", type=float, default=VideoLimits.max_seconds, metavar="S")
    limits.add_argument("--max-frames", type=int, default=VideoLimits.max_frames, metavar="N")
    limits.add_argument("--max-pixels", type=int, default=VideoLimits.max_pixels, metavar="N", help="per frame")
    add_ray_flags(parser)  # the repaints on Ray's actors; tracking, the blend and the encoding stay here
    parser.set_defaults(func=run)


def face_list(text: str) -> tuple[FaceRequest, ...]:
    """``0``, ``0,2``, ``all`` or ``0:Maria,1:Ben`` -> the faces of a clip's request."""
    from faceswap_core.errors import SettingsError

    try:
        faces = tuple(FaceRequest(*face_spec(part)) for part in text.split(",") if part.strip())
    except argparse.ArgumentTypeError as err:
        raise SettingsError(f"--face: {err}") from None
    if not faces:
        raise SettingsError("--face: give at least one face number")
    if any(face.face == FACE_REFERENCE for face in faces):
        raise SettingsError("--face: to follow the person in a photo, give it with --reference")
    return faces


def build_request(args: argparse.Namespace) -> ClipRequest:
    """The clip's request the flags describe (``--request FILE`` gives one as JSON; IN then replaces its clip)."""
    from faceswap_core.errors import SettingsError

    if args.request is not None:
        files = {} if args.clip is None else {"clip": str(args.clip)}
        return ClipRequest.from_json(read_request(args.request), files=files)
    if args.clip is None:
        raise SettingsError("give the clip to change (IN), or a request with --request")
    settings = flag_settings(args)
    faces = (FaceRequest(FACE_REFERENCE),) if args.reference else face_list(args.face)
    swap = SwapRequest(
        str(args.clip),
        faces=faces,
        person=args.person,
        settings=settings,
        reference_face=None if args.reference is None else str(args.reference),
    )
    return ClipRequest(
        swap, pick_s=args.at, temporal_blend=args.temporal_blend, detect_every=args.detect_every, max_gap_s=args.max_gap
    ).validate()


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from faceswap_core.cli import quiet_libraries
    from faceswap_core.cli.swap import check_people
    from faceswap_core.clip_request import plan_clip
    from faceswap_core.engine import Engine
    from faceswap_core.media import output_format, probe
    from faceswap_core.people import People
    from faceswap_core.video import faces_at, swap_clip

    quiet_libraries()
    output_format(args.output)
    request = build_request(args)  # a bad value (a --keep-expression weight) fails before the model loads
    limits = VideoLimits(args.max_seconds, args.max_frames, args.max_pixels)
    info = probe(request.clip, limits)  # a bad clip fails before the model loads
    engine = Engine(model_spec(args), lora_dir=args.lora_dir, landmarks=args.backend)
    check_people(engine, request.swap)  # a missing or unsafe LoRA fails here too
    if args.save_request is not None:
        args.save_request.write_text(request.to_json())
    settings = plan_clip(
        request, People(engine.loras), lambda: len(faces_at(info, request.pick_s, landmarks=args.backend)[1])
    )
    job_folder = args.job or args.output.with_name(args.output.name + ".job")
    frames = ray_frames(args, engine)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C: stop after the step, keep the work
    started = time.perf_counter()
    try:
        job = swap_clip(
            engine,
            request.clip,
            args.output,
            settings,
            job_folder=job_folder,
            limits=limits,
            progress=_print_progress if sys.stderr.isatty() else None,
            cancel=cancel,
            frames=frames,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    print(
        json.dumps(
            {
                "output": str(args.output),
                "frames": job.state.frames,
                "seeds": job.state.seeds,
                "seconds": round(time.perf_counter() - started, 2),
                "job": str(job_folder),
            }
        )
    )
    return 0


def ray_frames(args: argparse.Namespace, engine: Any) -> Any:
    """With ``--ray``: the cluster joined and its engine actors for the repaints; None runs them here."""
    workers = checked_workers(args)
    if not args.ray:
        return None
    from faceswap_core.cluster import connect
    from faceswap_core.cluster.data import RayFrames

    connect(args.ray)
    return RayFrames(engine.model, str(args.lora_dir), workers=workers, landmarks=args.backend)


def _print_progress(stage: str, done: int, total: int, left_s: float | None) -> None:
    left = "" if left_s is None else f", {left_s:.0f} s left"
    end = "\n" if done >= total else ""
    print(f"\r{stage}: frame {done} of {total}{left}   ", end=end, file=sys.stderr, flush=True)
