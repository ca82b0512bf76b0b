"""The open alerts in the top bar and on a line's pages (the console's line page is
inspection's template: it shows them through these tags, so inspection never imports
monitoring)."""

from django import template

from loupe.common.permissions import CAN_CONTROL_LINES, CAN_VIEW_LINES
from monitoring.alerts import open_alerts_for

register = template.Library()


@register.simple_tag(takes_context=True)
def open_alert_count(context) -> int:
    """Unresolved alerts of the lines the signed-in user sees; 0 for anyone else."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm(CAN_VIEW_LINES):
        return 0
    return open_alerts_for(user).count()


@register.inclusion_tag("monitoring/_alerts.html", takes_context=True)
def line_alerts(context, line):
    request = context["request"]
    return {
        "line": line,
        "alerts": list(open_alerts_for(request.user, line)),
        "can_control": request.user.has_perm(CAN_CONTROL_LINES),
        "csrf_token": context.get("csrf_token"),
        "next": request.get_full_path(),
    }
