"""Who owns which person: on a public app, a visitor's people are theirs alone.

A visitor's photos of a friend must not become everyone's. Each person (and its LoRA and
checkpoints) a visitor adds or trains is claimed for that visitor in ``LORA_DIR/.owners.json``
(name -> a hash of the owner: a logged-in user name, else a browser session). People nobody claimed
are the operator's library: every visitor can use them, none can change them. The hidden file is
never listed as a LoRA; the command line, run by the machine's own user, sees and changes everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from faceswap_core.errors import SettingsError

OWNERS_FILE = ".owners.json"
_lock = threading.Lock()  # one writer at a time within the app; the file itself is replaced atomically


def owner_key(identity: str) -> str:
    """The stored form of an owner: a hash, so the file names no user or session."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


class Owners:
    """The claims of one people folder; reads the file on every call, like the registry reads the disk."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.file = Path(folder) / OWNERS_FILE

    def all(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def owner_of(self, name: str) -> str | None:
        """The owner of a person (``"anna"`` or ``"anna/checkpoint-20"``); None for the operator's library."""
        return self.all().get(name.split("/", 1)[0])

    def can_see(self, name: str, owner: str | None) -> bool:
        """Library people are seen by all; a claimed one by its owner (``owner`` None: the operator, sees all)."""
        claimed = self.owner_of(name)
        return owner is None or claimed is None or claimed == owner

    def can_change(self, name: str, owner: str | None) -> bool:
        """Only the owner (or the operator) changes a person; library people are read-only to visitors."""
        return owner is None or self.owner_of(name) == owner

    def claim(self, name: str, owner: str | None) -> None:
        """Record ``owner`` as the owner of the new person ``name`` (nothing to record for the operator)."""
        if owner is None:
            return
        with _lock:
            claims = self.all()
            if claims.get(name, owner) != owner and (self.file.parent / name).exists():
                raise SettingsError(f"a person named {name!r} already exists; choose another name")
            claims[name] = owner
            self._write(claims)

    def release(self, name: str, owner: str | None) -> None:
        """Forget a claim whose person was never written (a failed add or training)."""
        if owner is None:
            return
        with _lock:
            claims = self.all()
            if claims.get(name) == owner:
                del claims[name]
                self._write(claims)

    def _write(self, claims: dict[str, str]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".owners-", dir=self.file.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(claims, out)
            os.replace(temporary, self.file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
