"""Writing files so that no reader ever sees half of one: write a temporary file beside it, then rename.

Why: a LoRA loaded by a running app, ``training.json`` read by the registry, or a result PNG being
downloaded may be read at any moment. ``os.replace`` swaps the name in one step, so a reader sees
the old file or the new one; the old file's data stays valid for anyone who still has it open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from faceswap_core.errors import SettingsError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed to ``path``, on failure removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        yield Path(scratch)
        os.replace(scratch, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (see the module doc)."""
    with atomic_path(path) as scratch:
        scratch.write_text(text, encoding="utf-8")
    return Path(path)


def copy_file(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a file atomically: a reader of ``destination`` never sees a partial copy."""
    import shutil

    with atomic_path(destination) as scratch:
        shutil.copyfile(source, scratch)
    return Path(destination)


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, not after minutes of work, when ``path`` cannot be written (by creating and removing a file)."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise SettingsError(f"{target}: is a folder; give a file name")
    if not folder.is_dir():
        raise SettingsError(f"{target}: the folder {folder} does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise SettingsError(f"{target}: cannot write there ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)


def remove_stale(folder: str | os.PathLike, pattern: str, max_age_s: float) -> int:
    """Delete the entries of ``folder`` matching ``pattern`` untouched for ``max_age_s``; returns how many.

    Why: a process killed with -9 leaves its scratch folders behind (a staged person, a prepared
    dataset of 64 MB), and nothing else would ever delete them. The age keeps another running
    process's fresh scratch safe.
    """
    oldest = time.time() - max_age_s
    removed = 0
    for entry in Path(folder).glob(pattern):
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime >= oldest:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
    return removed
