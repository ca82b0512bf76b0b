"""Data drift per station: each window of a station's served images against a reference drawn
from the dataset version its model was trained on (ml.engine.drift does the statistics).

The only writer of DriftReference and DriftCheck. A periodic job on the datasets queue
(monitoring.tasks) calls check_drift: for each line whose level runs its active model, it
builds that version's reference once (a sample of its dataset version's images, through the
model at each training gain: seconds, never on a station's path) and tests each station's
last `window` items that carry a drift record (Prediction.input_stats, recorded at inference
time) once `step` new ones have arrived since its last check, so a check every few minutes
neither repeats itself on the same items nor multiplies the chances of a false alarm.
"""

import logging
import random
import time
from dataclasses import asdict, dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets.models import DatasetItem
from inspection.inference import ModelUnavailable, loaded_model
from inspection.models import Line, Prediction, PredictionRole, Station
from inspection.routing import level_runs_model
from inspection.services import OFFLINE_STATIONS
from inspection.storage import image_path
from monitoring.line_settings import reference_since
from monitoring.models import DriftCheck, DriftReference

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftSchedule:
    """reference_items: the most dataset images a reference samples. window: the items of a
    station one check tests; step: the new items that make the next check due."""

    reference_items: int = 500
    window: int = 200
    step: int = 50


DEFAULT_SCHEDULE = DriftSchedule()


@dataclass
class DriftRun:
    references_built: list[str] = field(default_factory=list)
    checks: int = 0
    drifting: list[str] = field(default_factory=list)  # "line/station: verdict"
    skipped: dict[str, str] = field(default_factory=dict)  # line: why

    def as_dict(self) -> dict:
        return asdict(self)


class NoReference(Exception):
    """The version has no dataset version, or none of its images can be read."""


def reference_for(model_version, *, schedule: DriftSchedule = DEFAULT_SCHEDULE) -> DriftReference:
    """The version's reference, built on first use from a seeded sample of its dataset
    version's images (the same sample however often it is rebuilt). Raises NoReference or
    inspection.inference.ModelUnavailable. Safe to call concurrently: one row wins."""
    from PIL import Image

    from ml.engine import drift

    existing = DriftReference.objects.filter(model_version=model_version).first()
    if existing is not None:
        return existing
    dataset_version = model_version.dataset_version
    if dataset_version is None:
        raise NoReference(f"{model_version.name} has no dataset version to compare with")
    names = list(
        DatasetItem.objects.filter(version=dataset_version)
        .order_by("pk")
        .values_list("image", flat=True)
    )
    if len(names) > schedule.reference_items:
        names = random.Random(dataset_version.pk).sample(names, schedule.reference_items)
    model = loaded_model(model_version)
    size = model.preprocessing.input_size
    images, schemas = [], []
    for name in names:
        try:
            with Image.open(image_path(name)) as image:
                schemas.append(drift.image_schema(image))
                # shrunk as the model's input at once: 500 camera-sized images would not fit
                image.draft("RGB", (size, size))
                images.append(model.preprocessing.resize(image))
        except OSError as exc:
            logger.warning("drift reference of %s skipped %s: %s", model_version.name, name, exc)
    if not images:
        raise NoReference(f"none of {dataset_version.name}'s images can be read")
    jitter = float(model.hyperparameters.get("augmentation", 0.0))
    started = time.perf_counter()
    reference = drift.build_reference(
        model,
        [Image.fromarray(pixels) for pixels in images],
        jitter=jitter,
        schema=drift.seen_schema(schemas),
    )
    seconds = time.perf_counter() - started
    try:
        with transaction.atomic():
            return DriftReference.objects.create(
                model_version=model_version,
                dataset_version=dataset_version,
                items=reference.size,
                jitter=jitter,
                data=reference.to_dict(),
                build_seconds=seconds,
            )
    except IntegrityError:  # another run built it meanwhile
        return DriftReference.objects.get(model_version=model_version)


def station_window(station: Station, model_version, size: int) -> list[Prediction]:
    """The station's last `size` primary predictions of this version with a drift record,
    oldest first; none from before the line's reference reset, so a window starts over."""
    rows = Prediction.objects.filter(
        inspection__station=station,
        model_version=model_version,
        role=PredictionRole.PRIMARY,
    ).exclude(input_stats={})
    since = reference_since(station.line_id)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    rows = rows.order_by("-pk").only("pk", "created_at", "defect_probability", "input_stats")
    return list(reversed(rows[:size]))


