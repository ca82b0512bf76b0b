"""The retraining pipeline run eagerly, step by step, on a few generated images."""

import re

import numpy as np
import pytest
from PIL import Image

from datasets.models import DatasetVersion
from inspection.models import Line, Rollout
from inspection.storage import image_path
from labeling.services import save_annotation
from ml import pipeline, services
from ml.engine.dataset import LabeledImage, load_coco_folder
from ml.engine.generator import SurfaceConfig, generate_dataset
from ml.errors import RunInProgress, RunNotRetryable
from ml.models import ModelStatus, ModelVersion, PipelineRun, PipelineRunState, StepState
from tests.helpers import seed_inspection, seed_model_version
from tests.ml_registry.conftest import TINY_RUN

transactional = pytest.mark.django_db(transaction=True)


def states(run) -> dict[str, str]:
    return dict(run.steps.order_by("position").values_list("name", "state"))


@transactional
def test_a_run_records_every_step_and_registers_a_candidate(labeled_line, supervisor):
    run = pipeline.start_run(line=labeled_line, started_by=supervisor, config=TINY_RUN)
    run.refresh_from_db()
    assert run.state == PipelineRunState.SUCCEEDED, run.error
    steps = list(run.steps.order_by("position"))
    assert [s.name for s in steps] == list(pipeline.STEPS)
    for step in steps:
        assert (step.state, step.attempts, step.progress) == (StepState.SUCCEEDED, 1, 1.0)
        assert step.duration_s >= 0
        assert step.log
    artifacts = {s.name: s.artifacts for s in steps}
    assert artifacts["statistics"]["schema"] == {"size": [64, 64], "channels": 3}
    assert artifacts["tune"]["trials"][0]["learning_rate"] == 0.003
    assert artifacts["infrastructure"]["latency_ms_p95"] > 0
    assert artifacts["infrastructure"]["peak_memory_mb"] > 0

    version = run.candidate
    assert version.status == ModelStatus.CANDIDATE
    assert version.line == labeled_line
    assert version.dataset_version == run.dataset_version
    assert version.dataset_version.item_count == 60
    assert version.parent is None
    assert version.hyperparameters["learning_rate"] == 0.003
    assert version.train_seconds > 0
    assert set(version.environment) >= {"python", "torch", "torchvision"}
    assert set(version.metrics) >= {"auroc", "box_iou", "accept", "reject", "class_counts"}
    assert version.metrics["reject"]["threshold"] == labeled_line.reject_threshold
    assert version.evaluation["gate"]["passed"] is False  # no active model to beat
    labeled_line.refresh_from_db()
    assert labeled_line.active_model is None  # a person promotes the first model
    assert not pipeline.run_dir(run.pk).exists()  # its copies of the version are removed


@transactional
def test_two_runs_on_the_same_labels_register_two_versions(labeled_line, supervisor):
    # same dataset version, same seed, no model to start from: the weights come out
    # byte-identical; each run must still get its own candidate, not the other's
    first = pipeline.start_run(line=labeled_line, started_by=supervisor, config=TINY_RUN)
    second = pipeline.start_run(line=labeled_line, started_by=supervisor, config=TINY_RUN)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (
        PipelineRunState.SUCCEEDED,
        PipelineRunState.SUCCEEDED,
    ), second.error
    assert first.dataset_version == second.dataset_version
    weights = [pipeline.load_version(r.candidate).network.state_dict() for r in (first, second)]
    assert all(weights[0][k].equal(weights[1][k]) for k in weights[0])  # the premise
    assert first.candidate != second.candidate
    assert second.candidate.hyperparameters["pipeline_run"] == second.pk


