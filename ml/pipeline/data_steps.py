"""The data steps: ingest (choose or freeze the dataset version), statistics (counts and the
image schema, which a break fails) and transform (the splits as COCO folders the engine reads).
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


def statistics(context: StepContext) -> dict:
    """Counts per split and class, image sizes and channels; a schema break fails the run
    with a message that names it."""
    version = dataset_version(context)
    line = context.run.line
    known = set(line.defect_classes)
    splits: dict[str, Counter] = {}
    classes: dict[str, Counter] = {}
    sizes, channels = Counter(), Counter()
    missing, unreadable, no_boxes, boxes_on_ok, unknown, outside = [], [], [], [], set(), []
    items = version.items.values_list(
        "inspection_id", "split", "image", "width", "height", "image_label", "boxes"
    )
    for inspection_id, split, image, width, height, image_label, boxes in items.iterator():
        try:
            with Image.open(image_path(image)) as opened:
                mode, size = opened.mode, opened.size
        except FileNotFoundError:
            missing.append(inspection_id)
            continue
        except OSError:
            unreadable.append(inspection_id)
            continue
        sizes[f"{size[0]}x{size[1]}"] += 1
        channels[CHANNELS.get(mode, len(mode))] += 1
        splits.setdefault(split, Counter())[image_label] += 1
        if image_label == "defective" and not boxes:
            no_boxes.append(inspection_id)
        if image_label == "ok" and boxes:
            boxes_on_ok.append(inspection_id)
        for box in boxes:
            classes.setdefault(split, Counter())[box["label"]] += 1
            if box["label"] not in known:
                unknown.add(box["label"])
            if not (0 <= box["x0"] < box["x1"] <= width and 0 <= box["y0"] < box["y1"] <= height):
                outside.append(inspection_id)

    breaks = []
    if missing:
        breaks.append(f"images: {len(missing)} stored images are missing (inspection {missing[0]})")
    if unreadable:
        breaks.append(f"images: {len(unreadable)} cannot be read (inspection {unreadable[0]})")
    reference = _reference_schema(context.run.baseline)
    if len(sizes) > 1:
        breaks.append(f"image size: one version mixes sizes {dict(sizes)}")
    if len(channels) > 1:
        breaks.append(f"channels: one version mixes channel counts {dict(channels)}")
    schema = {
        "size": [int(v) for v in next(iter(sizes)).split("x")] if len(sizes) == 1 else None,
        "channels": next(iter(channels)) if len(channels) == 1 else None,
    }
    if reference and len(sizes) == 1 and schema["size"] != reference["size"]:
        breaks.append(
            f"image size: {next(iter(sizes))}, but {context.run.baseline} was trained on "
            f"{reference['size'][0]}x{reference['size'][1]}"
        )
    if reference and len(channels) == 1 and schema["channels"] != reference["channels"]:
        breaks.append(
            f"channels: {schema['channels']}, but {context.run.baseline} was trained on "
            f"{reference['channels']}"
        )
    if no_boxes:
        breaks.append(f"labels: {len(no_boxes)} defective images without a box ({no_boxes[0]})")
    if boxes_on_ok:
        breaks.append(f"labels: {len(boxes_on_ok)} OK images with boxes ({boxes_on_ok[0]})")
    if unknown:
        breaks.append(f"labels: classes {', '.join(sorted(unknown))} are not the line's classes")
    if outside:
        breaks.append(f"labels: {len(outside)} boxes outside their image ({outside[0]})")
    for split in ("train", "test"):
        counts = splits.get(split, Counter())
        if not counts["ok"] or not counts["defective"]:
            breaks.append(
                f"labels: the {split} split needs defective and OK images, has "
                f"{counts['defective']} defective and {counts['ok']} OK"
            )
    if breaks:
        raise StepError("schema break: " + "; ".join(breaks))

    warnings = [
        f"class {name} has no training image"
        for name in line.defect_classes
        if not classes.get("train", Counter())[name]
    ]
    for warning in warnings:
        context.log(f"warning: {warning}")
    result = {
        "splits": {split: dict(c) for split, c in sorted(splits.items())},
        "classes": {split: dict(c) for split, c in sorted(classes.items())},
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
