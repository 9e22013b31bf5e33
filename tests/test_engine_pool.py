"""``--gpus N`` without Ray: one engine per device behind the app's one, shown with two CPU "devices"."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

from faceswap_core.engine import Engine
from faceswap_core.engine_pool import EnginePool
from faceswap_core.requests import SwapRequest
from faceswap_core.settings import ModelSpec, SwapSettings
from faceswap_core.ui.config import parse_config


@pytest.fixture(scope="module")
def pool(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> EnginePool:
    lora_dir = tmp_path_factory.mktemp("pool-loras")
    return EnginePool(
        ModelSpec(str(tiny_model_dir), device="cpu"), ["cpu", "cpu"], lora_dir=lora_dir, allow_paths=False
    )


def requests(astronaut: Image.Image) -> list[SwapRequest]:
    photos = [
        astronaut.crop((100, 0, 403, 301)).resize((128, 128)),
        astronaut.crop((110, 0, 403, 291)).resize((96, 96)),
    ]
    return [SwapRequest(photo, settings=SwapSettings(steps=4, seed=seed)) for seed, photo in enumerate(photos)]


def test_two_swaps_run_at_once_each_on_its_engine_with_one_engines_results(
    pool: EnginePool, tiny_model_dir: Path, astronaut: Image.Image, tmp_path: Path
) -> None:
    # Each swap waits at its first step for the other to reach its own: with one pipeline (one lock) the
    # second could not start while the first waits, and the barrier would break.
    both_running = threading.Barrier(2, timeout=120)
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            waited = []

            def meet(step: int, total: int) -> None:
                if not waited:
                    waited.append(both_running.wait())

            results[i] = pool.run(requests(astronaut)[i], progress=meet)
        except BaseException as err:  # noqa: BLE001  (reported below, in the test's thread)
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert all(engine.loaded for engine in pool.engines)  # each swap loaded and used its own pipeline
    single = Engine(str(tiny_model_dir), lora_dir=tmp_path)
    for i, request in enumerate(requests(astronaut)):
        expected = single.run(request)
        assert results[i].image.tobytes() == expected.image.tobytes(), i  # type: ignore[attr-defined]
        assert results[i].record["faces"] == expected.record["faces"]  # type: ignore[attr-defined]


def test_training_parks_the_first_engine_and_swaps_go_to_the_other(pool: EnginePool, astronaut: Image.Image) -> None:
    with pool.parked():
        assert pool.engines[0] not in pool._free
        result = pool.run(requests(astronaut)[1])  # would wait for the parked engine if it had to
    assert result.image.size == (96, 96) and len(pool._free) == 2


def test_the_apps_gpu_queue_sends_as_many_swaps_as_the_pool_has_engines(pool: EnginePool) -> None:
    from faceswap_core.ui.demo import create_demo

    demo = create_demo(pool, load_model=False)
    limits = {fn.concurrency_limit for fn in demo.fns.values() if fn.concurrency_id == "gpu"}
    assert limits == {2}


def test_gpus_flag_is_read_and_refused_beside_ray() -> None:
    assert parse_config(["--gpus", "2"]).gpus == 2
    assert parse_config([], {"FACESWAP_GPUS": "3"}).gpus == 3
    with pytest.raises(SystemExit, match="--gpus is for one machine without Ray"):
        parse_config(["--gpus", "2", "--ray", "local"])
    with pytest.raises(SystemExit, match="must be 1 or more"):
        parse_config(["--gpus", "0"])
