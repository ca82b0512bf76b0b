"""Fixtures of the registry and pipeline tests: a line whose inspections an inspector labeled
from generated images, and a pipeline configuration small enough to train in seconds."""

import pytest

PASSWORD = "registry-test-password-1"
# one trial, one epoch, 64-pixel images: every step runs for real, in seconds
TINY_RUN = {
    "epochs": 1,
    "trial_epochs": 1,
    "learning_rates": [0.003],
    "augmentations": [0.1],
    "input_size": 64,
    "batch_size": 16,
    "latency_runs": 3,
}


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """load(name, count, seed) -> samples of a generated 64-pixel folder, made once."""
    from ml.engine.dataset import load_coco_folder
    from ml.engine.generator import SurfaceConfig, generate_dataset

    root = tmp_path_factory.mktemp("generated")

    def load(name="base", count=60, seed=5):
        path = root / f"{name}-{count}-{seed}"
        if not (path / "annotations.json").exists():
            generate_dataset(path, count=count, seed=seed, config=SurfaceConfig(size=64))
        return load_coco_folder(path)

    return load


@pytest.fixture
def make_user(db):
    from accounts.services import create_user

    def make(username, role="inspector", lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password=PASSWORD,
        )

    return make


@pytest.fixture
def line(make_line):
    return make_line(name="press-7", level="human_only")


@pytest.fixture
def station(line, station_with_token):
    return station_with_token(line)[0]


@pytest.fixture
def inspector(make_user, line):
    return make_user("ines", "inspector", [line])


@pytest.fixture
def supervisor(make_user, line):
    return make_user("sam", "supervisor", [line])


@pytest.fixture
def label_images(station, inspector):
    """label_images(samples, prefix) -> inspections posted by the station and labeled by the
    inspector with the generator's boxes, through the services the pages use."""
    from demo.loop_scenario import inspect_and_label

    def label(samples, prefix="SN"):
        return [
            inspect_and_label(
                station=station, sample=sample, external_id=f"{prefix}-{i}", inspector=inspector
            )[0]
            for i, sample in enumerate(samples)
        ]

    return label


@pytest.fixture
def labeled_line(line, label_images, generated):
    label_images(generated())
    return line
