"""Active learning for the labeling queue: which recent unlabeled items of a line would teach
its model most, by ml.engine.active_learning (uncertainty and novelty, kept diverse).

The pool is the line's recent live items (the last `days`, at most `max_items`, newest
first) that nobody labeled in the editor and nobody is reviewing; offline stations (imports,
batch predictions) stay out. Novelty is measured against a sample of the line's labeled
items. The line's active model scores both in one pass each. This runs in a worker of the
datasets queue (labeling.tasks), never on the inference queue: scoring a pool takes seconds.
"""

import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from inspection.inference import ModelUnavailable, loaded_model
from inspection.models import Inspection, Line, ReviewItem, ReviewState
from inspection.services import OFFLINE_STATIONS
from inspection.storage import image_path
from labeling.models import ACTIVE_LEARNING_KINDS, AnnotationRevision, LabelSource, QueueEntry
from labeling.selectors import latest_revisions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidatePool:
    """Which items active learning chooses from, and how many it puts on the queue."""

    days: int = 7
    max_items: int = 1000
    picks: int = 30
    reference_items: int = 500
    batch_size: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_POOL = CandidatePool()


@dataclass
class Candidates:
    """What one run found: picks are (inspection id, kind, score, details), best first."""

    status: str  # "picked", "no_model", "model_unavailable", "empty_pool"
    strategy: dict = field(default_factory=dict)
    model: str = ""
    pool_size: int = 0
    reference_size: int = 0
    picks: list[tuple[int, str, float, dict]] = field(default_factory=list)


def pool_items(line: Line, pool: CandidatePool = DEFAULT_POOL, *, now=None):
    """The recent live items of the line active learning may pick, newest first."""
    now = now or timezone.now()
    edited = AnnotationRevision.objects.filter(inspection=OuterRef("pk")).exclude(
        source=LabelSource.REVIEW
    )
    in_review = ReviewItem.objects.filter(inspection=OuterRef("pk"), state=ReviewState.OPEN)
    # worked already, or on the queue for a flagged reason: active learning leaves it
    worked = QueueEntry.objects.filter(inspection=OuterRef("pk")).filter(
        ~Q(state="open") | ~Q(kind__in=ACTIVE_LEARNING_KINDS)
    )
    return (
        Inspection.objects.filter(line=line, received_at__gte=now - timedelta(days=pool.days))
        .exclude(station__name__in=OFFLINE_STATIONS)
        .exclude(Exists(edited))
        .exclude(Exists(in_review))
        .exclude(Exists(worked))
        .order_by("-received_at", "-pk")[: pool.max_items]
    )


def reference_items(line: Line, pool: CandidatePool = DEFAULT_POOL):
    """The line's most recently labeled items: what the model's training data looks like."""
    revisions = latest_revisions(Line.objects.filter(pk=line.pk)).order_by("-created_at", "-pk")
    ids = list(revisions.values_list("inspection_id", flat=True)[: pool.reference_items])
    return Inspection.objects.filter(pk__in=ids).order_by("-pk")


def load_images(inspections, input_size: int) -> tuple[list[Inspection], list]:
    """The items whose image could be read, and their images at the model's input size.

    Resized once here (as the model's preprocessing would), so a pool of camera-sized images
    never sits in memory at full size. An unreadable file is logged and left out.
    """
    from PIL import Image

    kept, images = [], []
    for inspection in inspections:
        try:
            with Image.open(image_path(inspection.image.name)) as image:
                image.draft("RGB", (input_size, input_size))  # JPEG decodes smaller, faster
                small = image.convert("RGB").resize(
                    (input_size, input_size), Image.Resampling.BILINEAR
                )
        except OSError as exc:
            logger.warning("active learning skipped inspection %s: %s", inspection.pk, exc)
            continue
        kept.append(inspection)
        images.append(small)
    return kept, images


def find_candidates(line: Line, *, pool: CandidatePool = DEFAULT_POOL, strategy=None) -> Candidates:
    """Score the line's pool with its active model and return the top picks.

    No active model, or one that cannot be loaded, gives no picks (the status says why); the
    queue then keeps what it had. Safe to repeat: it only reads.
    """
    from ml.engine import active_learning

    # uncertainty peaks where this line decides (a threshold of 0 or 1 rejects all or none)
    strategy = strategy or replace(
        active_learning.DEFAULT_STRATEGY, boundary=min(max(line.reject_threshold, 0.01), 0.99)
    )
    used = {**strategy.to_dict(), "pool": pool.to_dict()}
    version = line.active_model
    if version is None:
        return Candidates(status="no_model", strategy=used)
    try:
        model = loaded_model(version)
    except ModelUnavailable as exc:
        logger.warning("active learning skipped line %s: %s", line.name, exc)
        return Candidates(status="model_unavailable", strategy=used, model=version.name)
    size = model.preprocessing.input_size
    items, images = load_images(pool_items(line, pool), size)
    if not items:
        return Candidates(status="empty_pool", strategy=used, model=version.name)
    _, references = load_images(reference_items(line, pool), size)
    probabilities, embeddings = active_learning.score_images(
        model, images, batch_size=pool.batch_size, strategy=strategy
    )
    if references:
        _, reference_embeddings = active_learning.score_images(
            model, references, batch_size=pool.batch_size, strategy=strategy
        )
    else:
        reference_embeddings = embeddings[:0]
    picks = active_learning.select(
        probabilities, embeddings, reference_embeddings, pool.picks, strategy
    )
    picked_at = timezone.now().isoformat()
    rows = []
    for pick in picks:
        probability = float(probabilities[pick.index])
        details = {
            **pick.to_dict(),
            "why": f"{pick.reason}: uncertainty {pick.uncertainty:.2f}, novelty {pick.novelty:.2f}",
            "probability": round(probability, 4),
            "model": version.name,
            "strategy": strategy.name,
            "picked_at": picked_at,
        }
        details.pop("index")
        rows.append((items[pick.index].pk, pick.reason, pick.score, details))
    return Candidates(
        status="picked",
        strategy=used,
        model=version.name,
        pool_size=len(items),
        reference_size=len(references),
        picks=rows,
    )
