"""A line's monitoring page: charts and a table of its figures over a chosen range."""

from django.contrib.auth.decorators import permission_required
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from inspection.selectors import visible_lines
from loupe.common.permissions import CAN_VIEW_LINES
from monitoring import concept, drift, figures

# the keys the page's shortcuts use (static/js/monitoring.js), one per range
SHORTCUTS = {"hour": "1", "shift": "2", "day": "3", "30d": "4"}


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def line_monitoring(request, pk):
    line = get_object_or_404(visible_lines(request.user), pk=pk)
    range_key = request.GET.get("range", figures.DEFAULT_RANGE)
    if range_key not in figures.RANGES:
        return HttpResponseBadRequest(
            f"Unknown range {range_key!r}: use one of {', '.join(figures.RANGES)}.",
            content_type="text/plain; charset=utf-8",
        )
    line_figures = figures.line_figures(line=line, range_key=range_key)
    drift_summary = drift.drift_summary(line)
    span = figures.RANGES[range_key]
    concept_summary = concept.concept_summary(line, span=span.span, span_label=span.label)
    return render(
        request,
        "monitoring/line.html",
        {
            "line": line,
            "figures": line_figures,
            "chart_data": line_figures.chart_data(),
            "ranges": [(r, SHORTCUTS[r.key]) for r in figures.RANGES.values()],
            "drift": drift_summary,
            "drift_chart": drift_summary["chart"],
            "concept": concept_summary,
            "concept_chart": concept_summary["chart"],
        },
    )
