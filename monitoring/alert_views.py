"""Alert pages and a supervisor's actions: the open alerts of the user's lines, a line's rules
page (rules, mute windows, the reference reset, the webhook and stepping back), acknowledging
and resolving. Every action goes through monitoring's services, which write the audit log.

Permissions are the console's: whoever sees a line sees its alerts and rules; changing them
is line control (loupe.common.permissions.CAN_CONTROL_LINES), and another line is a 404. Bad
input is a 400 with the reason, and nothing is stored.
"""

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from inspection.models import AutomationLevel
from inspection.selectors import visible_lines
from loupe.common.errors import InvalidInput, LoupeError
from loupe.common.permissions import CAN_CONTROL_LINES, CAN_VIEW_LINES
from monitoring import alert_rules, alerts, line_settings
from monitoring.models import Alert, MuteWindow


def _error(error: LoupeError) -> JsonResponse:
    return JsonResponse({"error": error.code, "message": error.message}, status=error.status_code)


def _line(request, pk):
    return get_object_or_404(visible_lines(request.user), pk=pk)


def _back(request, fallback: str) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback
    return HttpResponseRedirect(target or fallback)


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def alerts_page(request):
    return render(
        request, "monitoring/alerts.html", {"alerts": alerts.open_alerts_for(request.user)}
    )


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def line_alert_rules(request, pk):
    line = _line(request, pk)
    rules = alert_rules.rules_for(line)
    return render(
        request,
        "monitoring/rules.html",
        {
            "line": line,
            "rules": [(rule, alert_rules.METRICS[rule.metric]) for rule in rules],
            "open_alerts": alerts.open_alerts_for(request.user, line),
            "recent_alerts": alerts.recent_alerts(line),
            "mutes": alerts.mute_windows(line),
            "config": line_settings.settings_or_defaults(line),
            "floors": [
                (level, AutomationLevel(level).label) for level in line_settings.STEP_BACK_FLOORS
            ],
            "can_control": request.user.has_perm(CAN_CONTROL_LINES),
        },
    )


def _alert(request, pk) -> Alert:
    return get_object_or_404(Alert.objects.filter(line__in=visible_lines(request.user)), pk=pk)


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def acknowledge(request, pk):
    alert = _alert(request, pk)
    try:
        alerts.acknowledge_alert(alert=alert, user=request.user.get_username())
    except LoupeError as error:
        return _error(error)
    messages.success(request, f"Alert #{alert.pk} acknowledged.")
    return _back(request, reverse("inspection:line", args=[alert.line_id]))


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def resolve(request, pk):
    alert = _alert(request, pk)
    try:
        alerts.resolve_alert(alert=alert, user=request.user.get_username())
    except LoupeError as error:
        return _error(error)
    messages.success(request, f"Alert #{alert.pk} resolved.")
    return _back(request, reverse("inspection:line", args=[alert.line_id]))


def _number(raw: str, kind, what: str):
    try:
        return kind(raw.strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a {'whole ' if kind is int else ''}number") from None


def _rule_values(post) -> dict[str, dict]:
    values = {}
    for metric in alert_rules.METRICS:
        if f"{metric}-threshold" not in post:
            continue
        values[metric] = {
            "threshold": _number(post[f"{metric}-threshold"], float, f"{metric}: the threshold"),
            "window": _number(post.get(f"{metric}-window", ""), int, f"{metric}: the window"),
            "min_items": _number(
                post.get(f"{metric}-min_items", ""), int, f"{metric}: the min items"
            ),
            "enabled": post.get(f"{metric}-enabled") == "on",
        }
    if not values:
        raise InvalidInput("no rule in the form")
    return values


def _rules_page(line) -> str:
    return reverse("monitoring:line-alerts", args=[line.pk])


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def change_rules(request, pk):
    line = _line(request, pk)
    try:
        changed = alert_rules.update_alert_rules(
            line=line, values=_rule_values(request.POST), changed_by=request.user.get_username()
        )
    except LoupeError as error:
        return _error(error)
    messages.success(
        request, f"{len(changed)} rule setting(s) changed." if changed else "Nothing changed."
    )
    return redirect(_rules_page(line))


def _when(raw: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a date and time like 2026-12-01T14:00") from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def change_mutes(request, pk):
    """Add a mute window (start, empty for now; end; reason), or end one (end_mute=<id>)."""
    line = _line(request, pk)
    user = request.user.get_username()
    try:
        if request.POST.get("end_mute"):
            mute = get_object_or_404(
                MuteWindow, line=line, pk=_number(request.POST["end_mute"], int, "the window")
            )
            alerts.end_mute_window(mute=mute, user=user)
            messages.success(request, "Mute window ended.")
        else:
            start_raw = request.POST.get("start", "").strip()
            start = _when(start_raw, "the start") if start_raw else timezone.now()
            end = _when(request.POST.get("end", ""), "the end")
            alerts.add_mute_window(
                line=line, start=start, end=end, reason=request.POST.get("reason", ""), user=user
            )
            messages.success(request, "Mute window added: no alert of the line opens in it.")
    except LoupeError as error:
        return _error(error)
    return redirect(_rules_page(line))


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def reset_references(request, pk):
    line = _line(request, pk)
    try:
        resolved = alerts.reset_references(
            line=line, user=request.user.get_username(), reason=request.POST.get("reason", "")
        )
    except LoupeError as error:
        return _error(error)
    messages.success(
        request,
        f"Drift and concept references start over from now; {len(resolved)} drift alert(s)"
        " resolved.",
    )
    return redirect(_rules_page(line))


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def change_settings(request, pk):
    """The webhook and stepping back. An empty secret keeps the one set (it is never shown);
    clear_secret=on removes it."""
    line = _line(request, pk)
    post = request.POST
    try:
        values = {
            "webhook_url": post.get("webhook_url", "").strip(),
            "step_back_enabled": post.get("step_back_enabled") == "on",
            "step_back_floor": post.get("step_back_floor", ""),
            "drift_audit_fraction": _number(
                post.get("drift_audit_fraction", ""), float, "the audit rate on data drift"
            ),
            "drift_lowers_level": post.get("drift_lowers_level") == "on",
        }
        if post.get("webhook_secret"):
            values["webhook_secret"] = post["webhook_secret"]
        elif post.get("clear_secret") == "on":
            values["webhook_secret"] = ""
        line_settings.update_line_monitoring(
            line=line,
            changed_by=request.user.get_username(),
            reason=post.get("reason", "").strip(),
            **values,
        )
    except LoupeError as error:
        return _error(error)
    messages.success(request, "Alert settings saved.")
    return redirect(_rules_page(line))