@transactional
def test_a_schema_break_stops_the_run_with_a_message_that_names_it(
    line, label_images, generated, supervisor, tmp_path
):
    label_images(generated())
    # images of their own: stored files are shared by content, and these two get spoiled
    own = []
    for shade in (11, 12):
        own.append(tmp_path / f"{shade}.png")
        noise = np.random.default_rng(shade).integers(0, 256, (64, 64, 3), np.uint8)
        Image.fromarray(noise).save(own[-1])
    truncated, deep = label_images([LabeledImage(p, 64, 64, ()) for p in own], prefix="BAD")
    # files changed on disk after the station stored them: one cut short, one from a 16-bit
    # camera, which the preprocessing would clip to white
    path = image_path(truncated.image.name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    Image.fromarray(np.full((64, 64), 40_000, np.uint16)).save(image_path(deep.image.name))

    run = pipeline.start_run(line=line, started_by=supervisor, config=TINY_RUN)
    run.refresh_from_db()
    assert run.state == PipelineRunState.FAILED
    assert "statistics: schema break: images: 2 cannot be used: " in run.error
    assert f"inspection {truncated.pk} (BAD-0) cannot be read" in run.error
    assert re.search(rf"inspection {deep.pk} \(BAD-1\) mode I(;16)? does not convert", run.error)
    assert states(run) == {
        "ingest": "succeeded",
        "statistics": "failed",
        **{name: "pending" for name in pipeline.STEPS[2:]},
    }
    assert run.candidate is None
    assert not ModelVersion.objects.exists()


@transactional
def test_box_less_defective_labels_and_mixed_sizes_and_channels_run_through_every_step(
    line, label_images, generated, supervisor, inspector, tmp_path
):
    # a second camera at another resolution, whose rejects nobody drew boxes on, and a
    # grayscale camera: the preprocessing converts and resizes, the image head learns
    label_images(generated())
    other = tmp_path / "camera-2"
    generate_dataset(other, count=24, seed=8, config=SurfaceConfig(size=96))
    second = load_coco_folder(other)
    box_less = [LabeledImage(s.path, s.width, s.height, ()) for s in second]
    for inspection, sample in zip(label_images(box_less, prefix="CAM2"), second, strict=True):
        if sample.boxes:
            save_annotation(
                inspection=inspection, author=inspector, image_label="defective", boxes=[]
            )
    gray = tmp_path / "gray.png"
    Image.new("L", (64, 64), 128).save(gray)
    label_images([LabeledImage(gray, 64, 64, ())], prefix="GRAY")
    defective_without_boxes = sum(bool(s.boxes) for s in second)
    assert defective_without_boxes >= 8  # the premise

    run = pipeline.start_run(line=line, started_by=supervisor, config=TINY_RUN)
    run.refresh_from_db()
    assert run.state == PipelineRunState.SUCCEEDED, run.error
    assert set(states(run).values()) == {"succeeded"}
    artifacts = {s.name: s.artifacts for s in run.steps.all()}
    statistics = artifacts["statistics"]
    assert statistics["sizes"] == {"64x64": 61, "96x96": 24}
    assert statistics["channels"] == {"3": 84, "1": 1}
    assert statistics["schema"] == {"size": None, "channels": None}
    assert sum(statistics["image_level_only"].values()) == defective_without_boxes
    assert sum(sum(c.values()) for c in statistics["splits"].values()) == 85
    train = artifacts["train"]
    assert train["hyperparameters"]["images_without_map_target"] == (
        statistics["image_level_only"].get("train", 0)
    )

    # the candidate serves both cameras: boxes come back in each image's own pixels
    model = pipeline.load_version(run.candidate)
    model.image_threshold = 0.0  # every image gets its regions, whatever this tiny model says
    images = [Image.open(second[0].path), Image.open(generated()[0].path), Image.open(gray)]
    for image, output in zip(images, model.predict(images), strict=True):
        assert output.regions
        for region in output.regions:
            assert 0 <= region.x0 < region.x1 <= image.width
            assert 0 <= region.y0 < region.y1 <= image.height


@transactional
def test_a_failed_step_is_retried_without_redoing_the_steps_before_it(labeled_line, supervisor):
    policy = services.retraining_policy_for(labeled_line)
    policy.memory_budget_mb = 1
    policy.save()
    run = pipeline.start_run(line=labeled_line, started_by=supervisor, config=TINY_RUN)
    run.refresh_from_db()
    assert run.state == PipelineRunState.FAILED
    assert run.error.startswith("infrastructure: over budget: peak memory")
    assert states(run)["infrastructure"] == "failed"
    assert states(run)["register"] == "pending"
    before = {s.name: (s.attempts, s.started_at) for s in run.steps.all()}
    assert pipeline.run_dir(run.pk).exists()  # kept, so the retry need not write it again

    policy.memory_budget_mb = 100_000
    policy.save()
    pipeline.retry_run(run=run)
    run.refresh_from_db()
    assert run.state == PipelineRunState.SUCCEEDED, run.error
    after = {s.name: (s.attempts, s.started_at) for s in run.steps.all()}
    for name in pipeline.STEPS[:6]:
        assert after[name] == before[name], name  # not run again
    assert after["infrastructure"][0] == 2
    assert after["register"][0] == 1
    assert run.candidate is not None
    with pytest.raises(RunNotRetryable):
        pipeline.retry_run(run=run)


@pytest.mark.django_db
def test_a_line_runs_one_pipeline_at_a_time(line, supervisor):
    # without commits (this test's transaction) the chain is never sent: the run stays pending
    first = pipeline.start_run(line=line, started_by=supervisor)
    with pytest.raises(RunInProgress):
        pipeline.start_run(line=line, started_by=supervisor)
    assert PipelineRun.objects.get() == first
    assert first.baseline is None
    assert first.config["epochs"] == pipeline.DEFAULT_RUN_CONFIG["epochs"]


@pytest.fixture
def corrections(line, station, inspector):
    """correct(n): n inspections the active model judged OK that the inspector marks
    defective, each a correction."""
    model = seed_model_version("v-active")
    services.set_active_version(line=line, model_version=model, changed_by="sam")
    counter = iter(range(10_000))

    def correct(n):
        for _ in range(n):
            inspection = seed_inspection(
                station, f"C-{next(counter)}", probability=0.1, model_version=model
            )
            revision, _ = save_annotation(
                inspection=inspection,
                author=inspector,
                image_label="defective",
                boxes=[{"x0": 1, "y0": 1, "x1": 9, "y1": 9, "label": "crack"}],
            )
            assert revision.source == "correction"

    return correct


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("level", "starts"), [("manual", False), ("assisted", True), ("automatic", True)]
)
def test_the_policy_starts_a_run_every_n_corrections_above_the_manual_level(
    line, corrections, level, starts
):
    line.refresh_from_db()
    services.set_retraining_policy(
        line=line, changed_by="sam", mlops_level=level, retrain_every_corrections=3
    )
    corrections(2)
    assert pipeline.start_run_if_due(line=line) is None
    corrections(1)
    run = pipeline.start_run_if_due(line=line)
    assert (run is not None) == starts
    if starts:
        assert run.trigger == "policy"
        assert run.baseline.name == "v-active"
        assert pipeline.start_run_if_due(line=line) is None  # one in progress
        PipelineRun.objects.filter(pk=run.pk).update(state=PipelineRunState.FAILED)
        corrections(2)
        assert pipeline.start_run_if_due(line=line) is None  # counted from the last run
        corrections(1)
        assert pipeline.start_run_if_due(line=line) is not None


