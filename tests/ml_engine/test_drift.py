"""Data drift on images (ml.engine.drift): the per-image record, the schema skew, and the
window tests: no alarm on the training camera or on a shift inside the training augmentation,
an alarm on a darker, blurred camera."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from ml.engine import drift
from ml.engine.artifact import load_artifact
from ml.engine.generator import SurfaceConfig, render_surface

REFERENCE_ITEMS = 150
WINDOW_ITEMS = 120


def images(seed: int, count: int, **knobs) -> list[Image.Image]:
    config = SurfaceConfig(**knobs)
    return [render_surface(np.random.default_rng([seed, i]), config)[0] for i in range(count)]


@pytest.fixture(scope="module")
def model(quick_model):
    torch.set_num_threads(2)
    return load_artifact(quick_model.artifact_path)


@pytest.fixture(scope="module")
def reference(model):
    jitter = model.hyperparameters["augmentation"]
    return drift.build_reference(model, images(1, REFERENCE_ITEMS), jitter=jitter, steps=5)


def window(model, imgs) -> drift.Window:
    results = drift.predict_with_statistics(model, imgs)
    return drift.Window.from_records(
        [record for _, record in results], [output.defect_probability for output, _ in results]
    )


def check(reference, model, seed, **knobs) -> dict:
    return drift.compare(
        reference,
        window(model, images(seed, WINDOW_ITEMS, **knobs)),
        reject_threshold=0.5,
        policy=drift.DriftPolicy(),
    )


def test_statistics_follow_what_the_camera_changes():
    base = images(5, 1)[0]
    pixels = np.asarray(base)
    figures = drift.input_statistics(pixels)
    assert set(figures) == set(drift.STATISTICS)
    darker = drift.input_statistics(pixels.astype(np.float32) / 255.0 * 0.5)
    assert darker["brightness"] == pytest.approx(figures["brightness"] * 0.5, rel=1e-4)
    assert darker["contrast"] == pytest.approx(figures["contrast"] * 0.5, rel=1e-4)
    assert darker["red_green"] == pytest.approx(figures["red_green"], rel=1e-4)
    blurred = drift.input_statistics(np.asarray(base.filter(ImageFilter.GaussianBlur(1.5))))
    assert blurred["sharpness"] < 0.5 * figures["sharpness"]
    grey = np.full((64, 64, 3), 100, np.uint8)
    assert drift.input_statistics(grey) == pytest.approx(
        {
            "brightness": 100 / 255,
            "contrast": 0.0,
            "sharpness": 0.0,
            "red_green": 1.0,
            "blue_green": 1.0,
        },
        abs=1e-4,
    )


def test_prediction_with_statistics_gives_the_models_own_outputs(model):
    imgs = images(7, 6)
    results = drift.predict_with_statistics(model, imgs)
    for (output, record), plain in zip(results, model.predict(imgs), strict=True):
        assert output.defect_probability == pytest.approx(plain.defect_probability, abs=1e-6)
        assert output.regions == plain.regions
        assert len(record["embedding"]) == drift.EMBEDDING_SIZE
        assert record["schema"] == {"width": 128, "height": 128, "mode": "RGB", "channels": 3}
        assert record["skew"] == []
    assert drift.predict_with_statistics(model, []) == []


def test_training_records_what_it_saw_and_serving_flags_the_rest(model):
    seen = model.hyperparameters["input_schema"]
    assert seen == {"sizes": [[128, 128]], "modes": ["RGB"], "channels": [3]}
    big = Image.new("RGB", (2448, 2048))
    grey = Image.new("L", (128, 128))
    (_, big_record), (_, grey_record) = drift.predict_with_statistics(model, [big, grey])
    assert big_record["skew"] == ["size 2448x2048"]
    assert grey_record["skew"] == ["mode L", "1 channels"]
    # an artifact that does not say what it saw flags nothing rather than everything
    assert drift.schema_skew(drift.image_schema(big), None) == []


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_alarm_on_the_training_camera(reference, model, seed):
    result = check(reference, model, seed)
    assert result["verdict"] == "ok", result["tests"]
    assert result["tests"]["embedding"]["auc"] < 0.65


def test_no_alarm_on_a_lighting_change_inside_the_training_augmentation(reference, model):
    result = check(reference, model, 21, lighting=0.9)
    assert result["verdict"] == "ok", result["tests"]


def test_a_darker_blurred_camera_is_data_drift(reference, model):
    result = check(reference, model, 31, lighting=0.6, blur=1.5)
    assert result["verdict"] == "data_drift"
    shifted = {name for name, t in result["tests"].items() if t["shifted"]}
    assert {"brightness", "sharpness"} <= shifted
    sharpness = result["tests"]["sharpness"]
    assert sharpness["window_median"] < sharpness["reference_median"]


def test_too_few_items_give_no_verdict(reference, model):
    result = drift.compare(
        reference, window(model, images(41, 10)), reject_threshold=0.5, policy=drift.DriftPolicy()
    )
    assert result == {"items": 10, "reference_items": REFERENCE_ITEMS, "verdict": "too_few_items"}


def synthetic_reference(rng, n=300) -> drift.Reference:
    return drift.Reference(
        gains=[1.0],
        statistics={name: [rng.normal(size=n).tolist()] for name in drift.STATISTICS},
        embeddings=[rng.normal(size=(n, 4)).tolist()],
        probabilities=[rng.uniform(size=n).tolist()],
        schema={},
    )


def synthetic_window(rng, n=100, shift=0.0) -> drift.Window:
    return drift.Window(
        statistics={name: rng.normal(size=n) + shift for name in drift.STATISTICS},
        embeddings=rng.normal(size=(n, 4)),
        probabilities=rng.uniform(size=n),
    )


def test_the_correction_keeps_the_false_alarm_rate_at_alpha():
    """Six tests at 5% each would alarm on about a quarter of unshifted windows; corrected
    together, on at most about 5%."""
    rng = np.random.default_rng(0)
    policy = drift.DriftPolicy(alpha=0.05, auc_threshold=0.5)
    trials = 100
    alarms = uncorrected = 0
    for _ in range(trials):
        result = drift.compare(
            synthetic_reference(rng), synthetic_window(rng), reject_threshold=0.5, policy=policy
        )
        alarms += result["data_drift"]
        uncorrected += any(t["p"] < policy.alpha for t in result["tests"].values())
    assert alarms <= 8
    assert uncorrected > alarms
    shifted = drift.compare(
        synthetic_reference(rng),
        synthetic_window(rng, shift=0.5),
        reject_threshold=0.5,
        policy=policy,
    )
    assert shifted["data_drift"]


def test_holm_adjusts_step_down():
    adjusted = drift.holm(np.array([0.01, 0.04, 0.03, 0.5]))
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_prediction_drift_reads_the_reject_rate_and_the_histogram():
    rng = np.random.default_rng(1)
    reference = rng.beta(0.5, 2.0, 500)
    policy = drift.DriftPolicy()
    same = drift.prediction_drift(
        [reference], rng.beta(0.5, 2.0, 200), reject_threshold=0.5, policy=policy
    )
    assert not same["shifted"]
    low, high = same["reject_difference_interval"]
    assert low < 0 < high
    more_rejects = drift.prediction_drift(
        [reference], rng.beta(2.0, 0.5, 200), reject_threshold=0.5, policy=policy
    )
    assert more_rejects["shifted"]
    assert more_rejects["reject_difference_interval"][0] > 0.3
    # a gain the model was trained on that gives the window's outputs explains them
    assert not drift.prediction_drift(
        [reference, rng.beta(2.0, 0.5, 500)],
        rng.beta(2.0, 0.5, 200),
        reject_threshold=0.5,
        policy=policy,
    )["shifted"]
