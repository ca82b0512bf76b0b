"""Review decisions become labels: once final, never twice, never over an inspector's boxes;
disagreements between the review decision and the editor label are marked."""

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from inspection import decisions
from labeling import review_labels, services
from labeling.models import AnnotationRevision, LabelDisagreement, LabelSource
from labeling.selectors import latest_revisions, open_disagreements
from review.services import decide_review_item, undo_decision
from tests.labeling.conftest import MODEL_BOX

LATER = timedelta(hours=1)


@pytest.fixture
def reviewed(inspect, inspector):
    """reviewed("SN-1", "reject") -> an inspection the inspector decided in the review queue
    (assist sends every item to review), with the model's scratch box recorded."""

    def make(external_id, outcome):
        inspection = inspect(external_id, probability=0.5, regions=[MODEL_BOX])
        decide_review_item(item=inspection.review_item, inspector=inspector, outcome=outcome)
        inspection.refresh_from_db()
        return inspection

    return make


def label_all(now=None):
    return review_labels.label_final_decisions(now=now or timezone.now() + LATER)


def counting(inspection):
    return latest_revisions().get(inspection=inspection)


def draw(inspection, author, image_label="defective", boxes=(MODEL_BOX,)):
    return services.save_annotation(
        inspection=inspection, author=author, image_label=image_label, boxes=list(boxes)
    )[0]


def test_a_final_decision_becomes_an_image_level_review_label(reviewed, inspector):
    rejected, accepted = reviewed("SN-r", "reject"), reviewed("SN-a", "accept")

    assert label_all() == 2

    label = counting(rejected)
    assert (label.source, label.image_label, label.boxes) == ("review", "defective", [])
    assert (label.author, label.decision) == (inspector, rejected.decision)
    assert label.compared_with is not None  # the model output it can be compared with
    assert counting(accepted).image_label == "ok"


def test_no_label_until_the_undo_window_and_the_grace_have_passed(reviewed):
    inspection = reviewed("SN-1", "reject")
    final_at = inspection.decision.final_at

    assert review_labels.label_final_decisions(now=inspection.decision.decided_at) == 0
    assert review_labels.label_final_decisions(now=final_at) == 0
    assert review_labels.label_final_decisions(now=final_at + review_labels.LABEL_GRACE) == 1


def test_an_undone_decision_leaves_no_label_and_the_new_one_gets_its_own(reviewed, inspector):
    inspection = reviewed("SN-1", "reject")
    undo_decision(item=inspection.review_item, user=inspector)

    assert label_all() == 0
    assert not AnnotationRevision.objects.exists()

    decide_review_item(item=inspection.review_item, inspector=inspector, outcome="accept")
    assert label_all() == 1
    assert counting(inspection).image_label == "ok"


def test_a_decision_is_labeled_once(reviewed):
    reviewed("SN-1", "reject")
    assert label_all() == 1
    assert label_all() == 0
    assert AnnotationRevision.objects.count() == 1


def test_decisions_of_the_model_and_of_imports_are_not_review_labels(
    make_line, station_with_token, inspector, model
):
    from inspection.services import routing_policy_snapshot
    from tests.helpers import seed_inspection

    full = make_line(name="line-full", level="full")
    station = station_with_token(full)[0]
    seed_inspection(station, "SN-model", probability=0.01, model_version=model)
    imported = decisions.ImportedItem(
        external_id="IMP-1",
        image_name="imp.png",
        sha256="0" * 64,
        image_format="PNG",
        width=64,
        height=64,
        outcome="reject",
    )
    decisions.record_imported_inspections(
        station=station,
        items=[imported],
        inspector=inspector,
        routing_policy=routing_policy_snapshot(full),
    )
    assert label_all() == 0
    assert not AnnotationRevision.objects.exists()


def test_an_audit_verdict_becomes_a_label_once_it_is_final(
    make_line, station_with_token, inspector, model
):
    """An audit leaves the model's decision in place, yet the inspector's verdict is the only
    human judgement of a full line's items: it is labeled like a decision, once final."""
    from tests.helpers import seed_inspection

    full = make_line(name="line-full", level="full", audit_fraction=1.0)
    full.members.add(inspector)
    station = station_with_token(full)[0]
    missed = seed_inspection(station, "SN-missed", probability=0.05, model_version=model)
    kept = seed_inspection(station, "SN-kept", probability=0.05, model_version=model)
    decide_review_item(item=missed.review_item, inspector=inspector, outcome="reject")
    undone = decide_review_item(item=kept.review_item, inspector=inspector, outcome="reject")
    assert label_all(now=timezone.now()) == 0  # both can still be undone
    undo_decision(item=undone, user=inspector)
    decide_review_item(item=kept.review_item, inspector=inspector, outcome="accept")

    assert label_all() == 2
    assert label_all() == 0  # once
    label = counting(missed)
    assert (label.source, label.image_label, label.boxes) == ("review", "defective", [])
    assert (label.audit.pk, label.decision, label.author) == (
        missed.review_item.pk,
        None,
        inspector,
    )
    assert missed.decision.outcome == "accept"  # the model's decision stays
    assert counting(kept).image_label == "ok"  # the verdict after the undo, not the undone one
    assert AnnotationRevision.objects.count() == 2


