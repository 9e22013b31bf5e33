"""Start the face-swap web app: ``python app.py [--base MODEL] [--lora-dir DIR] [--port P] ...``.

Every flag also reads an environment variable (``FACESWAP_BASE_MODEL``, ``FACESWAP_PORT``, ...), so the
same file serves a workstation, a container and a Hugging Face Space. The engine is built once here
and shared by every visitor; swaps go through Gradio's queue one at a time, trainings through a
slot of their own.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

from faceswap_core.ui.config import AppConfig, parse_config

if TYPE_CHECKING:
    from faceswap_core.engine import Engine


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    with contextlib.suppress(ImportError):
        import spaces  # noqa: F401  (ZeroGPU wants it imported before torch touches CUDA)
    from faceswap_core.engine import Engine
    from faceswap_core.errors import FaceswapError
    from faceswap_core.settings import MAX_UPLOAD_BYTES
    from faceswap_core.ui.demo import CSS, HEAD, I18N, THEME, create_demo

    if config.ray is not None:
        engine = remote_engine(config)
    elif config.gpus > 1:
        engine = engine_pool(config)
    else:
        engine = Engine(config.model, lora_dir=config.lora_dir, allow_paths=False, landmarks=config.landmarks)
    try:
        engine.face_parser()  # fetched now: a wrong --face-parser stops the start, not a visitor's first mask
    except FaceswapError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    demo = create_demo(
        engine,
        vqa_model=config.vqa_model,
        shared_people=config.shared_people,
        photo_ttl_s=config.photo_ttl_s,
        limits=config.limits,
        exclusive_training=config.exclusive_training,
    )
    # one swap at a time per pipeline: one here, one per GPU with --gpus, one per replica on Ray;
    # trainings have a slot of their own (the Train tab's "train" concurrency group, --max-trainings)
    demo.queue(default_concurrency_limit=engine.slots).launch(
        server_name=config.host,
        server_port=config.port,
        share=config.share,
        auth=config.auth,
        theme=THEME,
        css=CSS,
        head=HEAD,
        i18n=I18N,
        max_file_size=MAX_UPLOAD_BYTES,  # Gradio refuses larger uploads before they reach a handler
    )
    return 0


def remote_engine(config: AppConfig) -> Engine:
    """The engine of ``--ray``: the Serve deployment started (or updated) on the cluster, and its stand-in here."""
    from faceswap_core.cluster import connect
    from faceswap_core.cluster.serve import RemoteEngine, deploy
    from faceswap_core.errors import FaceswapError

    try:
        connect(config.ray or "")
        handle = deploy(
            config.model, config.lora_dir, min_replicas=config.ray_min_replicas, max_replicas=config.ray_max_replicas
        )
    except FaceswapError as err:
        raise SystemExit(f"error: {err}") from None
    return RemoteEngine(
        config.model, handle, lora_dir=config.lora_dir, landmarks=config.landmarks, replicas=config.ray_max_replicas
    )


def engine_pool(config: AppConfig) -> Engine:
    """The engine of ``--gpus N``: one engine per GPU of this machine, behind one."""
    from faceswap_core.engine_pool import EnginePool, gpu_devices
    from faceswap_core.errors import FaceswapError

    try:
        devices = gpu_devices(config.gpus)
    except FaceswapError as err:
        raise SystemExit(f"error: {err}") from None
    return EnginePool(config.model, devices, lora_dir=config.lora_dir, allow_paths=False, landmarks=config.landmarks)


if __name__ == "__main__":
    sys.exit(main())
