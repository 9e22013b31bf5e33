"""Run ``app.py`` as a real server on a free port for the API and browser tests (one per test module)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(base_model: Path, lora_dir: Path, log_path: Path, ip_adapter: Path | None = None) -> Iterator[str]:
    """Start ``python app.py`` on the tiny model; yield its URL once it answers; stop it afterwards."""
    with serving_app(base_model, lora_dir, log_path, ip_adapter) as (url, _process):
        yield url


@contextmanager
def serving_app(
    base_model: Path,
    lora_dir: Path,
    log_path: Path,
    ip_adapter: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`running_app` that also yields the server process (to watch its memory or whether it died).

    ``ip_adapter``: an image-prompt adapter folder (a tiny one from ``save_tiny_ip_adapter``) for photos of people;
    ``extra_args``: more flags for ``app.py``.
    """
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(REPO / "app.py"), "--base", str(base_model), "--lora-dir", str(lora_dir)]
    command += ["--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    if ip_adapter is not None:
        command += ["--ip-adapter", str(ip_adapter)]
    command += list(extra_args)
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url + "config", timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"app.py did not answer within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def page_args(config: dict[str, Any], api_name: str, values: dict[str, Any]) -> list[Any]:
    """The data the page sends for one of its own (private) events, from the app's ``/config``: the values
    given by label, each other input as the page starts. API clients do not see these events; the page,
    and raw HTTP, still reach them."""
    [event] = [d for d in config["dependencies"] if d.get("api_name") == api_name]
    props = {component["id"]: component.get("props", {}) for component in config["components"]}
    return [values.get(props[i].get("label"), props[i].get("value")) for i in event["inputs"]]
