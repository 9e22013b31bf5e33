"""One family of user-facing errors.

Everything a user can cause (a bad file, no face, unsafe weights, a wrong setting) raises a
subclass of :class:`FaceswapError` whose message is a single sentence fit to show as is: the CLI
prints it on one line and exits 2, the UI wraps it in ``gr.Error``. Anything else is a bug.
"""

from __future__ import annotations


class FaceswapError(Exception):
    """A problem the user can fix; ``str(err)`` is one line that says what and where."""


class BadImageError(FaceswapError):
    """The input is not a usable image (unreadable, truncated, too small, too large)."""


class NoFaceError(FaceswapError):
    """No face (or not the requested face index) was found in an image."""


class MaskError(FaceswapError):
    """A mask is empty, unreadable or does not match its image."""


class UnsafeWeightsError(FaceswapError):
    """Weights in a format that can run code when loaded (pickle) were refused."""


class ModelLoadError(FaceswapError):
    """A base model, VAE or LoRA could not be loaded; the message says how to fix it."""


class SettingsError(FaceswapError):
    """A parameter is outside its allowed range or choices."""


class DatasetError(FaceswapError):
    """A training dataset is missing, empty or malformed."""


class BusyError(FaceswapError):
    """The server is doing this kind of work for somebody else; the message says until when."""


class CancelledError(FaceswapError):
    """The user cancelled a long operation; partial results that were saved are kept."""


class ClusterError(FaceswapError):
    """A Ray cluster could not be reached or went away; the job folder keeps what was done, so it resumes."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type when it has none): what a one-line message quotes."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]
