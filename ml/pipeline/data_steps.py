"""The data steps: ingest (choose or freeze the dataset version), statistics (counts and the
image schema; what training cannot use fails it) and transform (the splits as COCO folders
the engine reads, image-level labels included).
"""

import json
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from PIL import Image

from datasets.services import freeze_dataset
from inspection.storage import image_path
from labeling.models import LabelSource
from ml.engine.dataset import unusable_reason
from ml.engine.generator import DEFECT_CLASSES
from ml.models import ModelVersion, PipelineRun, PipelineStep, StepState
from ml.pipeline.context import StepContext, StepError, correction_items, dataset_version
from ml.training_data import write_coco_folder

CHANNELS = {"1": 1, "L": 1, "LA": 2, "P": 3, "RGB": 3, "RGBA": 4}


def ingest(context: StepContext) -> dict:
    run = context.run
    version, created = run.dataset_version, False
    if version is None:
        version, created = freeze_dataset(filters={"lines": [run.line.name]}, user=run.started_by)
        PipelineRun.objects.filter(pk=run.pk).update(dataset_version=version)
    splits = dict(version.items.values_list("split").annotate(n=Count("pk")).order_by())
    corrections = correction_items(run, version).count()
    context.log(
        f"dataset version {version.name} ({'frozen now' if created else 'existing'}): "
        f"{version.item_count} images, splits {splits}, {corrections} held-out corrections "
        f"since {run.baseline or 'no active model'}"
    )
    return {
        "dataset_version": version.pk,
        "name": version.name,
        "version_hash": version.version_hash,
        "frozen_now": created,
        "images": version.item_count,
        "splits": splits,
        "corrections": corrections,
        "baseline": run.baseline.name if run.baseline else None,
    }


def _reference_schema(baseline: ModelVersion | None) -> dict | None:
    """The image schema the active model was trained on, when a pipeline run trained it."""
    if baseline is None:
        return None
    step = PipelineStep.objects.filter(
        run__candidate=baseline, name="statistics", state=StepState.SUCCEEDED
    ).first()
    return step.artifacts.get("schema") if step else None


NAMED_ITEMS = 10  # a refusal names this many items of each kind, then counts the rest


def _named(items: list[str]) -> str:
    more = f" and {len(items) - NAMED_ITEMS} more" if len(items) > NAMED_ITEMS else ""
    return ", ".join(items[:NAMED_ITEMS]) + more


