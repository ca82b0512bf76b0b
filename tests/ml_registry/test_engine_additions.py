"""The engine functions the pipeline adds: figures at a line's thresholds, warm-started
training, the tuning search and the fresh-process probe (plain PyTorch, no Django)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml.engine.artifact import file_sha256, load_artifact
from ml.engine.dataset import LabeledImage
from ml.engine.evaluate import evaluate_at_thresholds, mean_box_iou
from ml.engine.train import TrainConfig, fit, save_model
from ml.engine.tuning import Trial, best_trial, tune
from ml.engine.types import ModelOutput, Region

ROOT = Path(__file__).resolve().parents[2]


def box(label, x0=0, y0=0, x1=10, y1=10, score=1.0):
    return Region(x0, y0, x1, y1, label, score)


class Fixed:
    classes = ("scratch", "crack")


def sample(*boxes):
    return LabeledImage(Path("x.png"), 64, 64, tuple(boxes))


def test_figures_at_both_thresholds_follow_the_routing_rules():
    samples = [sample(box("crack")), sample(box("crack")), sample(box("scratch")), sample()]
    outputs = [
        ModelOutput(0.9, (box("crack"),)),  # rejected
        ModelOutput(0.5, ()),  # neither accepted nor rejected: a human decides
        ModelOutput(0.2, ()),  # accepted: p <= accept threshold
        ModelOutput(0.8, ()),  # a false reject: p >= reject threshold
    ]
    figures = evaluate_at_thresholds(
        Fixed(), samples, accept_threshold=0.2, reject_threshold=0.8, outputs=outputs
    )
    assert figures["count"] == 4 and figures["defective_count"] == 3
    assert figures["class_counts"] == {"scratch": 1, "crack": 2}
    assert figures["reject"]["recall_per_class"] == {"scratch": 0.0, "crack": 0.5}
    assert figures["reject"]["precision"] == 0.5
    assert figures["accept"]["recall_per_class"] == {"scratch": 0.0, "crack": 1.0}
    assert figures["accept"]["recall"] == pytest.approx(2 / 3)
    assert figures["box_iou"] == pytest.approx(1 / 3)  # one perfect box of three


def test_a_class_the_model_has_no_output_for_still_gets_its_recall():
    samples = [sample(box("stain")), sample(box("stain")), sample(box("crack")), sample()]
    outputs = [
        ModelOutput(0.9, ()),
        ModelOutput(0.1, ()),
        ModelOutput(0.9, ()),
        ModelOutput(0.1, ()),
    ]
    figures = evaluate_at_thresholds(
        Fixed(), samples, accept_threshold=0.2, reject_threshold=0.8, outputs=outputs
    )
    assert figures["class_counts"] == {"crack": 1, "stain": 2}
    assert figures["reject"]["recall_per_class"] == {"crack": 1.0, "stain": 0.5}


def test_mean_box_iou_counts_a_missed_box_as_zero():
    truth = [(box("crack", 0, 0, 10, 10),), (box("dent"),)]
    found = [(box("crack", 0, 0, 10, 5),), ()]
    assert mean_box_iou(truth, found) == pytest.approx(0.25)


def test_best_trial_prefers_the_earlier_of_equal_scores():
    trials = [
        Trial(0.001, 0.1, 1, 0.8, 1.0),
        Trial(0.002, 0.1, 1, 0.9, 1.0),
        Trial(0.003, 0.1, 1, 0.9, 1.0),
    ]
    assert best_trial(trials).learning_rate == 0.002


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from ml.engine.dataset import load_coco_folder
    from ml.engine.generator import SurfaceConfig, generate_dataset

    root = tmp_path_factory.mktemp("engine-additions")
    generate_dataset(root, count=24, seed=2, config=SurfaceConfig(size=64))
    return load_coco_folder(root)


def test_tuning_records_every_trial_and_stops_when_the_budget_is_spent(samples):
    seen = []
    trials = tune(
        samples,
        base=TrainConfig(input_size=64, batch_size=8),
        learning_rates=[0.001, 0.003],
        augmentations=[0.1, 0.3],
        trial_epochs=1,
        time_budget_s=0.001,  # spent by the first trial, which always runs
        score=lambda model: 0.5,
        on_trial=seen.append,
    )
    assert len(trials) == 1 and seen == trials
    assert (trials[0].learning_rate, trials[0].augmentation, trials[0].epochs) == (0.001, 0.1, 1)


def test_a_warm_start_keeps_the_parents_preprocessing_and_grows_a_channel_per_new_class(
    samples, tmp_path
):
    parent = fit(samples, config=TrainConfig(epochs=1, input_size=64, batch_size=8))
    child = fit(samples, config=TrainConfig(epochs=1, input_size=128, batch_size=8), init=parent)
    assert child.preprocessing == parent.preprocessing  # 64, not the config's 128
    assert child.hyperparameters["warm_start"] is True
    assert child.classes == parent.classes
    strangers = [LabeledImage(samples[0].path, 64, 64, (box("smudge"), box("burr")))]
    grown = fit(strangers + samples, config=TrainConfig(epochs=1, input_size=64), init=parent)
    assert grown.classes == parent.classes + ("burr", "smudge")
    assert grown.network.map_head.out_channels == len(parent.classes) + 2

    path = tmp_path / "child.pt"
    sha = save_model(child, path, metrics={"auroc": 0.5})
    assert sha == file_sha256(path)
    assert load_artifact(path, expected_sha256=sha).metrics == {"auroc": 0.5}

    probe = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.probe",
            str(path),
            "--sha256",
            sha,
            "--image",
            str(samples[0].path),
            "--runs",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    figures = json.loads(probe.stdout)
    assert figures["runs"] == 3
    assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p95"]
    assert figures["peak_memory_mb"] > 50
