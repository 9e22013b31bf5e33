"""The Train tab's pieces that need no model: the loss chart's data, the photo notes, the captions table."""

from __future__ import annotations

import gradio as gr
import numpy as np

from faceswap_core.ui.train import SMOOTH_FROM_STEPS, _loss_table, smoothed


def _plot_data(losses: list[dict[str, float]]) -> dict:
    plot = gr.LinePlot(x="step", y="loss", color="series")
    return plot.postprocess(_loss_table(losses)).model_dump()


def test_loss_axes_are_numbers_even_before_the_first_step() -> None:
    for losses in ([], [{"step": 1, "loss": 1.146}, {"step": 2, "loss": 1.121}]):
        data = _plot_data(losses)
        # a nominal axis lists each value as a category, evenly spaced: a falling loss drawn as rising
        assert data["datatypes"] == {"step": "quantitative", "loss": "quantitative", "series": "nominal"}
    assert _plot_data([{"step": 1, "loss": 1.146}])["data"] == [[1, 1.146, "raw"]]


def test_long_runs_get_a_smoother_line_beside_the_raw_one() -> None:
    rng = np.random.default_rng(0)
    values = list(1.0 - np.linspace(0, 0.5, 200) + rng.normal(0, 0.1, 200))
    table = _loss_table([{"step": i + 1, "loss": v} for i, v in enumerate(values)])
    raw = table[table["series"] == "raw"]["loss"].to_numpy()
    smooth = table[table["series"] == "smoothed"]["loss"].to_numpy()
    assert np.allclose(raw, values) and len(smooth) == len(raw)
    assert np.abs(np.diff(smooth)).sum() < np.abs(np.diff(raw)).sum() / 5  # far less jagged
    assert smooth[0] == raw[0] and smooth[-1] < smooth[0] - 0.3  # debiased start, and the trend survives
    short = _loss_table([{"step": i + 1, "loss": 1.0} for i in range(SMOOTH_FROM_STEPS - 1)])
    assert set(short["series"]) == {"raw"}
    assert np.allclose(smoothed([2.0, 2.0, 2.0]), 2.0)
