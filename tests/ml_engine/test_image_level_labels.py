"""Training on every label: image-level labels without boxes, and images of several sizes."""

import json
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from ml.engine.dataset import LabeledImage, load_coco_folder
from ml.engine.evaluate import evaluate_at_thresholds
from ml.engine.generator import ALL_CLASSES, SurfaceConfig, generate_dataset
from ml.engine.train import MAP_POS_WEIGHT, TrainConfig, fit, training_loss


def _coco(folder: Path, entries: list[dict], annotations: list[dict]) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for entry in entries:
        (folder / entry["file_name"]).write_bytes(b"")
    coco = {
        "images": entries,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "crack"}],
    }
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder


def _entry(number: int, **extra) -> dict:
    return {"id": number, "file_name": f"images/{number}.png", "width": 64, "height": 64, **extra}


BOX = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]}


def test_an_image_level_defective_label_stays_apart_from_a_defect_free_image(tmp_path):
    entries = [
        _entry(1),  # plain COCO: its annotation makes it defective
        _entry(2),  # plain COCO, no annotation: defect-free
        _entry(3, image_label="defective"),  # a reject nobody drew boxes on
        _entry(4, image_label="ok"),
    ]
    boxed, plain_ok, label_only, ok = load_coco_folder(_coco(tmp_path, entries, [BOX]))
    assert [s.is_defective for s in (boxed, plain_ok, label_only, ok)] == [True, False, True, False]
    assert [s.has_map_target for s in (boxed, plain_ok, label_only, ok)] == [
        True,
        True,
        False,
        True,
    ]
    assert label_only.boxes == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(1, image_label="ok"), "labeled ok but has annotations"),
        (_entry(1, image_label="maybe"), "image_label 'maybe'"),
    ],
)
def test_a_contradictory_or_unknown_image_label_is_refused(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        load_coco_folder(_coco(tmp_path, [entry], [BOX]))


def test_the_map_loss_leaves_out_exactly_the_images_without_a_map_truth():
    torch.manual_seed(0)
    image_logits = torch.randn(3)
    map_logits = torch.randn(3, 2, 4, 4)
    labels = torch.tensor([1.0, 1.0, 0.0])
    target = torch.zeros(3, 2, 4, 4)
    target[0, 1, 1:3, 1:3] = 1.0  # image 0 has a box; image 1 is defective without one
    known = torch.tensor([True, False, True])
    weight = torch.tensor(MAP_POS_WEIGHT)

    def loss(maps):
        return float(training_loss(image_logits, maps, labels, target, known, pos_weight=weight))

    moved = map_logits.clone()
    moved[1] += 5.0  # whatever the map says where nobody drew, the loss is the same
    assert loss(moved) == pytest.approx(loss(map_logits), abs=1e-6)
    moved[2] += 5.0  # a defect-free image keeps its all-zero target
    assert loss(moved) > loss(map_logits) + 0.1
    # all known: the plain mean, as before image-level labels existed
    everything = torch.ones(3, dtype=torch.bool)
    plain = training_loss(image_logits, map_logits, labels, target, everything, pos_weight=weight)
    none = training_loss(image_logits, map_logits, labels, target, ~everything, pos_weight=weight)
    image_only = torch.nn.functional.binary_cross_entropy_with_logits(image_logits, labels)
    assert float(none) == pytest.approx(float(image_only))
    assert float(plain) > float(image_only)


def test_images_of_several_sizes_train_together_and_each_gets_boxes_in_its_own_pixels(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    generate_dataset(small, count=12, seed=1, config=SurfaceConfig(size=64, defect_rate=1.0))
    generate_dataset(large, count=12, seed=2, config=SurfaceConfig(size=112, defect_rate=1.0))
    samples = load_coco_folder(small) + load_coco_folder(large)
    lines = []
    model = fit(
        samples, config=TrainConfig(epochs=1, batch_size=8, input_size=64), log=lines.append
    )
    model.image_threshold = 0.0  # every image gets regions, however little one epoch taught
    for sample in (samples[0], samples[-1]):
        with Image.open(sample.path) as image:
            (output,) = model.predict([image.convert("RGB")])
        assert output.regions
        for region in output.regions:
            assert 0 <= region.x0 < region.x1 <= sample.width
            assert 0 <= region.y0 < region.y1 <= sample.height
    # one input, two cameras: the same map gives boxes scaled to each image's size
    with Image.open(samples[0].path) as image:
        batch = model.preprocess([image.convert("RGB")] * 2)
    at_64, at_112 = model.predict_batch(batch, [(64, 64), (112, 112)])
    assert [v for r in at_112.regions for v in r.bounds] == pytest.approx(
        [v * 112 / 64 for r in at_64.regions for v in r.bounds]
    )


# The line's first model knows stains and discoloration on brushed metal; then dents appear,
# six times as often as each old type. Inspectors only accept or reject: no boxes.
OLD_TYPES = ("spot", "discoloration")
NEW_TYPE = "dent"


def _line_images(folder: Path, count: int, seed: int, weights: dict) -> list[LabeledImage]:
    mix = tuple((name, float(weights.get(name, 0.0))) for name in ALL_CLASSES)
    config = SurfaceConfig(size=64, surface="metal", defect_mix=mix, max_defects=1)
    generate_dataset(folder, count=count, seed=seed, config=config)
    return load_coco_folder(folder)


@pytest.mark.slow
def test_accept_reject_labels_alone_teach_a_model_a_defect_type_it_never_saw(tmp_path):
    started = time.perf_counter()
    old = {name: 1.0 for name in OLD_TYPES}
    new = {**old, NEW_TYPE: 6.0}
    history = _line_images(tmp_path / "history", 300, 21, old)
    recent = _line_images(tmp_path / "recent", 400, 22, new)
    held_out = _line_images(tmp_path / "held-out", 300, 23, new)
    assert not any(b.label == NEW_TYPE for s in history for b in s.boxes)  # the premise

    first = fit(
        history,
        config=TrainConfig(epochs=12, learning_rate=5e-3, augmentation=0.1, input_size=64),
    )
    # what review decisions give: the image's verdict, never where the defect is
    verdicts = [LabeledImage(s.path, s.width, s.height, (), s.is_defective) for s in recent]
    tuned = fit(
        verdicts,
        config=TrainConfig(epochs=10, learning_rate=3e-3, augmentation=0.1),
        init=first,
    )
    assert tuned.hyperparameters["images_without_map_target"] == sum(s.is_defective for s in recent)
    thresholds = {"accept_threshold": 0.2, "reject_threshold": 0.8}
    before = evaluate_at_thresholds(first, held_out, **thresholds)
    after = evaluate_at_thresholds(tuned, held_out, **thresholds)
    recall = [f["reject"]["recall_per_class"][NEW_TYPE] for f in (before, after)]
    print(
        f"held-out new mix ({before['count']} images, {before['class_counts']}): "
        f"AUROC {before['auroc']:.3f} -> {after['auroc']:.3f}; {NEW_TYPE} recall at "
        f"reject 0.8 {recall[0]:.2f} -> {recall[1]:.2f}; precision "
        f"{before['reject']['precision']:.2f} -> {after['reject']['precision']:.2f}; "
        f"{time.perf_counter() - started:.0f}s"
    )
    assert after["auroc"] >= before["auroc"] + 0.05
    assert recall[1] >= 0.8
    for name in OLD_TYPES:  # what the line knew is kept: at most one more image missed
        count = before["class_counts"][name]
        was = before["reject"]["recall_per_class"][name] * count
        assert after["reject"]["recall_per_class"][name] * count >= was - 1, name
