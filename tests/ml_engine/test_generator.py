import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from ml.engine.generator import DEFECT_CLASSES, SurfaceConfig, generate_dataset, render_surface

DEFAULT = SurfaceConfig()


def render(seed: int, config: SurfaceConfig = DEFAULT):
    image, regions = render_surface(np.random.default_rng(seed), config)
    return np.asarray(image, dtype=np.float64), regions


def high_frequency_energy(pixels: np.ndarray) -> float:
    gray = pixels.mean(axis=2)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def test_render_surface_is_deterministic_for_a_seed():
    a, regions_a = render(11, SurfaceConfig(defect_rate=1.0))
    b, regions_b = render(11, SurfaceConfig(defect_rate=1.0))
    assert np.array_equal(a, b)
    assert regions_a == regions_b


def test_different_seeds_give_different_images():
    assert not np.array_equal(render(1)[0], render(2)[0])


def test_render_surface_returns_rgb_image_of_configured_size():
    image, _ = render_surface(np.random.default_rng(0), SurfaceConfig(size=96))
    assert image.mode == "RGB"
    assert image.size == (96, 96)


@pytest.mark.parametrize("surface", ["metal", "phone", "mixed"])
def test_every_surface_kind_renders_defects_inside_the_image(surface):
    config = SurfaceConfig(surface=surface, defect_rate=1.0, max_defects=3)
    for seed in range(15):
        _, regions = render(seed, config)
        assert 1 <= len(regions) <= 3
        for r in regions:
            assert 0 <= r.x0 < r.x1 <= 128 and 0 <= r.y0 < r.y1 <= 128
            assert r.label in DEFECT_CLASSES
            assert r.score == 1.0


