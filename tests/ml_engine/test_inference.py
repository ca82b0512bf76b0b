import numpy as np
import pytest
import torch
from PIL import Image

from ml.engine.artifact import load_artifact
from ml.engine.dataset import load_coco_folder
from ml.engine.inference import DefectModel, Preprocessing, connected_components
from ml.engine.types import ModelOutput

CLASSES = ("scratch", "dent", "spot", "crack")


class FixedOutput(torch.nn.Module):
    """Stands in for the network so region extraction can be checked against exact numbers."""

    def __init__(self, image_logit: float, map_logits: torch.Tensor) -> None:
        super().__init__()
        self.image_logit = image_logit
        self.register_buffer("maps", map_logits)

    def forward(self, x):
        n = x.shape[0]
        return torch.full((n,), self.image_logit), self.maps.expand(n, -1, -1, -1)


def fixed_model(
    image_logit: float, map_logits: torch.Tensor, pixel_threshold: float = 0.3
) -> DefectModel:
    return DefectModel(
        FixedOutput(image_logit, map_logits),
        classes=CLASSES,
        architecture="fixed",
        preprocessing=Preprocessing(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        pixel_threshold=pixel_threshold,
        region_threshold=0.5,
    )


def background() -> torch.Tensor:
    return torch.full((len(CLASSES), 16, 16), -8.0)  # 64 px input at stride 4


def sig(v: float) -> float:
    return 1 / (1 + np.exp(-v))


def test_regions_are_in_original_pixels_for_an_image_of_another_size():
    maps = background()
    maps[1, 2:4, 4:7] = 4.0  # a dent over map rows 2-3, columns 4-6: input pixels x 16-28, y 8-16
    (output,) = fixed_model(3.0, maps).predict([Image.new("RGB", (200, 100))])
    assert output.defect_probability == pytest.approx(sig(3.0))
    (region,) = output.regions
    # the interpolated map crosses 0.3 one input pixel outside the cells: x 15-29, y 7-17,
    # then each input pixel is 200/64 by 100/64 original pixels
    assert (region.x0, region.y0, region.x1, region.y1) == (46.875, 10.9375, 90.625, 26.5625)
    assert region.label == "dent"
    assert region.score == pytest.approx(1 - (1 - sig(4.0)) * (1 - sig(-8.0)) ** 3, rel=1e-5)


def test_separate_blobs_become_separate_regions_sorted_by_score():
    maps = background()
    maps[3, 0:2, 0:1] = 2.0
    maps[0, 10:12, 12:16] = 5.0
    (output,) = fixed_model(3.0, maps).predict([Image.new("RGB", (64, 64))])
    assert [(r.label, r.x0, r.y0, r.x1, r.y1) for r in output.regions] == [
        ("scratch", 47.0, 39.0, 64.0, 49.0),
        ("crack", 0.0, 0.0, 5.0, 9.0),
    ]


def test_weak_regions_are_dropped():
    maps = background()
    maps[2, 0:2, 0:2] = 5.0
    maps[2, 10, 10] = -0.2  # above the pixel threshold, below the region threshold
    (output,) = fixed_model(3.0, maps).predict([Image.new("RGB", (64, 64))])
    assert [(r.x0, r.y0) for r in output.regions] == [(0.0, 0.0)]


def test_defective_image_without_confident_region_still_shows_the_top_component():
    maps = background()
    maps[2, 5, 6] = -1.5
    maps[2, 5, 7] = -2.0
    (output,) = fixed_model(2.0, maps).predict([Image.new("RGB", (64, 64))])
    (region,) = output.regions
    # cells (5, 6) and (5, 7) cover x 24-32, y 20-24; the bar drops to half the peak
    assert (region.x0, region.y0, region.x1, region.y1) == (24.0, 20.0, 31.0, 24.0)
    assert region.label == "spot"
    assert region.score == pytest.approx(sig(-1.5), abs=1e-3)


def test_defective_image_gets_a_region_even_when_no_cell_reaches_the_pixel_threshold():
    maps = background()
    maps[0, 8, 8] = 0.5  # probability 0.62: above the region threshold, below the pixel one
    (output,) = fixed_model(2.0, maps, pixel_threshold=0.7).predict([Image.new("RGB", (64, 64))])
    (region,) = output.regions
    assert region.x0 < 34 < region.x1 and region.y0 < 34 < region.y1  # around cell (8, 8)
    assert region.score == pytest.approx(sig(0.5), abs=1e-3)


def test_image_judged_clean_gets_no_regions_even_with_a_confident_blob():
    maps = background()
    maps[2, 5, 6] = 3.0
    (output,) = fixed_model(-2.0, maps).predict([Image.new("RGB", (64, 64))])
    assert output.defect_probability == pytest.approx(sig(-2.0))
    assert output.regions == ()


def test_predict_of_no_images_is_empty():
    assert fixed_model(0.0, background()).predict([]) == []


def test_predict_batch_requires_one_size_per_image():
    model = fixed_model(0.0, background())
    with pytest.raises(ValueError):
        model.predict_batch(torch.zeros(2, 3, 64, 64), [(64, 64)])


def test_connected_components_join_diagonal_neighbours_only():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[4, 4] = mask[4, 5] = True
    mask[0, 4] = True
    found = sorted(
        sorted(zip(r.tolist(), c.tolist(), strict=True)) for r, c in connected_components(mask)
    )
    assert found == [[(0, 0), (1, 1)], [(0, 4)], [(4, 4), (4, 5)]]


def test_preprocessing_resizes_converts_and_normalizes():
    prep = Preprocessing(32, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    tensor = prep.to_tensor(Image.new("L", (50, 70), color=255))
    assert tensor.shape == (3, 32, 32)
    assert tensor[:, 0, 0].tolist() == pytest.approx([1.0, 3.0, 1.0])


def test_batch_prediction_equals_one_by_one_prediction(quick_model, small_dataset):
    model = load_artifact(quick_model.artifact_path)
    images = [Image.open(s.path).convert("RGB") for s in load_coco_folder(small_dataset)[:6]]
    images[2] = images[2].resize((200, 150))
    batched = model.predict(images)
    single = [model.predict([im])[0] for im in images]
    assert len(batched) == 6
    for a, b in zip(batched, single, strict=True):
        assert isinstance(a, ModelOutput)
        assert a.defect_probability == pytest.approx(b.defect_probability, abs=1e-5)
        assert [r.label for r in a.regions] == [r.label for r in b.regions]
        for ra, rb in zip(a.regions, b.regions, strict=True):
            assert (ra.x0, ra.y0, ra.x1, ra.y1) == (rb.x0, rb.y0, rb.x1, rb.y1)
            assert ra.score == pytest.approx(rb.score, abs=1e-5)


def test_predict_equals_preprocess_then_predict_batch(quick_model, small_dataset):
    model = load_artifact(quick_model.artifact_path)
    images = [Image.open(s.path).convert("RGB") for s in load_coco_folder(small_dataset)[:3]]
    batch = model.preprocess(images)
    assert batch.shape == (3, 3, 128, 128)
    assert model.predict_batch(batch, [im.size for im in images]) == model.predict(images)


def test_predict_does_not_record_gradients(quick_model, small_dataset):
    model = load_artifact(quick_model.artifact_path)
    image = Image.open(load_coco_folder(small_dataset)[0].path)
    with torch.enable_grad():
        output = model.predict([image])[0]
    assert 0.0 <= output.defect_probability <= 1.0
    assert not model.network.training
