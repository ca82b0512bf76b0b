"""In-process probes that explain the end-to-end figures: the web side's per-image work, the
worker's task body, the Celery message and a no-op Celery round trip."""

from __future__ import annotations

import functools
import json
import statistics
import time

from .config import QUEUE, REDIS_URL
from .images import tagged_png


def web_validator():
    """inspection.images.validate_image with the limits the web process applies.

    Built once, before a timed loop, so the loop times validate_image and no imports.
    """
    from django.conf import settings

    from inspection.images import validate_image

    return functools.partial(
        validate_image,
        max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
        max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS,
    )


def web_side_costs(pool: list[bytes]) -> dict:
    """What the web process does per image besides the HTTP and SQL work, timed in-process."""
    from inspection import storage

    validate = web_validator()
    validate_ms, store_ms = [], []
    for i in range(100):
        data = tagged_png(pool[i % len(pool)], f"probe-{i}")
        t0 = time.perf_counter()
        image = validate(data)
        t1 = time.perf_counter()
        storage.store_image(image.data, sha256=image.sha256, extension=image.extension)
        t2 = time.perf_counter()
        validate_ms.append((t1 - t0) * 1000)
        store_ms.append((t2 - t1) * 1000)
    return {
        "validate_image_ms_p50": statistics.median(validate_ms),
        "store_image_ms_p50": statistics.median(store_ms),
    }


def task_body_cost(station, pool: list[bytes], count: int = 80, warm: int = 10) -> dict:
    """services.predict_and_route run in process, without Celery: the worker's task body."""
    from django.db import connections

    from inspection import services
    from inspection.models import Prediction

    validate = web_validator()
    ids = []
    for i in range(count):
        png = tagged_png(pool[i % len(pool)], f"task-probe-{i}")
        image = validate(png)
        inspection, _ = services.receive_inspection(
            station=station, external_id=f"bench-task-probe-{i}", image=image, metadata={}
        )
        ids.append(inspection.pk)
    half = len(ids) // 2
    total_ms, reconnect_ms = [], []
    for n, inspection_id in enumerate(ids):
        if n >= half:
            # what Celery's Django fixup does around every task unless CELERY_DB_REUSE_MAX is set
            connections.close_all()
        t0 = time.perf_counter()
        services.predict_and_route(inspection_id=inspection_id)
        (total_ms if n < half else reconnect_ms).append((time.perf_counter() - t0) * 1000)
    model_ms = list(
        Prediction.objects.filter(inspection_id__in=ids[warm:half]).values_list(
            "latency_ms", flat=True
        )
    )
    total, model = statistics.median(total_ms[warm:]), statistics.median(model_ms)
    return {
        "total_ms_p50": total,
        "model_ms_p50": model,
        "rest_ms_p50": total - model,
        "with_new_db_connection_ms_p50": statistics.median(reconnect_ms),
    }


def celery_message_probe(station, pool: list[bytes]) -> dict:
    """Enqueue one prediction the way the API does, with no worker running, and read it back."""
    import base64

    import redis

    from inspection import services, tasks
    from inspection.images import validate_image

    png = tagged_png(pool[0], "message-probe")
    image = validate_image(png, max_bytes=len(png), max_pixels=10**8)
    inspection, _ = services.receive_inspection(
        station=station, external_id="bench-message-probe", image=image, metadata={}
    )
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(QUEUE)
    tasks.enqueue_prediction(inspection.pk)
    raw = client.lrange(QUEUE, 0, -1)
    # the worker must never see the probe: its inspection stays unrouted on purpose
    client.delete(QUEUE)
    if len(raw) != 1:
        raise RuntimeError(f"expected one message on {QUEUE!r}, found {len(raw)}")
    envelope = json.loads(raw[0])
    body = base64.b64decode(envelope["body"])
    args, kwargs, _embed = json.loads(body)
    return {
        "message_bytes": len(raw[0]),
        "body_bytes": len(body),
        "task": envelope["headers"]["task"],
        "args": args,
        "kwargs": kwargs,
        "image_bytes": len(png),
        "id_only": args == [inspection.pk] and not kwargs,
    }


def celery_round_trip(count: int = 60, warm: int = 10) -> dict:
    """A built-in no-op task through the same broker, worker and result backend, one at a time:
    what Celery alone adds to a request, with nothing of Loupe's in the task."""
    from loupe.celery import app

    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        app.send_task("celery.accumulate", args=(1,), queue=QUEUE).get(timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times[warm:]), "count": count - warm}
