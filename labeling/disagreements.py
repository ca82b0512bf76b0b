"""Marks on items whose review decision and editor label disagree.

A review decision says accept or reject; an inspector's revision in the editor says OK or
defective. When the two differ, one of them is wrong and the item is worth a second look:
the mark stays open until the next revision saved in the editor settles it (that revision
counts, labeling.selectors). The labeling queue reads the open marks (selectors).

Both functions run inside the transaction that wrote the revision, with the inspection's row
locked (as save_annotation and review_labels do), so two saves of one item never open two
marks; a partial unique index keeps one open mark per item whatever the timing.
"""

from django.utils import timezone

from labeling.models import AnnotationRevision, LabelDisagreement, LabelSource


def _open_mark(*, review: AnnotationRevision, editor: AnnotationRevision) -> LabelDisagreement:
    return LabelDisagreement.objects.create(
        inspection_id=review.inspection_id, review_revision=review, editor_revision=editor
    )


def note_review_label(review: AnnotationRevision) -> LabelDisagreement | None:
    """A review label was written: mark the item when its editor label says otherwise."""
    editor = (
        AnnotationRevision.objects.filter(inspection_id=review.inspection_id)
        .exclude(source=LabelSource.REVIEW)
        .order_by("-number")
        .first()
    )
    if editor is None or editor.image_label == review.image_label:
        return None
    if LabelDisagreement.objects.filter(
        inspection_id=review.inspection_id, settled_at__isnull=True
    ).exists():
        return None
    return _open_mark(review=review, editor=editor)


def note_editor_revision(revision: AnnotationRevision) -> LabelDisagreement | None:
    """A revision was saved in the editor. It settles the item's open mark (someone labeled the
    item again after the disagreement); otherwise, when it differs from the item's review
    label, it opens one."""
    settled = LabelDisagreement.objects.filter(
        inspection_id=revision.inspection_id, settled_at__isnull=True
    ).update(settled_by=revision, settled_at=timezone.now())
    if settled:
        return None
    review = (
        AnnotationRevision.objects.filter(
            inspection_id=revision.inspection_id, source=LabelSource.REVIEW
        )
        .order_by("-number")
        .first()
    )
    if review is None or review.image_label == revision.image_label:
        return None
    return _open_mark(review=review, editor=revision)
