import random

import pytest
import torch

from ml.engine.artifact import file_sha256, load_artifact
from ml.engine.dataset import load_coco_folder
from ml.engine.generator import generate_dataset
from ml.engine.train import TrainConfig, fit, split_samples, train_model


def test_train_result_describes_the_saved_artifact(quick_model):
    assert quick_model.artifact_path.is_file()
    assert quick_model.sha256 == file_sha256(quick_model.artifact_path)
    assert quick_model.train_count + quick_model.holdout_count == 40
    assert quick_model.holdout_count > 0
    assert quick_model.metrics["count"] == quick_model.holdout_count
    assert quick_model.hyperparameters["epochs"] == 1
    assert quick_model.hyperparameters["epochs_completed"] == 1
    assert quick_model.train_seconds > 0
    loaded = load_artifact(quick_model.artifact_path, expected_sha256=quick_model.sha256)
    assert loaded.metrics == quick_model.metrics
    assert loaded.architecture == quick_model.architecture


def test_split_depends_only_on_file_names(small_dataset):
    samples = load_coco_folder(small_dataset)
    train, holdout = split_samples(samples, 0.25)
    shuffled = list(samples)
    random.Random(4).shuffle(shuffled)
    train2, holdout2 = split_samples(shuffled, 0.25)
    assert {s.path for s in holdout} == {s.path for s in holdout2}
    assert {s.path for s in train} | {s.path for s in holdout} == {s.path for s in samples}
    assert not {s.path for s in train} & {s.path for s in holdout}
    assert split_samples(samples, 0.0) == (samples, [])


def test_logs_one_line_per_epoch(small_dataset, tmp_path):
    lines = []
    train_model(
        small_dataset,
        tmp_path / "m.pt",
        config=TrainConfig(epochs=2, batch_size=16),
        log=lines.append,
    )
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all("loss" in line and line.endswith("s") for line in epochs)


def test_time_budget_stops_training_after_the_epoch_that_reaches_it(small_dataset, tmp_path):
    lines = []
    result = train_model(
        small_dataset,
        tmp_path / "m.pt",
        config=TrainConfig(epochs=50, batch_size=16, time_budget_s=0.01),
        log=lines.append,
    )
    assert result.hyperparameters["epochs_completed"] == 1
    assert any("time budget" in line for line in lines)


def test_training_is_reproducible_for_a_seed(small_dataset, tmp_path):
    config = TrainConfig(epochs=1, batch_size=16, seed=3)
    a = train_model(small_dataset, tmp_path / "a.pt", config=config)
    b = train_model(small_dataset, tmp_path / "b.pt", config=config)
    assert a.metrics == b.metrics


def test_first_training_is_the_shared_fit_on_its_training_split(small_dataset, tmp_path):
    # a budget no run reaches keeps wall time out of the learning-rate schedule
    config = TrainConfig(epochs=1, batch_size=16, time_budget_s=1e9)
    result = train_model(small_dataset, tmp_path / "m.pt", config=config)
    train, _ = split_samples(load_coco_folder(small_dataset), config.holdout_fraction)
    model = fit(train, config=config)
    saved = load_artifact(result.artifact_path, expected_sha256=result.sha256)
    weights = model.network.state_dict()
    assert all(torch.equal(t, weights[k].cpu()) for k, t in saved.network.state_dict().items())
    assert saved.hyperparameters == {**model.hyperparameters, "holdout_fraction": 0.2}


def test_dataset_without_training_images_is_refused(tmp_path):
    generate_dataset(tmp_path, count=0, seed=0)
    with pytest.raises(ValueError, match="no images left for training"):
        train_model(tmp_path, tmp_path / "m.pt")


@pytest.mark.parametrize(
    "changes",
    [
        {"epochs": 0},
        {"input_size": 100},
        {"augmentation": 1.0},
        {"holdout_fraction": 1.0},
        {"time_budget_s": 0},
    ],
)
def test_invalid_train_config_is_rejected(changes):
    with pytest.raises(ValueError):
        TrainConfig(**changes)
