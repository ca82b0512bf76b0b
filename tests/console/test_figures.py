"""The console's figures: today's counts per line, agreement evidence, the effect of a change."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from inspection import console, services
from inspection.console import AgreementItem, Effect
from inspection.errors import LineRuleBroken
from inspection.evidence import AgreementFigures
from inspection.models import Line, LineChange, ReviewItem
from ml import services as ml_services
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version

DAY = date(2024, 3, 5)


def at(day, hour, minute=0, second=0):
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour, minute, second))


def move(inspection, *, received_at=None, decided_at=None):
    """Place a seeded item at a fixed time, so the day's figures are exact."""
    if received_at is not None:
        type(inspection).objects.filter(pk=inspection.pk).update(received_at=received_at)
    if decided_at is not None:
        ReviewItem.objects.filter(inspection=inspection).update(decided_at=decided_at)


@pytest.fixture
def partial_line(make_line, station_with_token, make_user):
    line = make_line(
        name="press-7",
        level="partial",
        accept_threshold=0.2,
        reject_threshold=0.8,
        audit_fraction=0.0,
    )
    station, _ = station_with_token(line)
    version = seed_model_version("v7")
    ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
    inspector = make_user("ivy", role="inspector", lines=[line])

    def seed(external_id, p, *, received_at, human=None, decided_at=None):
        station.line.refresh_from_db()  # the line's rules as they are now
        inspection = seed_inspection(station, external_id, probability=p, model_version=version)
        if human:
            decide_review_item(item=inspection.review_item, inspector=inspector, outcome=human)
        move(inspection, received_at=received_at, decided_at=decided_at)
        return inspection

    return line, seed


def test_day_counts_of_a_partial_line(partial_line):
    line, seed = partial_line
    seed("model-accepts", 0.05, received_at=at(DAY, 9))
    seed("model-rejects", 0.95, received_at=at(DAY, 9, 1))
    seed("open", 0.5, received_at=at(DAY, 9, 2))
    # decided 100 s after arrival; the model (reject at 0.8) would have accepted: disagreement
    seed("decided", 0.6, received_at=at(DAY, 10), human="reject", decided_at=at(DAY, 10, 1, 40))
    # arrived the day before, decided today after two hours; the model agrees
    seed(
        "overnight",
        0.4,
        received_at=at(DAY - timedelta(days=1), 23),
        human="accept",
        decided_at=at(DAY, 1),
    )
    seed("old-open", 0.3, received_at=at(DAY - timedelta(days=1), 12))
    seed(
        "next-day",
        0.5,
        received_at=at(DAY + timedelta(days=1), 8),
        human="accept",
        decided_at=at(DAY + timedelta(days=1), 8, 5),
    )

    counts = console.day_counts(line, DAY)

    assert counts == console.DayCounts(
        inspected=4,
        decided_by_model=2,
        sent_to_review=2,
        review_backlog=2,  # "open" and "old-open": waiting now, whatever day they came
        median_decision_s=(100 + 7200) / 2,
        # both human decisions were in the unsure band, with the model in view
        agreement_items=0,
        agreeing=0,
        seen_items=2,
        seen_agreeing=1,
    )
    assert (counts.agreement_pct, counts.seen_agreement_pct) == (None, 50.0)


def test_day_counts_keep_blind_and_seen_decisions_apart(partial_line):
    line, seed = partial_line
    services.set_line_settings(line=line, changed_by="sam", audit_fraction=1.0)
    # sampled: an audit of the model's accept (the human rejects: a miss), a blind unsure item
    seed("audited", 0.05, received_at=at(DAY, 9), human="reject", decided_at=at(DAY, 9, 1))
    seed("blind", 0.5, received_at=at(DAY, 9), human="accept", decided_at=at(DAY, 9, 2))
    services.set_line_settings(line=line, changed_by="sam", audit_fraction=0.0)
    seed("seen", 0.5, received_at=at(DAY, 9), human="accept", decided_at=at(DAY, 9, 3))
    counts = console.day_counts(line, DAY)
    assert (counts.agreement_items, counts.agreeing, counts.seen_items, counts.seen_agreeing) == (
        2,
        1,
        1,
        1,
    )
    assert counts.decided_by_model == 1  # the audit does not change the model's decision


def test_an_empty_day_has_no_median_and_no_agreement(partial_line):
    line, _ = partial_line
    counts = console.day_counts(line, DAY)
    assert (counts.inspected, counts.median_decision_s, counts.agreement_pct) == (0, None, None)


def test_today_is_the_servers_local_day(partial_line, settings):
    line, seed = partial_line
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:30 UTC the day before is 00:30 in Berlin: today there, not in UTC
    seed("late", 0.05, received_at=datetime(2024, 3, 4, 23, 30, tzinfo=UTC))
    assert console.day_counts(line, DAY).inspected == 1
    assert console.hourly_inspected(line, DAY)[0] == 1
    settings.TIME_ZONE = "UTC"
    assert console.day_counts(line, DAY).inspected == 0