def test_generate_dataset_is_deterministic_for_a_seed(tmp_path):
    first = generate_dataset(tmp_path / "a", count=6, seed=5)
    second = generate_dataset(tmp_path / "b", count=6, seed=5)
    assert first.read_text() == second.read_text()
    for i in range(6):
        name = f"images/{i:05d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_generate_dataset_writes_valid_coco_with_boxes_inside_images(tmp_path):
    path = generate_dataset(tmp_path, count=30, seed=2, config=SurfaceConfig(size=112))
    assert path == tmp_path / "annotations.json"
    coco = json.loads(path.read_text())
    assert coco["info"]["seed"] == 2
    assert coco["info"]["config"]["size"] == 112
    assert coco["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(DEFECT_CLASSES)]
    assert [im["id"] for im in coco["images"]] == list(range(1, 31))
    images = {im["id"]: im for im in coco["images"]}
    for im in coco["images"]:
        assert im["file_name"] == f"images/{im['id'] - 1:05d}.png"
        with Image.open(tmp_path / im["file_name"]) as image:
            assert image.size == (im["width"], im["height"]) == (112, 112)
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"]) > 0
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        image = images[ann["image_id"]]
        assert w > 0 and h > 0
        assert 0 <= x and x + w <= image["width"] and 0 <= y and y + h <= image["height"]
        assert ann["area"] == pytest.approx(w * h)
        assert ann["iscrowd"] == 0
        assert 1 <= ann["category_id"] <= len(DEFECT_CLASSES)


def test_generate_dataset_reports_progress_for_every_image(tmp_path):
    calls = []
    generate_dataset(
        tmp_path, count=4, seed=0, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_image_depends_only_on_seed_and_index_not_on_count(tmp_path):
    generate_dataset(tmp_path / "short", count=2, seed=9)
    generate_dataset(tmp_path / "long", count=5, seed=9)
    for name in ("images/00000.png", "images/00001.png"):
        assert (tmp_path / "short" / name).read_bytes() == (tmp_path / "long" / name).read_bytes()


def test_defect_rate_zero_gives_no_annotations(tmp_path):
    path = generate_dataset(tmp_path, count=20, seed=1, config=SurfaceConfig(defect_rate=0.0))
    assert json.loads(path.read_text())["annotations"] == []


def test_defect_rate_one_annotates_every_image(tmp_path):
    path = generate_dataset(tmp_path, count=20, seed=1, config=SurfaceConfig(defect_rate=1.0))
    coco = json.loads(path.read_text())
    assert {a["image_id"] for a in coco["annotations"]} == {im["id"] for im in coco["images"]}


def test_defect_mix_never_produces_an_excluded_class():
    config = SurfaceConfig(
        defect_rate=1.0, max_defects=3, defect_mix=(("scratch", 1.0), ("dent", 0.0), ("crack", 2.0))
    )
    labels = {r.label for seed in range(60) for r in render(seed, config)[1]}
    assert labels == {"scratch", "crack"}


def test_lighting_below_one_lowers_mean_brightness():
    for seed in range(5):
        normal = render(seed, SurfaceConfig(noise=0.0))[0]
        dim = render(seed, SurfaceConfig(noise=0.0, lighting=0.6))[0]
        assert dim.mean() < 0.7 * normal.mean()


def test_blur_lowers_high_frequency_energy():
    # sensor noise is added after the optics blur, so compare the brushed texture without it
    config = SurfaceConfig(surface="metal", noise=0.0)
    for seed in range(5):
        sharp = high_frequency_energy(render(seed, config)[0])
        blurred = high_frequency_energy(render(seed, replace(config, blur=1.5))[0])
        assert blurred < 0.7 * sharp


def test_noise_raises_high_frequency_energy():
    for seed in range(5):
        base = high_frequency_energy(render(seed, SurfaceConfig(noise=0.02))[0])
        noisy = high_frequency_energy(render(seed, SurfaceConfig(noise=0.08))[0])
        assert noisy > 1.5 * base


def test_drift_knobs_keep_the_ground_truth_boxes():
    config = SurfaceConfig(defect_rate=1.0)
    drifted = replace(config, lighting=0.5, blur=2.0, noise=0.1)
    for seed in range(5):
        assert render(seed, config)[1] == render(seed, drifted)[1]


@pytest.mark.parametrize(
    "changes",
    [
        {"surface": "wood"},
        {"defect_rate": 1.5},
        {"defect_mix": (("rust", 1.0),)},
        {"defect_mix": (("spot", 0.0),)},
        {"max_defects": 0},
        {"blur": -1.0},
        {"size": 8},
    ],
)
def test_invalid_surface_config_is_rejected(changes):
    with pytest.raises(ValueError):
        SurfaceConfig(**changes)


def test_discoloration_is_drawn_only_when_the_mix_asks_for_it(tmp_path):
    # an opt-in class at weight 0 leaves every pixel and box of the default mix as it was
    with_zero = replace(DEFAULT, defect_mix=DEFAULT.defect_mix + (("discoloration", 0.0),))
    for seed in range(5):
        a, regions_a = render(seed, replace(DEFAULT, defect_rate=1.0))
        b, regions_b = render(seed, replace(with_zero, defect_rate=1.0))
        assert np.array_equal(a, b) and regions_a == regions_b
    only = SurfaceConfig(defect_rate=1.0, defect_mix=(("discoloration", 1.0),))
    path = generate_dataset(tmp_path, count=6, seed=3, config=only)
    coco = json.loads(path.read_text())
    names = [c["name"] for c in coco["categories"]]
    assert names == [*DEFECT_CLASSES, "discoloration"]
    assert {a["category_id"] for a in coco["annotations"]} == {5}


def test_discoloration_shifts_colour_over_a_large_patch_but_not_brightness():
    # no noise and no light falloff: then a seed gives the same surface with and without it
    plain = SurfaceConfig(defect_rate=0.0, noise=0.0, lighting_gradient=0.0)
    tinted = replace(plain, defect_rate=1.0, max_defects=1, defect_mix=(("discoloration", 1.0),))
    for seed in range(8):
        before = render(seed, plain)[0]
        after, (region,) = render(seed, tinted)
        patch = (slice(int(region.y0), int(region.y1)), slice(int(region.x0), int(region.x1)))
        assert (region.x1 - region.x0) * (region.y1 - region.y0) > 0.05 * 128 * 128
        colour = np.abs(after[patch] - before[patch]).max(axis=2).mean()
        brightness = np.abs(after[patch].mean(axis=2) - before[patch].mean(axis=2)).mean()
        assert colour > 4 and brightness < 0.35 * colour
