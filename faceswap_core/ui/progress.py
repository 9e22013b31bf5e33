"""Long requests (Generate, Try strengths) as a newcomer sees them: progress where the result will appear,
the button turned into Stop while it runs, and one request at a time.

A click first brings the result view into view, switches to it and swaps the buttons (quick steps outside
the queue), so the page answers at once. While the request runs, a line over the result says the step, the
faces (or strengths) done and the time left: Gradio's own progress overlay disappears after a generator's first
output, and the requests stream a heartbeat (see ``common.cancellable``), so the line is sent with each
heartbeat instead. When the request ends, however it ends, the buttons come back.

Progress lands only on the line (``show_progress_on``), never on the tabs around the photo editor: on
every status message of any event, Gradio 6 reads back each component that ever showed a loading status,
and reading the ImageEditor uploads its photo and mask again (hundreds of uploads during one Generate,
issue 21). The Swap tab's other events that change the editor or its tabs show their progress elsewhere too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

Report = Callable[[int, int], None]
STARTING = "⏳ Starting… (waiting for the model)"
STOPPED = "Stopped."
LINE_ATTRIBUTE = "faceswap_line"  # set on the request's gr.Progress, which reaches the worker thread


@dataclass
class ProgressLine:
    """The latest progress of one request, written by its worker thread and sent by its heartbeat."""

    text: str = STARTING


def step_progress(progress: gr.Progress | None, what: str, parts: int, part_name: str) -> Report | None:
    """A step callback for the engine that also says how many of ``parts`` (faces, strengths) are done and
    about how long is left; it feeds Gradio's progress and the request's :class:`ProgressLine` (carried on
    ``progress`` by :func:`with_progress_line`).

    The engine counts steps over all parts together; the parts have the same number of steps each.
    """
    line = getattr(progress, LINE_ATTRIBUTE, None)
    if progress is None:
        return None
    first: list[tuple[int, float]] = []  # the first step seen and when: the time left is timed from there

    def report(step: int, total: int) -> None:
        desc = what
        if parts > 1:
            done = min(parts, step * parts // max(total, 1))
            desc = f"{what}: {done} of {parts} {part_name} done"
        progress((step, total), desc=desc, unit="steps")
        if line is not None:
            now = time.monotonic()
            if not first:
                first.append((step, now))
            start_step, start = first[0]
            left = (now - start) / (step - start_step) * (total - step) if step > start_step else None
            line.text = f"⏳ {desc}, step {step} of {total}" + (
                f", about {left:.0f} s left" if left is not None else ""
            )

    return report


def with_progress_line(run: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """``run`` (a :func:`~faceswap_core.ui.common.cancellable` handler) with one more output: the progress
    line, sent with every heartbeat and emptied with the result."""

    @functools.wraps(run)
    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        line = ProgressLine()
        for value in (*args, *kwargs.values()):  # the request's own gr.Progress carries the line to the worker
            if isinstance(value, gr.Progress):
                setattr(value, LINE_ATTRIBUTE, line)
        async for item in run(*args, **kwargs):
            values = item if isinstance(item, tuple) else (item,)
            heartbeat = all(value == gr.skip() for value in values)
            yield (*values, line.text if heartbeat else "")

    return stream


def running(count: int) -> tuple[Any, ...]:
    """The result view in front, the ``count`` start buttons hidden, Stop shown and the line started."""
    return (
        gr.Tabs(selected="result"),
        *(gr.Button(visible=False) for _ in range(count)),
        gr.Button(visible=True),
        STARTING,
    )


def idle(count: int) -> tuple[Any, ...]:
    """The start buttons back and Stop hidden."""
    return (*(gr.Button(visible=True) for _ in range(count)), gr.Button(visible=False))


def refused(count: int) -> tuple[Any, ...]:
    """After a refusal: the photo in view (the message is about it or its settings), the buttons back."""
    return (gr.Tabs(selected="mask"), *idle(count), "")


def stopped(count: int) -> tuple[Any, ...]:
    """After Stop: the buttons back, and the line says so."""
    return (*idle(count), STOPPED)


def ended(count: int, by_stop: bool) -> tuple[Any, ...]:
    """A request that did not succeed: stopped by the user (the line says so, over the result) or refused."""
    return (gr.Tabs(selected="result"), *stopped(count)) if by_stop else refused(count)


def wire_long_request(
    button: gr.Button,
    run: Callable[..., Any],
    *,
    views: gr.Tabs,
    buttons: list[gr.Button],
    stop: gr.Button,
    line: gr.Markdown,
    by_stop: gr.Checkbox,
    **event: Any,
) -> Any:
    """``button.click(run, **event)`` with the page's answer at once and the buttons restored afterwards;
    ``run``'s outputs end with ``line`` (see :func:`with_progress_line`).

    ``trigger_mode="once"`` ignores a second click while the first request is pending, so a double
    click never queues the same request twice; the buttons are hidden meanwhile in any case.
    Returns the request's event, for Stop to cancel.
    """
    count = len(buttons)
    # first of the click's listeners (the page runs them in turn, the request's until it ends): the line over
    # the result is in view from the start, however far down the settings one had scrolled
    button.click(None, js=f"() => document.getElementById('{views.elem_id}')?.scrollIntoView({{block: 'nearest'}})")
    on_line = {"show_progress": "hidden", "show_progress_on": [line]}  # not on the tabs (see the module doc)
    button.click(lambda: (*running(count), False), None, [views, *buttons, stop, line, by_stop], queue=False, **on_line)
    request = button.click(run, trigger_mode="once", show_progress_on=[line], **event)
    # not .then(): Gradio 6 runs it after a success only, and a refusal must bring the buttons back too
    request.success(lambda: idle(count), None, [*buttons, stop], queue=False)
    request.failure(
        lambda stop_pressed: ended(count, bool(stop_pressed)),
        by_stop,
        [views, *buttons, stop, line],
        queue=False,
        **on_line,
    )
    return request


def wire_stop(
    stop: gr.Button, requests: list[Any], *, buttons: list[gr.Button], line: gr.Markdown, by_stop: gr.Checkbox
) -> None:
    """Stop cancels ``requests``; ``by_stop`` is ticked in the page at once (before the cancelled request
    ends), so its failure is told apart from a refusal and "Stopped." stays over the result."""
    stop.click(None, None, by_stop, js="() => true", queue=False)
    stop.click(lambda: stopped(len(buttons)), None, [*buttons, stop, line], cancels=requests, queue=False)
