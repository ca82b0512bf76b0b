"""The supervisor console: lines, one line, and the confirmed change of its level or thresholds.

Every line is looked up through inspection.selectors (another line is a 404); the figures and the
rule for raising a level live in inspection.console.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from inspection import console
from inspection.errors import LineChangedMeanwhile, LineRuleBroken
from inspection.forms import LineChangeForm
from inspection.models import AutomationLevel
from inspection.selectors import visible_lines
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


def _render_line(request, line, form):
    items = console.latest_agreement_items(line)
    counts = console.day_counts(line)
    return render(
        request,
        "inspection/line.html",
        {
            "line": line,
            "counts": counts,
            "median": _duration(counts.median_decision_s),
            "today": timezone.localdate(),
            "agreement_total": console.count_agreement_items(line),
            "evidence_items": len(items),
            "agreement_pct": console.agreement_pct(items),
            "effect": console.effect_of(
                items,
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
            "stations": line.stations.all(),
            "changes": line.changes.all()[:200],
            "form": form,
        },
    )


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def line_page(request, pk):
    line = _line_or_404(request, pk)
    form = None
    if request.user.has_perm(CAN_CONTROL_LINES):
        form = LineChangeForm(line=line, agreement_items=console.count_agreement_items(line))
    return _render_line(request, line, form)


def _render_confirmation(request, line, form, agreement_items):
    data = form.cleaned_data
    level, accept, reject = (
        data["automation_level"],
        data["accept_threshold"],
        data["reject_threshold"],
    )
    items = console.latest_agreement_items(line)
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
            "agreement_total": agreement_items,
            "evidence_items": len(items),
            "agreement_pct": console.agreement_pct(items),
            "effect_now": console.effect_of(
                items,
                level=line.automation_level,
                accept_threshold=line.accept_threshold,
                reject_threshold=line.reject_threshold,
            ),
            "effect": console.effect_of(
                items, level=level, accept_threshold=accept, reject_threshold=reject
            ),
            "level_effect": console.level_effect(level, accept, reject, line.audit_fraction),
            "shortfall": console.minimum_shortfall(line, level, agreement_items),
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
    agreement_items = console.count_agreement_items(line)
    form = LineChangeForm(request.POST, line=line, agreement_items=agreement_items)
    if not form.is_valid():
        return _render_line(request, line, form)
    if request.POST.get("confirm") != "1":
        return _render_confirmation(request, line, form, agreement_items)
    if form.cleaned_data["line_version"] != console.line_version(line):
        # Someone changed the line after this confirmation was shown: its figures and its
        # "from" values may be wrong, so show them again instead of applying.
        messages.warning(request, "The line changed meanwhile. Check the figures again.")
        return _render_confirmation(request, line, form, agreement_items)
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
        return _render_confirmation(request, line, form, console.count_agreement_items(line))
    except LineRuleBroken as error:
        messages.error(request, error.message)
        return redirect("inspection:line", pk=line.pk)
    summary = "; ".join(f"{FIELD_LABELS[f]} {old} → {new}" for f, old, new in changed)
    messages.success(request, f"{line.name} changed: {summary}.")
    return redirect("inspection:line", pk=line.pk)