@pytest.fixture
def registering(line, trained_artifact, settings):
    """A run stopped before its register step: an artifact trained, figures evaluated."""
    import shutil

    from ml.engine.artifact import file_sha256

    active = seed_model_version("v-active")
    ModelVersion.objects.filter(pk=active.pk).update(line=line)
    services.set_active_version(line=line, model_version=active, changed_by="sam")
    target = settings.LOUPE_MODEL_DIR / "candidate.pt"
    shutil.copy(trained_artifact, target)
    dataset = DatasetVersion.objects.create(
        name="ds-x", version_hash="x" * 64, item_count=0, classes=[], counts={}
    )

    def figures(f1):
        return {
            "count": 50,
            "class_counts": {"crack": 10},
            "reject": {"threshold": 0.8, "f1": f1, "recall_per_class": {"crack": f1}},
        }

    def make(candidate_f1, level):
        services.set_retraining_policy(line=line, changed_by="sam", mlops_level=level)
        run = pipeline.start_run(line=line)
        step = run.steps.get(name="register")
        earlier = {
            "ingest": {"dataset_version": dataset.pk},
            "train": {
                "artifact": target.name,
                "sha256": file_sha256(target),
                "hyperparameters": {"learning_rate": 0.001},
                "train_seconds": 1.0,
                "warm_start_from": "v-active",
            },
            "evaluate": {
                "test": {"candidate": figures(candidate_f1), "active": figures(0.5)},
                "corrections": {"candidate": figures(candidate_f1), "active": figures(0.2)},
            },
        }
        return pipeline.register(pipeline.StepContext(run, step, earlier))

    return make


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("candidate_f1", "level", "challenges"),
    [(0.9, "automatic", True), (0.9, "assisted", True), (0.9, "manual", False),
     (0.5, "automatic", False)],
)  # fmt: skip
def test_a_candidate_the_gate_passes_starts_as_a_mirror_challenger_when_hands_off(
    line, registering, candidate_f1, level, challenges
):
    result = registering(candidate_f1, level)
    version = ModelVersion.objects.get(pk=result["model_version"])
    line.refresh_from_db()
    assert result["promoted"] is False
    assert version.evaluation["gate"]["passed"] is (candidate_f1 == 0.9)
    assert version.parent.name == "v-active"
    assert version.dataset_version.name == "ds-x"
    # the active model keeps deciding every item; the candidate only predicts beside it
    assert line.active_model.name == "v-active"
    assert version.status == ModelStatus.CANDIDATE
    rollout = Rollout.objects.filter(line=line, challenger=version).first()
    assert (rollout is not None) is challenges
    if challenges:
        assert result["rollout"] == rollout.pk
        assert (rollout.mode, rollout.share, rollout.started_by) == ("mirror", 0.0, "gate")


@pytest.mark.django_db
def test_at_automatic_a_line_without_an_active_model_gets_the_candidate_at_once(line, registering):
    Line.objects.filter(pk=line.pk).update(active_model=None)  # a line's first model
    result = registering(0.9, "automatic")
    line.refresh_from_db()
    assert result["promoted"] is True and result["rollout"] is None
    assert line.active_model.pk == result["model_version"]
    assert line.changes.first().changed_by == "gate"


@pytest.mark.django_db
def test_the_policy_check_that_labeling_sends_starts_the_due_run(line, corrections):
    from ml.tasks import enqueue_policy_check

    line.refresh_from_db()
    services.set_retraining_policy(
        line=line, changed_by="sam", mlops_level="automatic", retrain_every_corrections=2
    )
    corrections(1)
    enqueue_policy_check(line.pk)
    assert not PipelineRun.objects.exists()
    corrections(1)
    enqueue_policy_check(line.pk)
    assert PipelineRun.objects.get().trigger == "policy"
