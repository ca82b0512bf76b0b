"""The supervisor console: lines, one line, and the confirmed change of its level or thresholds.

Every line is looked up through inspection.selectors (another line is a 404); the figures and the
rule for raising a level live in inspection.console.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inspection import console, escapes, services
from inspection.errors import LineChangedMeanwhile, LineRuleBroken, SerialAmbiguous
from inspection.forms import EvidenceRulesForm, LineChangeForm, ReportEscapeForm
from inspection.models import AutomationLevel
from inspection.selectors import visible_lines
from loupe.common.errors import LoupeError
from loupe.common.permissions import CAN_CONTROL_LINES, CAN_VIEW_LINES

FIELD_LABELS = {
    "automation_level": "level",
    "accept_threshold": "accept threshold",
    "reject_threshold": "reject threshold",
}


def _line_or_404(request, pk):
    return get_object_or_404(visible_lines(request.user).select_related("active_model"), pk=pk)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _sparkline(hourly: list[int]) -> list[dict]:
    """Bars of a 24 x 20 SVG viewBox, one per hour, scaled to the busiest hour."""
    peak = max(hourly) or 1
    return [
        {"x": hour, "height": 20 * n / peak, "y": 20 - 20 * n / peak, "n": n, "hour": hour}
        for hour, n in enumerate(hourly)
    ]


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def lines_page(request):
    rows = []
    for line in visible_lines(request.user).select_related("active_model"):
        counts = console.day_counts(line)
        rows.append(
            {
                "line": line,
                "counts": counts,
                "median": _duration(counts.median_decision_s),
                "sparkline": _sparkline(console.hourly_inspected(line)),
            }
        )
    return render(request, "inspection/lines.html", {"rows": rows, "today": timezone.localdate()})


def _render_line(request, line, form=None, *, escape_form=None, rules_form=None, evidence=None):
    evidence = evidence or console.line_evidence(line)
    counts = console.day_counts(line)
    can_control = request.user.has_perm(CAN_CONTROL_LINES)
    if can_control:
        form = form or LineChangeForm(line=line, evidence=evidence)
        escape_form = escape_form or ReportEscapeForm(line=line)
        rules_form = rules_form or EvidenceRulesForm.for_line(line)
    escape_counts = escapes.escape_counts(line)
    return render(
        request,
        "inspection/line.html",
        {
            "line": line,
            "counts": counts,
            "median": _duration(counts.median_decision_s),
            "today": timezone.localdate(),
            "evidence": evidence,
            "effect": console.effect_of(
                evidence.items,
                level=line.automation_level,
                accept_threshold=line.accept_threshold,
                reject_threshold=line.reject_threshold,
            ),
            "level_effect": console.level_effect(
                line.automation_level,
                line.accept_threshold,
                line.reject_threshold,
                line.audit_fraction,
            ),
            "minimum": settings.LOUPE_MIN_AGREEMENT_ITEMS,
            "window": console.EVIDENCE_WINDOW,
            "audit_pct": f"{100 * line.audit_fraction:g}%",
            "escape_counts": escape_counts,
            "escape_total": sum(row.total for row in escape_counts),
            "latest_escapes": escapes.latest_escapes(line),
            "stations": line.stations.all(),
            "changes": line.changes.all()[:200],
            "form": form if can_control else None,
            "escape_form": escape_form,
            "rules_form": rules_form,
        },
    )


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def line_page(request, pk):
    return _render_line(request, _line_or_404(request, pk))


def _render_confirmation(request, line, form, evidence):
    data = form.cleaned_data
    level, accept, reject = (
        data["automation_level"],
        data["accept_threshold"],
        data["reject_threshold"],
    )
    rows = [
        ("Automation level", line.get_automation_level_display(), AutomationLevel(level).label),
        ("Accept when p(defect) ≤", line.accept_threshold, accept),
        ("Reject when p(defect) ≥", line.reject_threshold, reject),
    ]
    return render(
        request,
        "inspection/line_change_confirm.html",
        {
            "line": line,
            "form": form,
            "rows": [{"label": a, "now": b, "proposed": c, "changed": b != c} for a, b, c in rows],
            "evidence": evidence,
            "window": console.EVIDENCE_WINDOW,
            "gated": console.needs_minimum(line.automation_level, level),
            "effect_now": console.effect_of(
                evidence.items,
                level=line.automation_level,
                accept_threshold=line.accept_threshold,
                reject_threshold=line.reject_threshold,
            ),
            "effect": console.effect_of(
                evidence.items, level=level, accept_threshold=accept, reject_threshold=reject
            ),
            "level_effect": console.level_effect(level, accept, reject, line.audit_fraction),
            "shortfall": console.minimum_shortfall(line, level, evidence, reject),
            "line_version": console.line_version(line),
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def change_line(request, pk):
    """POST the line page's form: the confirmation page (nothing changes yet).
    POST it again with confirm=1: the change is applied and logged."""
    line = _line_or_404(request, pk)
    if request.method == "GET":
        return redirect("inspection:line", pk=line.pk)
    evidence = console.line_evidence(line)
    form = LineChangeForm(request.POST, line=line, evidence=evidence)
    if not form.is_valid():
        return _render_line(request, line, form, evidence=evidence)
    if request.POST.get("confirm") != "1":
        return _render_confirmation(request, line, form, evidence)
    if form.cleaned_data["line_version"] != console.line_version(line):
        # Someone changed the line after this confirmation was shown: its figures and its
        # "from" values may be wrong, so show them again instead of applying.
        messages.warning(request, "The line changed meanwhile. Check the figures again.")
        return _render_confirmation(request, line, form, evidence)
    data = form.cleaned_data
    try:
        changed = console.change_routing_policy(
            line=line,
            level=data["automation_level"],
            accept_threshold=data["accept_threshold"],
            reject_threshold=data["reject_threshold"],
            changed_by=request.user.get_username(),
            reason=data["reason"],
            override=data["override"],
            expected_version=data["line_version"],
        )
    except LineChangedMeanwhile:
        line.refresh_from_db()
        messages.warning(request, "The line changed meanwhile. Check the figures again.")
        return _render_confirmation(request, line, form, console.line_evidence(line))
    except LineRuleBroken as error:
        messages.error(request, error.message)
        return redirect("inspection:line", pk=line.pk)
    summary = "; ".join(f"{FIELD_LABELS[f]} {old} → {new}" for f, old, new in changed)
    messages.success(request, f"{line.name} changed: {summary}.")
    return redirect("inspection:line", pk=line.pk)


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def change_evidence_rules(request, pk):
    """The line's audit rate and the gate's bounds: applied at once, each changed field in the
    audit log (raising the level is still the confirmed change above)."""
    line = _line_or_404(request, pk)
    form = EvidenceRulesForm.for_line(line, request.POST)
    if not form.is_valid():
        return _render_line(request, line, rules_form=form)
    before = {field: getattr(line, field) for field in form.line_settings()}
    try:
        line = services.set_line_settings(
            line=line,
            changed_by=request.user.get_username(),
            reason=form.cleaned_data["reason"].strip(),
            **form.line_settings(),
        )
    except LoupeError as error:
        form.add_error(None, error.message)
        return _render_line(request, line, rules_form=form)
    changed = [field for field, old in before.items() if getattr(line, field) != old]
    if changed:
        names = ", ".join(field.replace("_", " ") for field in changed)
        messages.success(request, f"{line.name}: {names} changed.")
    else:
        messages.info(request, "Nothing changed: these are the line's rules now.")
    return redirect("inspection:line", pk=line.pk)


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def report_escape(request, pk):
    """Record an escape found after the line by its serial; when several stations share the
    serial, the form comes back asking which station's item it was."""
    line = _line_or_404(request, pk)
    form = ReportEscapeForm(request.POST, line=line)
    if not form.is_valid():
        return _render_line(request, line, escape_form=form)
    data = form.cleaned_data
    try:
        escape, created = escapes.record_reported_escape(
            line=line,
            serial=data["serial"],
            station=data["station"],
            note=data["note"],
            user=request.user,
        )
    except SerialAmbiguous as error:
        form = ReportEscapeForm(request.POST, line=line, stations=error.stations)
        form.is_valid()
        form.add_error("station", error.message)
        return _render_line(request, line, escape_form=form)
    except LoupeError as error:
        form.add_error(error.field if error.field in form.fields else None, error.message)
        return _render_line(request, line, escape_form=form)
    inspection = escape.inspection
    where = f"{inspection.external_id} ({inspection.station.name})"
    if created:
        messages.success(request, f"Escape recorded on {where}; it goes to the labeling queue.")
    else:
        messages.info(request, f"{where} was already marked as an escape.")
    return redirect("inspection:line", pk=line.pk)
