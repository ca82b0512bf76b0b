from pathlib import Path

import pytest

from ml.engine.generator import generate_dataset
from ml.engine.train import TrainConfig, TrainResult, train_model


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: trains a full model or runs real services; still part of the default run"
    )


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("small_dataset")
    generate_dataset(data_dir, count=40, seed=3)
    return data_dir


@pytest.fixture(scope="session")
def quick_model(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A barely trained model: enough to exercise saving, loading and prediction quickly."""
    out = tmp_path_factory.mktemp("quick_model") / "model.pt"
    return train_model(small_dataset, out, config=TrainConfig(epochs=1, batch_size=8))


@pytest.fixture(autouse=True)
def _one_thread_beside_the_slow_ones(request: pytest.FixtureRequest):
    """Under pytest -n 2 (make test) the slow file trains on every core while the other process
    runs the rest: those take one thread, so three threads share the two cores instead of four
    (torch spins while it waits for a busy core)."""
    import os

    import torch

    if not os.environ.get("PYTEST_XDIST_WORKER") or request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