def test_a_review_label_never_replaces_boxes_and_a_disagreement_is_marked(
    inspect, inspector, reviewed
):
    boxed = inspect("SN-boxed", probability=0.5, regions=[MODEL_BOX])
    drawn = draw(boxed, inspector)  # the inspector drew boxes while the item waited
    decide_review_item(item=boxed.review_item, inspector=inspector, outcome="accept")
    label_all()

    review = AnnotationRevision.objects.get(inspection=boxed, source=LabelSource.REVIEW)
    assert review.number > drawn.number
    assert counting(boxed) == drawn  # the later review label does not count over boxes
    mark = open_disagreements().get()
    assert (mark.inspection_id, mark.review_revision, mark.editor_revision) == (
        boxed.pk,
        review,
        drawn,
    )

    # agreeing labels mark nothing, whichever comes first
    agreed = reviewed("SN-agreed", "reject")
    label_all()
    draw(agreed, inspector)
    assert counting(agreed).source != LabelSource.REVIEW
    assert open_disagreements().count() == 1


def test_the_next_editor_save_settles_a_disagreement(reviewed, inspector):
    inspection = reviewed("SN-1", "accept")
    label_all()
    first = draw(inspection, inspector)  # boxes after an accept: the two disagree
    assert open_disagreements().get().editor_revision == first

    second = draw(inspection, inspector, boxes=[{**MODEL_BOX, "x1": 45.0}])

    mark = LabelDisagreement.objects.get()
    assert (mark.settled_by, mark.settled_at is not None) == (second, True)
    assert not open_disagreements().exists()


def test_the_editor_starts_from_the_revision_that_counts(client, inspect, inspector):
    boxed = inspect("SN-1", probability=0.5, regions=[MODEL_BOX])
    draw(boxed, inspector)
    decide_review_item(item=boxed.review_item, inspector=inspector, outcome="accept")
    label_all()
    client.force_login(inspector)
    response = client.get(reverse("labeling:label", args=[boxed.pk]))
    assert response.context["editor"]["latest"]["boxes"] == [MODEL_BOX]


def test_the_backfill_command_labels_earlier_decisions_once(inspect, inspector):
    long_ago = timezone.now() - timedelta(days=30)
    for number in range(3):
        inspection = inspect(f"SN-{number}", probability=0.5)
        decisions.record_human_decision(
            inspection_id=inspection.pk, outcome="reject", inspector=inspector, decided_at=long_ago
        )

    first, second = io.StringIO(), io.StringIO()
    call_command("label_review_decisions", stdout=first)
    call_command("label_review_decisions", stdout=second)

    assert first.getvalue().strip() == "3 review label(s) written"
    assert second.getvalue().strip() == "0 review label(s) written"
    assert AnnotationRevision.objects.filter(source=LabelSource.REVIEW).count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_labelers_and_editor_saves_label_each_decision_once(reviewed, inspector):
    """The periodic job and the backfill command may run at once, while inspectors save
    labels: each thread has its own connection, the inspection row lock serializes them."""
    items = [reviewed(f"SN-{n}", "accept" if n % 2 else "reject") for n in range(4)]
    errors = []
    start = threading.Barrier(3)

    def run(work):
        try:
            start.wait()
            work()
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)
        finally:
            connection.close()

    def save_boxes():
        for inspection in items:
            draw(inspection, inspector)

    threads = [
        threading.Thread(target=run, args=(work,)) for work in (label_all, label_all, save_boxes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for inspection in items:
        revisions = AnnotationRevision.objects.filter(inspection=inspection)
        assert revisions.filter(source=LabelSource.REVIEW).count() == 1
        assert sorted(revisions.values_list("number", flat=True)) == [1, 2]
        assert counting(inspection).source != LabelSource.REVIEW
        # accepts disagree with the drawn boxes, rejects agree: marked whatever the order
        assert open_disagreements().filter(inspection=inspection).exists() == (
            inspection.decision.outcome == "accept"
        )


def test_the_data_page_shows_review_labels_and_filters_disagreements(
    client, inspect, inspector, reviewed, make_user, line
):
    boxed = inspect("SN-boxed", probability=0.5, regions=[MODEL_BOX])
    draw(boxed, inspector)
    decide_review_item(item=boxed.review_item, inspector=inspector, outcome="accept")
    reviewed("SN-review", "reject")
    label_all()
    client.force_login(make_user("dana", "data_team", [line]))

    def listed(**params):
        response = client.get(reverse("labeling:data"), params)
        assert response.status_code == 200
        return response, [rev.inspection.external_id for rev in response.context["page"]]

    response, items = listed()
    assert sorted(items) == ["SN-boxed", "SN-review"]
    (entry,) = response.context["counts"]
    assert (entry.items.review, entry.items.correction, entry.items.total) == (1, 0, 2)
    assert b"Review decision" in response.content
    assert response.content.count(b"badge reject disagreement") == 1
    assert listed(source="review")[1] == ["SN-review"]
    assert listed(disagreement="on")[1] == ["SN-boxed"]