def test_hourly_inspected(partial_line):
    line, seed = partial_line
    seed("a", 0.05, received_at=at(DAY, 9, 5))
    seed("b", 0.05, received_at=at(DAY, 9, 55))
    seed("c", 0.95, received_at=at(DAY, 23, 59))
    hourly = console.hourly_inspected(line, DAY)
    assert (len(hourly), hourly[9], hourly[23], sum(hourly)) == (24, 2, 1, 3)


def test_evidence_of_the_known_set(shadow_line):
    items = console.latest_agreement_items(shadow_line)
    assert len(items) == 8 == console.count_agreement_items(shadow_line)
    evidence = console.line_evidence(shadow_line)
    assert evidence.unbiased == AgreementFigures(items=8, agreeing=5, defective=4, missed=2)
    assert (evidence.unbiased_total, evidence.seen_total) == (8, 0)
    assert evidence.seen == AgreementFigures(items=0, agreeing=0, defective=0, missed=0)
    # partial at 0.2 / 0.8 decides p <= 0.2 and p >= 0.8: 6 items, wrong on 0.15 and 0.90
    assert console.effect_of(
        items, level="partial", accept_threshold=0.2, reject_threshold=0.8
    ) == Effect(total=8, auto_decided=6, disagreements=2)
    assert console.effect_of(
        items, level="partial", accept_threshold=0.1, reject_threshold=0.9
    ) == Effect(total=8, auto_decided=4, disagreements=1)
    # full decides every item: wrong on 0.15, 0.60 and 0.90
    assert console.effect_of(
        items, level="full", accept_threshold=0.2, reject_threshold=0.8
    ) == Effect(total=8, auto_decided=8, disagreements=3)
    for level in ("human_only", "shadow", "assist"):
        effect = console.effect_of(items, level=level, accept_threshold=0.2, reject_threshold=0.8)
        assert effect == Effect(total=8, auto_decided=0, disagreements=0)


def test_thresholds_are_inclusive_as_in_routing():
    items = [AgreementItem(0.2, "accept", True), AgreementItem(0.8, "reject", True)]
    effect = console.effect_of(items, level="partial", accept_threshold=0.2, reject_threshold=0.8)
    assert (effect.auto_decided, effect.auto_decided_pct, effect.to_review) == (2, 100.0, 0)


def test_evidence_is_the_latest_items_of_the_active_model_only(shadow_line, station_with_token):
    station = shadow_line.stations.get()
    old = seed_model_version("v0")
    other = seed_inspection(station, "other-model", probability=0.5, model_version=old)
    decide_review_item(
        item=other.review_item, inspector=shadow_line.members.get(), outcome="accept"
    )
    seed_inspection(station, "still-open", probability=0.5, model_version=shadow_line.active_model)
    assert console.count_agreement_items(shadow_line) == 8
    latest = console.latest_agreement_items(shadow_line, limit=3)
    assert [item.defect_probability for item in latest] == [0.95, 0.90, 0.85]


def test_a_line_without_a_model_has_no_evidence(make_line):
    line = make_line(name="bare", level="shadow")
    assert console.count_agreement_items(line) == 0
    assert console.latest_agreement_items(line) == []


@pytest.mark.parametrize(
    ("old", "new", "needed"),
    [
        ("shadow", "partial", True),
        ("assist", "partial", True),
        ("human_only", "full", True),
        ("partial", "full", True),
        ("human_only", "assist", False),
        ("full", "partial", False),
        ("partial", "shadow", False),
        ("partial", "partial", False),
    ],
)
def test_only_a_raise_above_assist_needs_the_minimum(old, new, needed):
    assert console.needs_minimum(old, new) is needed


def test_raise_below_the_minimum_is_refused_and_changes_nothing(shadow_line, lenient, settings):
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 9
    changes_before = LineChange.objects.count()
    with pytest.raises(LineRuleBroken, match=r"at least 9 unbiased items \(this line: 8\)\."):
        console.change_routing_policy(
            line=shadow_line,
            level="partial",
            accept_threshold=0.1,
            reject_threshold=0.8,  # the line's: only the minimum fails
            changed_by="sam",
            override=True,  # an override without a reason is no override
        )
    line = Line.objects.get(pk=shadow_line.pk)
    assert (line.automation_level, line.accept_threshold) == ("shadow", 0.2)
    assert LineChange.objects.count() == changes_before


@pytest.mark.parametrize(
    ("target", "limit", "message"),
    [
        (0.35, 0.85, "agreement lower bound ≥ 35.0% (this line: 34.8% (5 of 8 agree))."),
        (0.3, 0.8, "miss-rate upper bound ≤ 80.0% (this line: 81.8% (2 of 4 defective items "),
    ],
)
def test_each_bound_refuses_a_raise_on_its_own(shadow_line, settings, target, limit, message):
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 8
    Line.objects.filter(pk=shadow_line.pk).update(agreement_target=target, escape_rate_limit=limit)
    shadow_line.refresh_from_db()
    with pytest.raises(LineRuleBroken) as refused:
        console.change_routing_policy(
            line=shadow_line,
            level="full",
            accept_threshold=0.2,
            reject_threshold=0.8,
            changed_by="sam",
        )
    assert message in refused.value.message
    assert Line.objects.get(pk=shadow_line.pk).automation_level == "shadow"


