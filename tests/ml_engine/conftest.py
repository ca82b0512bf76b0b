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
