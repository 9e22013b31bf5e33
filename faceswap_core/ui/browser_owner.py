"""A visitor's people stay theirs across reloads and server restarts (issue 23, item 6).

Gradio gives each page load a new session, and a visitor's people are claimed for the session that added or
trained them: after a reload (or a killed server's restart) the person whose training stopped was nobody's
to resume. The browser now keeps a random key in its localStorage, issued by the server on the first visit;
each page load continues the owner that key stands for (a hash of it, like any owner). The key is a bearer
secret like a session cookie: it names no one and leads to no more than the people its own browser made.
A logged-in user is the same owner on every page already, and API clients keep their session as before.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import gradio as gr

from faceswap_core.owners import owner_key
from faceswap_core.ui.common import continue_owner

STORAGE_KEY = "faceswap-owner"
# Gradio encrypts a BrowserState with a key it puts in every page's config, so the key hides nothing; a fixed
# one (instead of a random one per start) lets the browser's value be read after the server restarts.
STORAGE_SECRET = "faceswap-owner-v1"
KEY = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)


def continue_browser_owner(value: Any) -> str:
    """On page load: continue the owner of the browser's key (a new key for a browser without a well-formed
    one); returns the key for the browser to keep."""
    key = value if isinstance(value, str) and KEY.fullmatch(value) else secrets.token_urlsafe(16)
    continue_owner(owner_key(f"browser:{key}"))
    return key


def keep_owner_across_reloads(page: gr.Blocks) -> Any:
    """Wire it into ``page`` (the Blocks being built): the key in localStorage, read on every page load.
    Returns the load event: what a page load restores must follow it (``.then``), to list this owner's people."""
    kept = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
    return page.load(continue_browser_owner, kept, kept, queue=False, show_progress="hidden")
