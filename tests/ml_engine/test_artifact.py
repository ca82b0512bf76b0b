import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from ml.engine.artifact import ArtifactError, file_sha256, load_artifact, save_artifact
from ml.engine.dataset import load_coco_folder
from ml.engine.inference import Preprocessing
from ml.engine.model import build_model


class Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class Custom:
    def __init__(self) -> None:
        self.weights = torch.zeros(3)


def images(data_dir: Path, count: int = 8) -> list[Image.Image]:
    return [Image.open(s.path).convert("RGB") for s in load_coco_folder(data_dir)[:count]]


def test_round_trip_gives_identical_predictions_and_metadata(quick_model, small_dataset, tmp_path):
    first = load_artifact(quick_model.artifact_path, expected_sha256=quick_model.sha256)
    copy = tmp_path / "copy.pt"
    sha = save_artifact(
        copy,
        model=first.network,
        preprocessing=first.preprocessing,
        classes=first.classes,
        architecture=first.architecture,
        hyperparameters=first.hyperparameters,
        metrics=first.metrics,
    )
    second = load_artifact(copy, expected_sha256=sha)
    assert second.predict(images(small_dataset)) == first.predict(images(small_dataset))
    assert second.classes == first.classes == ("scratch", "dent", "spot", "crack")
    assert second.architecture == quick_model.architecture
    assert second.preprocessing == first.preprocessing
    assert second.metrics == quick_model.metrics
    assert second.hyperparameters == quick_model.hyperparameters
    assert second.device == "cpu"


def test_save_returns_the_sha256_of_the_written_file(tmp_path):
    path = tmp_path / "sub" / "m.pt"
    sha = save_artifact(
        path,
        model=build_model("loupe-fpn-v1", 2),
        preprocessing=Preprocessing(64, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)),
        classes=("a", "b"),
        architecture="loupe-fpn-v1",
        hyperparameters={"epochs": 1, "note": None, "sizes": [1, 2]},
        metrics={"auroc": 0.5},
    )
    assert sha == file_sha256(path)
    assert len(sha) == 64
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary file left


def test_save_refuses_metadata_that_is_not_plain_data(tmp_path):
    with pytest.raises(TypeError, match="PosixPath"):
        save_artifact(
            tmp_path / "m.pt",
            model=build_model("loupe-fpn-v1", 1),
            preprocessing=Preprocessing(64, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)),
            classes=("a",),
            architecture="loupe-fpn-v1",
            hyperparameters={"data_dir": Path("/tmp")},
            metrics={},
        )
    assert not (tmp_path / "m.pt").exists()


def test_tampered_file_is_refused_by_its_hash(quick_model, tmp_path):
    data = bytearray(quick_model.artifact_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "tampered.pt"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(tampered, expected_sha256=quick_model.sha256)


def test_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "loupe-defect-model", "payload": Exploit(marker)}, path)
    with pytest.raises(ArtifactError, match="not a loadable model artifact"):
        load_artifact(path)
    assert not marker.exists()


def test_pickled_custom_object_is_refused_even_with_matching_hash(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save(Custom(), path)
    with pytest.raises(ArtifactError):
        load_artifact(path, expected_sha256=file_sha256(path))


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(Exploit(tmp_path / "code-ran"), protocol=2))
    with pytest.raises(ArtifactError):
        load_artifact(path)
    assert not (tmp_path / "code-ran").exists()


def test_missing_file_raises_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="cannot read"):
        load_artifact(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    "payload",
    [
        {"weights": torch.zeros(2)},
        [1, 2, 3],
        {"format": "loupe-defect-model", "format_version": 1, "classes": ["a"]},
    ],
)
def test_valid_torch_file_with_wrong_contents_raises_artifact_error(tmp_path, payload):
    path = tmp_path / "wrong.pt"
    torch.save(payload, path)
    with pytest.raises(ArtifactError):
        load_artifact(path)


def test_state_dict_of_another_shape_raises_artifact_error(quick_model, tmp_path):
    payload = torch.load(quick_model.artifact_path, weights_only=True)
    payload["classes"] = ["only-one"]
    path = tmp_path / "mismatch.pt"
    torch.save(payload, path)
    with pytest.raises(ArtifactError, match="invalid contents"):
        load_artifact(path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_artifact_loads_and_predicts_on_cuda(quick_model, small_dataset):
    cpu = load_artifact(quick_model.artifact_path).predict(images(small_dataset, 4))
    cuda = load_artifact(quick_model.artifact_path, device="cuda").predict(images(small_dataset, 4))
    for a, b in zip(cpu, cuda, strict=True):
        assert a.defect_probability == pytest.approx(b.defect_probability, abs=1e-3)
