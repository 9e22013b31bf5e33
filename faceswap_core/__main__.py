"""``python -m faceswap_core`` entry point."""

from faceswap_core.cli import main

raise SystemExit(main())
