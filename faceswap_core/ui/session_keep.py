"""The Swap tab's work kept across a reload or a closed tab: the photo, each face's person and strength,
the painted mask and the last result (issue 21: Back, Forward or a reload lost everything).

The browser keeps only a small value in its localStorage (``gr.BrowserState``): a random ticket and the
controls. That value comes from the client, so it is read like any other input, and a ticket leads only to
what the server stored under it itself: the photo stays in the expiring :class:`PhotoStore`, the result
files in ``ResultFiles``. A ticket is issued to one browser session and kept by its owner; whoever sends it
back continues that owner (the people it added come back too). An unknown or expired ticket gets a plain
sentence, never an error: the page has just loaded and nothing was asked.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import Context
from PIL import Image

from faceswap_core.errors import FaceswapError
from faceswap_core.face_choice import KEEP, NO_LORA, default_likeness
from faceswap_core.settings import IDENTITY_SCALE, RESULT_MAX_AGE_S, STRENGTH
from faceswap_core.ui import guards
from faceswap_core.ui.browser_owner import keep_owner_across_reloads
from faceswap_core.ui.common import continue_owner, current_owner
from faceswap_core.ui.person_picker import likeness_slider, refresh_lora_picker
from faceswap_core.ui.swap_handlers import SwapHandlers
from faceswap_core.ui.swap_photo import (
    EDIT_NOTE,
    TargetPhoto,
    editor,
    face_picker,
    mask_settings,
    summary,
)
from faceswap_core.ui.swap_result import RESULT_NOTE

STORAGE_KEY = "faceswap-swap-tab"
VERSION = 1
MAX_KEPT = 2000  # sessions whose work is kept at once (each a few KB: the photo itself is in the PhotoStore)
TICKET = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
FIELDS = {"v", "ticket", "face", "person", "strength", "prompt", "likeness"}
log = logging.getLogger("faceswap.app")


@dataclass(frozen=True)
class Controls:
    """What the browser keeps besides the ticket, checked: the face shown and its person, strength, prompt, likeness."""

    face: int = 0
    person: str = NO_LORA
    strength: float = STRENGTH.default
    prompt: str = ""
    likeness: float | None = None


@dataclass
class Kept:
    photo: TargetPhoto
    owner: str | None  # who made it: the session that reloads continues this owner
    used: float


def read_value(value: Any) -> tuple[str | None, Controls] | None:
    """The browser's value as (ticket, controls), or None when it is not one this app wrote (then nothing is
    restored: a forged or damaged value changes nothing and breaks nothing)."""
    if value is None:
        return None
    try:
        if not isinstance(value, dict) or set(value) - FIELDS or value.get("v") != VERSION:
            raise ValueError("not a value this app wrote")
        ticket = value.get("ticket")
        if ticket is not None and not (isinstance(ticket, str) and TICKET.fullmatch(ticket)):
            raise ValueError("a malformed ticket")
        likeness = value.get("likeness")
        controls = Controls(
            face=int(guards.number(value.get("face", 0), "face", integer=True)),
            person=guards.text(value.get("person"), "person", max_chars=300).strip(),
            strength=guards.number(value.get("strength", STRENGTH.default), "strength", STRENGTH),
            prompt=guards.text(value.get("prompt"), "prompt").strip(),
            likeness=None if likeness is None else guards.number(likeness, "likeness", IDENTITY_SCALE),
        )
        if controls.face < 0:
            raise ValueError("a negative face")
    except (ValueError, FaceswapError) as err:
        log.warning("kept page state ignored: %s", guards.public_message(str(err)))
        return None
    return ticket, controls


class SessionKeeper:
    """Each ticket's photo (the session's :class:`TargetPhoto`, with its choices and last result); bounded, expiring."""

    def __init__(self, handlers: SwapHandlers, ttl_s: float = RESULT_MAX_AGE_S, max_kept: int = MAX_KEPT) -> None:
        self.handlers = handlers
        self.ttl_s = ttl_s
        self.max_kept = max_kept
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def remember(
        self, value: Any, photo: Any, face: Any, person: Any, strength: Any, prompt: Any, likeness: Any
    ) -> dict[str, Any]:
        """The browser's new value after a change: the controls, and a ticket to the photo (the same ticket
        while this owner keeps working on it). A value that cannot be read is not stored."""
        fields = {"face": face, "person": person, "strength": strength, "prompt": prompt, "likeness": likeness}
        read = read_value({"v": VERSION, **fields})
        controls = read[1] if read is not None else Controls()
        ticket = None
        if isinstance(photo, TargetPhoto):
            ticket = self._put(photo, (read_value(value) or (None, controls))[0])
        return {"v": VERSION, "ticket": ticket, **controls.__dict__}

    def _put(self, photo: TargetPhoto, ticket: str | None) -> str:
        owner = current_owner()
        now = time.monotonic()
        with self._lock:
            self._drop_expired(now)
            known = self._kept.get(ticket) if ticket else None
            if ticket is None or known is None or known.owner != owner:
                ticket = secrets.token_urlsafe(16)  # a new ticket: never take over one this owner was not given
            self._kept[ticket] = Kept(photo, owner, now)
            self._kept.move_to_end(ticket)
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)
        return ticket

    def _take(self, ticket: str | None) -> Kept | None:
        if ticket is None:
            return None
        with self._lock:
            self._drop_expired(time.monotonic())
            kept = self._kept.get(ticket)
            if kept is not None:
                kept.used = time.monotonic()
                self._kept.move_to_end(ticket)
            return kept

    def _drop_expired(self, now: float) -> None:
        while self._kept and next(iter(self._kept.values())).used < now - self.ttl_s:
            self._kept.popitem(last=False)

    def restore(self, value: Any) -> tuple[Any, ...]:
        """On page load: what was kept, back on the page (see :data:`RESTORED`), and a sentence on what
        could not come back. The person picker is read afresh either way (people come and go)."""
        read = read_value(value)
        fresh = (gr.skip(),) * (len(RESTORED) - 1)
        if read is None:
            return (refresh_lora_picker(self.handlers.engine, NO_LORA), *fresh)
        ticket, controls = read
        kept = self._take(ticket)
        if kept is not None:
            if kept.owner is not None:
                continue_owner(kept.owner)
            try:
                kept.photo.original  # noqa: B018 (renews the photo, or says it has gone)
            except FaceswapError:
                kept = None
        if kept is None:
            note = None
            if ticket is not None:
                minutes = max(1, round(self.handlers.photos.ttl_s / 60))
                note = (
                    f"Your photo from before is no longer on the server (photos are kept {minutes} min after their "
                    "last use): upload it again. Your choices are back."
                )
            return self._controls_only(controls, note)
        return self._photo_back(kept.photo, controls)

    def _person(self, name: str) -> tuple[str, str]:
        """``name`` if this visitor can still pick it, else "" and a sentence saying so."""
        try:
            return self.handlers._person(name), ""
        except FaceswapError:
            return NO_LORA, f" {guards.public_message(name)} is no longer available: pick a person again."

    def _controls_only(self, controls: Controls, note: str | None) -> tuple[Any, ...]:
        person, missing = self._person(controls.person)
        picker = refresh_lora_picker(self.handlers.engine, NO_LORA, select=person)
        slider = gr.skip() if person == KEEP else likeness_slider(self.handlers._who(person), False, controls.likeness)
        message = gr.skip() if note is None and not missing else (note or "").strip() + missing
        skipped = (gr.skip(),) * 4
        return (picker, *skipped, message, controls.strength, controls.prompt, slider, *skipped, gr.skip())

    def _photo_back(self, kept: TargetPhoto, controls: Controls) -> tuple[Any, ...]:
        handlers = self.handlers
        photo = replace(kept, choices={})  # this page's own copy: another tab may restore the same ticket
        gone = []
        for index, choice in kept.choices.items():  # the photos uploaded beside it did not survive the reload
            person, missing = self._person(choice.person)
            if missing:
                gone.append(missing)  # that face is kept as it is now
                continue
            who = handlers._who(person)
            photo.choices[index] = choice if who.photos else replace(choice, likeness=default_likeness(who, False))
        face = controls.face if controls.face < max(1, len(photo.faces)) else 0
        choice = photo.choices.get(face)
        mask = _mask(photo.painted, photo.display_size)
        if mask is None and photo.choices:
            mask = handlers.masks_of(photo, mask_settings({}))
        picker = refresh_lora_picker(handlers.engine, NO_LORA, select=choice.person if choice else KEEP)
        if choice is None:
            strength, prompt, slider = gr.skip(), gr.skip(), likeness_slider(None, False)
        else:
            slider = likeness_slider(handlers._who(choice.person), False, choice.likeness)
            strength, prompt = choice.strength, choice.prompt
        shown, views = (gr.skip(),) * 3, gr.skip()
        note = f"Back as you left it: your photo and each face's person. {EDIT_NOTE}"
        if photo.last is not None:
            before, after, download, record = photo.last
            if all(Path(path).is_file() for path in (before, after, download)):
                width, height = photo.size
                button = gr.DownloadButton(f"Download full-size PNG ({width}×{height})", value=download, visible=True)
                shown, views = ((before, after), button, record), gr.Tabs(selected="result")
                note = f"Back as you left it: your photo, its people and the last result. {RESULT_NOTE}"
            else:
                note = f"Your photo and its people are back; the last result expired: press Generate again. {EDIT_NOTE}"
        return (
            picker,
            photo,
            editor(photo, mask),
            face_picker(photo, face),
            summary(photo),
            note + "".join(dict.fromkeys(gone)),
            strength,
            prompt,
            slider,
            *shown,
            views,
            gr.Button(visible=False),  # the Example button: the face picker takes its place, as after a load
        )


# What :meth:`SessionKeeper.restore` returns, in order (the names of create_swap_tab's components).
RESTORED = (
    "person",
    "photo",
    "editor",
    "face",
    "summary",
    "mask_note",
    "strength",
    "prompt",
    "likeness",
    "result",
    "download",
    "record",
    "views",
    "example",
)
REMEMBERED = ("photo", "face", "person", "strength", "prompt", "likeness")


def _mask(png: bytes | None, size: tuple[int, int]) -> Image.Image | None:
    """The kept painted mask, when it is one and fits the photo (the server wrote it; still, checked)."""
    if png is None:
        return None
    with Image.open(io.BytesIO(png)) as image:
        image.load()
    return image.convert("L") if image.size == size else None


def keep_across_reloads(
    handlers: SwapHandlers,
    components: dict[str, Any],
    after: Sequence[Any],
    on_load: Sequence[tuple[Callable[[], Any], Any]] = (),
) -> SessionKeeper:
    """Wire it: each event in ``after`` (a new photo, a person picked, a strength moved, a result) updates
    the browser's value once it succeeded; loading the page restores it. ``on_load``: (function, output)
    pairs that read the visitor's people on every page load, run once the browser's owner is known."""
    keeper = SessionKeeper(handlers)
    kept = gr.BrowserState(None, storage_key=STORAGE_KEY)
    remembered = [kept, *(components[name] for name in REMEMBERED)]
    for event in after:
        event.success(keeper.remember, remembered, kept, queue=False, show_progress="hidden")
    outputs = [components[name] for name in RESTORED]
    # On page load only: gr.on(None, ...) with an input would also run on every change of the kept value;
    # after the browser's owner is continued, so that the person picker lists the people it made before
    page = Context.root_block  # the Blocks being built (the tab has no handle on it)
    owner = keep_owner_across_reloads(page)
    # progress on the note, not on the editor: see ``progress``'s module doc (each later status re-uploads it)
    restored = {"show_progress": "hidden", "show_progress_on": [components["mask_note"]]}
    owner.then(keeper.restore, kept, outputs, queue=False, **restored)
    for function, output in on_load:
        owner.then(function, None, output, queue=False, **restored)
    return keeper