def test_seen_the_model_items_are_no_evidence(make_line, station_with_token, make_user, settings):
    """Assist items decided with the model in view agree well, but the gate does not count
    them: only the blind sample among them does."""
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 3
    line = make_line(name="press-5", level="assist", audit_fraction=0.0)
    station, _ = station_with_token(line)
    version = seed_model_version("v5")
    ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
    inspector = make_user("ivy", role="inspector", lines=[line])
    for i in range(4):
        item = seed_inspection(station, f"seen-{i}", probability=0.05, model_version=version)
        decide_review_item(item=item.review_item, inspector=inspector, outcome="accept")
    line.refresh_from_db()
    evidence = console.line_evidence(line)
    assert (evidence.unbiased_total, evidence.seen_total, evidence.seen.agreeing) == (0, 4, 4)
    with pytest.raises(LineRuleBroken, match=r"at least 3 unbiased items \(this line: 0\)"):
        console.change_routing_policy(
            line=line, level="partial", accept_threshold=0.2, reject_threshold=0.8, changed_by="s"
        )


def test_override_with_a_reason_is_recorded(shadow_line, settings):
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 9
    changed = console.change_routing_policy(
        line=shadow_line,
        level="partial",
        accept_threshold=0.2,
        reject_threshold=0.8,
        changed_by="sam",
        reason="  vendor validated the model  ",
        override=True,
    )
    assert changed == [("automation_level", "shadow", "partial")]
    change = shadow_line.changes.get(field="automation_level")
    assert (change.old_value, change.new_value, change.changed_by, change.reason) == (
        "shadow",
        "partial",
        "sam",
        "Override: Raising to Partial automation needs unbiased evidence of the active model: "
        "at least 9 unbiased items (this line: 8); agreement lower bound ≥ 95.0% (this line: "
        "34.8% (5 of 8 agree)); miss-rate upper bound ≤ 25.0% (this line: 81.8% (2 of 4 "
        "defective items missed)). vendor validated the model",
    )


def test_enough_evidence_needs_no_override(shadow_line, lenient, settings):
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 8
    assert console.line_evidence(shadow_line).verdict.passed
    changed = console.change_routing_policy(
        line=shadow_line,
        level="partial",
        accept_threshold=0.1,
        reject_threshold=0.9,
        changed_by="sam",
        reason="62.5% agreement",
    )
    assert changed == [
        ("automation_level", "shadow", "partial"),
        ("accept_threshold", "0.2", "0.1"),
        ("reject_threshold", "0.8", "0.9"),
    ]
    rows = shadow_line.changes.exclude(field__in=["active_model", "members"]).values_list(
        "field", "old_value", "new_value", "changed_by", "reason"
    )
    assert sorted(rows) == [
        ("accept_threshold", "0.2", "0.1", "sam", "62.5% agreement"),
        ("automation_level", "shadow", "partial", "sam", "62.5% agreement"),
        ("reject_threshold", "0.8", "0.9", "sam", "62.5% agreement"),
    ]


def test_a_change_confirmed_for_an_older_version_of_the_line_is_refused(db, make_line):
    from inspection import console
    from inspection.errors import LineChangedMeanwhile
    from inspection.models import Line

    line = make_line(name="race", level="shadow")
    seen = console.line_version(line)
    # another supervisor's change lands first
    console.change_routing_policy(
        line=line, level="assist", accept_threshold=0.2, reject_threshold=0.8, changed_by="sam"
    )
    with pytest.raises(LineChangedMeanwhile):
        console.change_routing_policy(
            line=line,
            level="human_only",
            accept_threshold=0.1,
            reject_threshold=0.9,
            changed_by="tom",
            expected_version=seen,
        )
    line = Line.objects.get(pk=line.pk)
    assert (line.automation_level, line.accept_threshold) == ("assist", 0.2)


def test_a_raise_is_judged_at_the_reject_threshold_it_sets(shadow_line, lenient, settings):
    """Raising to full and moving the reject threshold up in the same change must not pass on
    agreement taken at the old threshold: at 0.99 the model would accept every defect."""
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 8
    evidence = console.line_evidence(shadow_line)
    assert console.minimum_shortfall(shadow_line, "full", evidence) is None
    assert console.minimum_shortfall(shadow_line, "full", evidence, 0.8) is None
    shortfall = console.minimum_shortfall(shadow_line, "full", evidence, 0.99)
    assert "4 of 4 defective items missed" in shortfall
    with pytest.raises(LineRuleBroken, match="4 of 4 defective items missed"):
        console.change_routing_policy(
            line=shadow_line,
            level="full",
            accept_threshold=0.2,
            reject_threshold=0.99,
            changed_by="sam",
        )
    assert Line.objects.get(pk=shadow_line.pk).reject_threshold == 0.8
