"""The Gradio app: one module per tab (``swap``, ``train``), assembled by ``demo.create_demo(engine)``.

Only this package imports Gradio. ``config`` (flags and environment) does not, so ``app.py --help``
stays instant; import ``faceswap_core.ui.demo`` for the interface itself.
"""