def check_station(
    *,
    line: Line,
    station: Station,
    reference: DriftReference,
    schedule: DriftSchedule = DEFAULT_SCHEDULE,
    policy=None,
    force: bool = False,
) -> DriftCheck | None:
    """Test the station's window when due (`step` new items since its last check, or
    `force`); None when not due or too small. The check's row is the result."""
    from ml.engine import drift

    policy = policy or drift.DriftPolicy()
    window = station_window(station, reference.model_version, schedule.window)
    if len(window) < policy.min_items:
        return None
    last = (
        DriftCheck.objects.filter(station=station, model_version=reference.model_version)
        .order_by("-checked_at", "-pk")
        .values_list("last_prediction_id", flat=True)
        .first()
    )
    if not force and last is not None:
        new = sum(1 for p in window if p.pk > last)
        if new < schedule.step:
            return None
    sample = drift.Window.from_records(
        [p.input_stats for p in window], [p.defect_probability for p in window]
    )
    results = drift.compare(
        drift.Reference.from_dict(reference.data),
        sample,
        reject_threshold=line.reject_threshold,
        policy=policy,
    )
    # items whose size, mode or channels the model never saw (each flagged on its own too)
    results["skewed_items"] = sum(1 for p in window if p.input_stats.get("skew"))
    return DriftCheck.objects.create(
        line=line,
        station=station,
        model_version=reference.model_version,
        reference=reference,
        window_start=window[0].created_at,
        window_end=window[-1].created_at,
        last_prediction_id=window[-1].pk,
        items=len(window),
        verdict=results["verdict"],
        data_drift=results.get("data_drift", False),
        prediction_drift=results.get("predictions", {}).get("shifted", False),
        results=results,
        policy=policy.to_dict(),
        checked_at=timezone.now(),
    )


def check_drift(*, schedule: DriftSchedule = DEFAULT_SCHEDULE) -> DriftRun:
    """Build missing references and run the due checks of every line that runs its model.
    Only reads the inspection tables; safe to repeat (a check that is not due is skipped)."""
    run = DriftRun()
    lines = Line.objects.filter(active_model__isnull=False).select_related("active_model")
    for line in lines:
        if not level_runs_model(line.automation_level):
            continue
        version = line.active_model
        try:
            built = not DriftReference.objects.filter(model_version=version).exists()
            reference = reference_for(version, schedule=schedule)
        except (NoReference, ModelUnavailable) as exc:
            run.skipped[line.name] = str(exc)
            continue
        if built:
            run.references_built.append(version.name)
        stations = Station.objects.filter(line=line).exclude(name__in=OFFLINE_STATIONS)
        for station in stations.order_by("pk"):
            check = check_station(line=line, station=station, reference=reference)
            if check is None:
                continue
            run.checks += 1
            if check.verdict != "ok":
                run.drifting.append(f"{line.name}/{station.name}: {check.verdict}")
    return run


def latest_checks(line: Line, *, limit: int = 50) -> list[DriftCheck]:
    """The line's most recent checks, newest first, for the monitoring page."""
    return list(
        DriftCheck.objects.filter(line=line)
        .select_related("station", "model_version")
        .order_by("-checked_at", "-pk")[:limit]
    )


def drift_summary(line: Line, *, limit: int = 50) -> dict:
    """The monitoring page's drift section: each station's latest check (per statistic its
    medians and corrected p-value, the embedding's AUC, the prediction figures) and the
    recent checks' AUC and verdicts, as plain data for the template and its charts."""
    from ml.engine.drift import STATISTICS, DriftPolicy

    policy = DriftPolicy()
    checks = latest_checks(line, limit=limit)
    latest: dict[int, DriftCheck] = {}
    for check in checks:
        latest.setdefault(check.station_id, check)
    stations = []
    for check in sorted(latest.values(), key=lambda c: c.station.name):
        tests = check.results.get("tests", {})
        predictions = check.results.get("predictions", {})
        stations.append(
            {
                "station": check.station.name,
                "model": check.model_version.name,
                "verdict": check.verdict,
                "verdict_label": check.get_verdict_display(),
                "items": check.items,
                "skewed_items": check.results.get("skewed_items", 0),
                "window_start": check.window_start,
                "window_end": check.window_end,
                "checked_at": check.checked_at,
                "statistics": [
                    {"name": name, **tests[name]} for name in STATISTICS if name in tests
                ],
                "embedding": tests.get("embedding"),
                "predictions": predictions,
            }
        )
    history = [
        {
            "station": c.station.name,
            "at": c.window_end.isoformat(),
            "auc": c.results.get("tests", {}).get("embedding", {}).get("auc"),
            "verdict": c.verdict,
        }
        for c in reversed(checks)
    ]
    # the reference the latest check used, else the one the active model will use
    if checks:
        rows = DriftReference.objects.filter(pk=checks[0].reference_id)
    else:
        rows = DriftReference.objects.filter(model_version=line.active_model_id)
    # values(): never the reference's figures themselves, which weigh megabytes
    reference = rows.values("items", "jitter", "created_at", "dataset_version__name").first()
    chart = {
        "alpha": policy.alpha,
        "auc_threshold": policy.auc_threshold,
        "statistics": list(STATISTICS),
        "stations": [
            {
                "station": s["station"],
                "verdict": s["verdict"],
                "p_adjusted": {t["name"]: t["p_adjusted"] for t in s["statistics"]},
                "embedding_p_adjusted": (s["embedding"] or {}).get("p_adjusted"),
                "histogram_reference": s["predictions"].get("histogram_reference"),
                "histogram_window": s["predictions"].get("histogram_window"),
            }
            for s in stations
        ],
        "history": history,
    }
    return {
        "policy": policy,
        "schedule": DEFAULT_SCHEDULE,
        "reference": reference,
        "stations": stations,
        "drifting": [s["station"] for s in stations if s["verdict"] != "ok"],
        "chart": chart,
    }