def statistics(context: StepContext) -> dict:
    """Counts per split and class, image sizes and channels. What training cannot use (an
    image missing, undecodable or in a mode that does not convert to RGB; a contradictory
    label) fails the run with a message that names the items. Mixed sizes and channel counts
    are not breaks: the preprocessing converts and resizes every image, as it does in serving;
    defective images without boxes train the image head."""
    version = dataset_version(context)
    line = context.run.line
    known = set(line.defect_classes)
    splits: dict[str, Counter] = {}
    classes: dict[str, Counter] = {}
    sizes, channels = Counter(), Counter()
    unusable, boxes_on_ok, unknown, outside = [], [], set(), []
    image_level_only = Counter()
    items = version.items.values_list(
        "inspection_id",
        "inspection__external_id",
        "split",
        "image",
        "width",
        "height",
        "image_label",
        "boxes",
    )
    for inspection_id, serial, split, image, width, height, image_label, boxes in items.iterator():
        name = f"inspection {inspection_id} ({serial})"
        path = image_path(image)
        problem = unusable_reason(path)
        if problem:
            unusable.append(f"{name} {problem}")
            continue
        with Image.open(path) as opened:
            mode, size = opened.mode, opened.size
        sizes[f"{size[0]}x{size[1]}"] += 1
        channels[CHANNELS.get(mode, len(mode))] += 1
        splits.setdefault(split, Counter())[image_label] += 1
        if image_label == "defective" and not boxes:
            image_level_only[split] += 1
        if image_label == "ok" and boxes:
            boxes_on_ok.append(name)
        for box in boxes:
            classes.setdefault(split, Counter())[box["label"]] += 1
            if box["label"] not in known:
                unknown.add(box["label"])
            if not (0 <= box["x0"] < box["x1"] <= width and 0 <= box["y0"] < box["y1"] <= height):
                outside.append(name)

    breaks = []
    if unusable:
        breaks.append(f"images: {len(unusable)} cannot be used: {_named(unusable)}")
    if boxes_on_ok:
        breaks.append(f"labels: {len(boxes_on_ok)} OK images with boxes: {_named(boxes_on_ok)}")
    if unknown:
        breaks.append(f"labels: classes {', '.join(sorted(unknown))} are not the line's classes")
    if outside:
        breaks.append(f"labels: {len(outside)} boxes outside their image: {_named(outside)}")
    for split in ("train", "test"):
        counts = splits.get(split, Counter())
        if not counts["ok"] or not counts["defective"]:
            breaks.append(
                f"labels: the {split} split needs defective and OK images, has "
                f"{counts['defective']} defective and {counts['ok']} OK"
            )
    if breaks:
        raise StepError("schema break: " + "; ".join(breaks))

    reference = _reference_schema(context.run.baseline)
    schema = {
        "size": [int(v) for v in next(iter(sizes)).split("x")] if len(sizes) == 1 else None,
        "channels": next(iter(channels)) if len(channels) == 1 else None,
    }
    warnings = [
        f"class {name} has no training image"
        for name in line.defect_classes
        if not classes.get("train", Counter())[name]
    ]
    for key, what in (("size", "image sizes"), ("channels", "channel counts")):
        if reference and reference.get(key) is not None and schema[key] != reference[key]:
            found = dict(sizes) if key == "size" else dict(channels)
            warnings.append(
                f"{what} {found} differ from {reference[key]}, which {context.run.baseline} "
                "was trained on: the preprocessing converts them"
            )
    for warning in warnings:
        context.log(f"warning: {warning}")
    if image_level_only:
        context.log(
            f"{sum(image_level_only.values())} defective images without boxes "
            f"{dict(image_level_only)}: they train the image head, not the defect map"
        )
    result = {
        "splits": {split: dict(c) for split, c in sorted(splits.items())},
        "classes": {split: dict(c) for split, c in sorted(classes.items())},
        "image_level_only": dict(image_level_only),
        "sizes": dict(sizes),
        "channels": {str(k): v for k, v in channels.items()},
        "schema": schema,
        "reference_schema": reference,
        "warnings": warnings,
    }
    context.log(f"statistics: {json.dumps(result['splits'])}, classes {result['classes']}")
    return result


def transform(context: StepContext) -> dict:
    """Write the splits and the held-out corrections as COCO folders the engine reads."""
    version = dataset_version(context)
    labels = {label for c in context.earlier["statistics"]["classes"].values() for label in c}
    classes = list(DEFECT_CLASSES) + sorted(labels - set(DEFECT_CLASSES))
    sets = {
        "train": version.items.filter(split="train"),
        "val": version.items.filter(split="val"),
        "test": version.items.filter(split="test"),
        "corrections": correction_items(context.run, version),
    }
    folders, counts = {}, {}
    for number, (key, items) in enumerate(sets.items(), start=1):
        folder = context.work_dir / key
        counts[key] = write_coco_folder(items.order_by("pk").iterator(), folder, classes=classes)
        folders[key] = str(folder.relative_to(settings.LOUPE_MODEL_DIR))
        context.log(f"{key}: {counts[key]} images in {folder}")
        context.progress(number / len(sets))
    corrected = sorted(
        Path(name).name
        for name in sets["train"]
        .filter(source=LabelSource.CORRECTION)
        .values_list("image", flat=True)
    )
    context.log(f"{len(corrected)} training images are corrections")
    return {
        "folders": folders,
        "counts": counts,
        "classes": classes,
        "train_corrections": corrected,
    }
