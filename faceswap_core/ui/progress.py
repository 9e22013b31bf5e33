"""Long requests (Generate, Try strengths) as a newcomer sees them: progress where the result will appear,
the button turned into Stop while it runs, and one request at a time.

A click first switches to the result view and swaps the buttons (a quick step outside the queue), so the
page answers at once; the request's own progress (steps, faces or strengths done, time left) is drawn
over the result; when it ends, however it ends, the buttons come back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

Report = Callable[[int, int], None]


def step_progress(progress: gr.Progress | None, what: str, parts: int, part_name: str) -> Report | None:
    """A step callback for the engine that also says how many of ``parts`` (faces, strengths) are done.

    The engine counts steps over all parts together; the parts have the same number of steps each.
    """
    if progress is None:
        return None

    def report(step: int, total: int) -> None:
        desc = what
        if parts > 1:
            done = min(parts, step * parts // max(total, 1))
            desc = f"{what}: {done} of {parts} {part_name} done"
        progress((step, total), desc=desc, unit="steps")

    return report


def running(count: int) -> tuple[Any, ...]:
    """The result view in front, the ``count`` start buttons hidden and Stop shown (before the work starts)."""
    return (gr.Tabs(selected="result"), *(gr.Button(visible=False) for _ in range(count)), gr.Button(visible=True))


def idle(count: int) -> tuple[Any, ...]:
    """The start buttons back and Stop hidden (after the work ended, failed or was stopped)."""
    return (*(gr.Button(visible=True) for _ in range(count)), gr.Button(visible=False))


def wire_long_request(
    button: gr.Button,
    run: Callable[..., Any],
    *,
    views: gr.Tabs,
    buttons: list[gr.Button],
    stop: gr.Button,
    **event: Any,
) -> Any:
    """``button.click(run, **event)`` with the page's answer at once and the buttons restored afterwards.

    ``trigger_mode="once"`` ignores a second click while the first request is pending, so a double
    click never queues the same request twice; the buttons are hidden meanwhile in any case.
    Returns the request's event, for Stop to cancel.
    """
    count = len(buttons)
    button.click(lambda: running(count), None, [views, *buttons, stop], queue=False)
    request = button.click(run, trigger_mode="once", **event)
    request.then(lambda: idle(count), None, [*buttons, stop], queue=False)
    return request
