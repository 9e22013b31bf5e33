"""Start the face-swap web app: ``python app.py [--base MODEL] [--lora-dir DIR] [--port P] ...``.

Every flag also reads an environment variable (``FACESWAP_BASE_MODEL``, ``FACESWAP_PORT``, ...), so the
same file serves a workstation, a container and a Hugging Face Space. The engine is built once here
and shared by every visitor; GPU work goes through Gradio's queue one job at a time.
"""

from __future__ import annotations

import contextlib
import sys

from faceswap_core.ui.config import parse_config


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    with contextlib.suppress(ImportError):
        import spaces  # noqa: F401  (ZeroGPU wants it imported before torch touches CUDA)
    from faceswap_core.engine import Engine
    from faceswap_core.settings import MAX_UPLOAD_BYTES
    from faceswap_core.ui.demo import CSS, HEAD, THEME, create_demo

    engine = Engine(config.model, lora_dir=config.lora_dir, allow_paths=False, landmarks=config.landmarks)
    demo = create_demo(
        engine,
        vqa_model=config.vqa_model,
        shared_people=config.shared_people,
        photo_ttl_s=config.photo_ttl_s,
        limits=config.limits,
    )
    demo.queue(default_concurrency_limit=1).launch(
        server_name=config.host,
        server_port=config.port,
        share=config.share,
        auth=config.auth,
        theme=THEME,
        css=CSS,
        head=HEAD,
        max_file_size=MAX_UPLOAD_BYTES,  # Gradio refuses larger uploads before they reach a handler
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
