"""Full-size photos kept on the server between a visitor's clicks, bounded in time and in bytes.

A web session's state lives as long as its session, and an API caller has no heartbeat to end one:
a 49 MP photo kept there stays for good. So the state holds a short random key and the photo lives
here: dropped once unused for ``ttl_s`` (a background sweep, so an idle server frees it too), and
the oldest dropped first when the photos together would pass ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import ctypes
import secrets
import threading
import time
from collections import OrderedDict

from PIL import Image

from faceswap_core.errors import SettingsError
from faceswap_core.settings import PHOTO_STORE_MAX_BYTES, PHOTO_TTL_S


class PhotoStore:
    """Photos by key; thread-safe (request threads put and get, a daemon thread sweeps)."""

    def __init__(self, ttl_s: float = PHOTO_TTL_S, max_bytes: int = PHOTO_STORE_MAX_BYTES) -> None:
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._photos: OrderedDict[str, tuple[Image.Image, float]] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    def put(self, image: Image.Image) -> str:
        """Keep ``image``; returns its key (what the session's state holds)."""
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._photos[key] = (image, time.monotonic())
            self._evict()
            if self._sweeper is None:
                self._sweeper = threading.Thread(target=self._sweep_forever, name="photo-store-sweep", daemon=True)
                self._sweeper.start()
        return key

    def get(self, key: str) -> Image.Image:
        """The photo, its time of last use renewed; a clear message once it was dropped."""
        with self._lock:
            entry = self._photos.pop(key, None)
            if entry is None:
                minutes = max(1, round(self.ttl_s / 60))
                raise SettingsError(
                    f"the photo is no longer on the server (photos are kept {minutes} min after their last use); "
                    "upload it again"
                )
            self._photos[key] = (entry[0], time.monotonic())
            return entry[0]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(_size(image) for image, _ in self._photos.values())

    def sweep(self) -> None:
        """Drop the photos unused for ``ttl_s``, and give their memory back to the system."""
        oldest = time.monotonic() - self.ttl_s
        with self._lock:
            expired = [key for key, (_, used) in self._photos.items() if used < oldest]
            for key in expired:
                del self._photos[key]
        if expired:
            _trim_heap()

    def _evict(self) -> None:
        total = sum(_size(image) for image, _ in self._photos.values())
        while total > self.max_bytes and len(self._photos) > 1:
            _, (image, _) = self._photos.popitem(last=False)
            total -= _size(image)

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(min(60.0, max(0.2, self.ttl_s / 4)))
            self.sweep()


def _size(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())


def _trim_heap() -> None:
    """Return freed heap memory to the system (glibc keeps freed 16 MB image blocks for reuse otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
