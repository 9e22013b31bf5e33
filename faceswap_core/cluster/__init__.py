"""Running past one GPU on Ray: batches through Ray Data (:mod:`.data`), the app's swaps through Ray Serve
(:mod:`.serve`). Ray is optional: nothing here imports it until a ``--ray`` address is given.

Every node must see the same paths for what a request names: the photos of a batch, the request's
files and ``--lora-dir`` (people and LoRAs), i.e. shared storage. Results travel back as bytes.
"""

from __future__ import annotations

import socket
from typing import Any

from faceswap_core.errors import ClusterError, first_line

RAY_ADDRESS_ENV = "FACESWAP_RAY_ADDRESS"
LOCAL = "local"  # start a cluster on this machine
# Ray gives a new node a fixed 30 s to register; a busy machine can miss that once, so "local" tries again.
LOCAL_START_ATTEMPTS = 2
# Ray itself retries an address that does not answer for minutes; a TCP connection tried first fails in this bound.
REACH_TIMEOUT_S = 10.0


def connect(address: str, **init_args: Any) -> None:
    """Join the Ray cluster at ``address`` (``local``: start one here); a no-op when already connected."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'ray[data,serve]'") from None
    if ray.is_initialized():
        return
    if address not in (LOCAL, "auto"):
        check_reachable(address)
    args = {"include_dashboard": False, "configure_logging": False, **init_args}
    attempts = LOCAL_START_ATTEMPTS if address == LOCAL else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**args) if address == LOCAL else ray.init(address=address, **args)
            return
        except Exception as err:  # Ray raises a bare Exception when its node is slow to start
            ray.shutdown()
            if attempt == attempts:
                raise ClusterError(f"cannot reach the Ray cluster at {address}: {first_line(err)}") from None


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Open (and close) a TCP connection to ``host:port`` (``ray://`` addresses too) within ``timeout_s``, so an
    address nobody answers at is one clear error in seconds rather than Ray's minutes of retries."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ClusterError(f"the Ray address {address!r} is not HOST:PORT, ray://HOST:PORT, auto or {LOCAL}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        reason = f"no answer within {timeout_s:g} s" if isinstance(err, TimeoutError) else first_line(err)
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({reason})") from None


def cluster_gpus() -> int:
    """GPUs in the connected cluster: each engine actor takes one when there are any, a CPU otherwise."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))
