"""Batches: one request applied to every photo of a folder; results and a report in another folder.

The request is seeded once, on the driver (and a rerun reuses the seed its report holds), so every
photo gets the same seed wherever it runs. A result's PNG holds no timings (they go to the report),
so its bytes depend on the request and the photo alone: the local loop and any Ray worker write the
same file. Only the driver writes, each result once, atomically; a result already in the folder is
not made again, so a stopped job resumes where it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from faceswap_core.errors import CancelledError, FaceswapError, SettingsError
from faceswap_core.files import atomic_path, write_text
from faceswap_core.images import check_header, png_bytes

if TYPE_CHECKING:
    from faceswap_core.engine import Engine
    from faceswap_core.requests import SwapRequest

REPORT_NAME = "batch.json"
DONE, SKIPPED, EXISTS, PENDING = "done", "skipped", "exists", "pending"
_STATUSES = (DONE, SKIPPED, EXISTS, PENDING)

# One photo's outcome: its PNG (None when skipped) and its report entry (status, reason, timings).
Outcome = tuple[bytes | None, dict[str, Any]]


class Executor(Protocol):
    """Runs the request on each photo and yields ``(position, outcome)`` for every photo, in order."""

    def map(self, request: SwapRequest, photos: Sequence[str]) -> Iterator[tuple[int, Outcome]]: ...


def swap_photo(engine: Engine, request: SwapRequest, photo: str) -> Outcome:
    """One photo of a batch, the same function on the driver and on a worker: a user error skips the photo."""
    from faceswap_core.records import result_metadata

    try:
        result = engine.run(replace(request, image=photo))
    except CancelledError:
        raise
    except FaceswapError as err:  # no face, a broken photo: said in the report, the batch goes on
        return None, {"status": SKIPPED, "reason": str(err)}
    timings = result.record.pop("timings")
    return png_bytes(result.image, result_metadata(result.record, result.painted)), {"status": DONE, "timings": timings}


class LocalExecutor:
    """The default: one resident engine in this process, one photo after another."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def map(self, request: SwapRequest, photos: Sequence[str]) -> Iterator[tuple[int, Outcome]]:
        for position, photo in enumerate(photos):
            yield position, swap_photo(self.engine, request, photo)


@dataclass(frozen=True)
class BatchItem:
    photo: Path
    output: Path


def run_batch(
    in_dir: Path,
    out_dir: Path,
    request: SwapRequest,
    executor: Executor,
    *,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Apply ``request`` to every file of ``in_dir``; write ``out_dir/STEM.png`` for each and ``batch.json``.

    The report lists every file in order with its status (done, skipped with the reason, exists from an
    earlier run, pending when the job stopped first); it is written even when the job fails, so a rerun
    with the same request picks up the rest.
    """
    if not in_dir.is_dir():
        raise SettingsError(f"{in_dir}: not a folder of photos")
    if out_dir.resolve() == in_dir.resolve():
        raise SettingsError("the results need a folder of their own (-o), not the folder of photos")
    out_dir.mkdir(parents=True, exist_ok=True)
    request = _continued(out_dir / REPORT_NAME, request).seeded()
    files = sorted(path for path in in_dir.iterdir() if path.is_file() and not path.name.startswith("."))
    entries, todo = _classify(files, out_dir)
    report = {"request": request.to_dict(), "photos": [entry for entry, _ in entries]}
    started = time.perf_counter()
    try:
        if todo:
            photos = [str(entries[i][1].photo) for i in todo]  # type: ignore[union-attr]
            for position, (png, outcome) in executor.map(request, photos):
                entry, item = entries[todo[position]]
                assert item is not None
                if png is not None:
                    with atomic_path(item.output) as scratch:
                        scratch.write_bytes(png)
                else:
                    entry["output"] = None
                entry.update(outcome)
                if on_item is not None:
                    on_item(entry)
    finally:
        report["counts"] = {status: sum(e["status"] == status for e, _ in entries) for status in _STATUSES}
        report["wall_s"] = round(time.perf_counter() - started, 3)
        write_text(out_dir / REPORT_NAME, json.dumps(report, indent=2))
    return report


def _classify(files: list[Path], out_dir: Path) -> tuple[list[tuple[dict[str, Any], BatchItem | None]], list[int]]:
    """Each file's report entry and work item; what is not an image, clashes or is already done is settled here."""
    entries: list[tuple[dict[str, Any], BatchItem | None]] = []
    todo: list[int] = []
    taken: dict[str, str] = {}
    for photo in files:
        output = out_dir / f"{photo.stem}.png"
        entry: dict[str, Any] = {"photo": photo.name, "output": output.name}
        try:
            check_header(photo, name=photo.name)  # the header only: a text file is refused in microseconds
        except FaceswapError as err:
            entries.append(({**entry, "output": None, "status": SKIPPED, "reason": str(err)}, None))
            continue
        if output.name in taken:
            reason = f"its result would overwrite {taken[output.name]}'s ({output.name}); rename one of them"
            entries.append(({**entry, "output": None, "status": SKIPPED, "reason": reason}, None))
            continue
        taken[output.name] = photo.name
        if output.is_file():  # written atomically, so present means complete
            entries.append(({**entry, "status": EXISTS}, None))
            continue
        todo.append(len(entries))
        entries.append(({**entry, "status": PENDING}, BatchItem(photo, output)))
    return entries, todo


def _continued(report_path: Path, request: SwapRequest) -> SwapRequest:
    """The request with the seed of the earlier run in this folder (when it sets none), or an error when the
    folder holds the results of another request: a resumed batch must not mix two."""
    if not report_path.is_file():
        return request
    try:
        earlier = json.loads(report_path.read_text(encoding="utf-8"))["request"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SettingsError(f"{report_path}: not a batch report; give an empty folder for the results") from None
    mine = request.to_dict()
    if request.settings.seed is None:
        mine["settings"]["seed"] = earlier.get("settings", {}).get("seed")
    if {k: v for k, v in mine.items() if k != "image"} != {k: v for k, v in earlier.items() if k != "image"}:
        raise SettingsError(
            f"{report_path.parent} holds results of another request; give a new folder (or the same settings)"
        )
    return replace(request, settings=replace(request.settings, seed=mine["settings"]["seed"]))
