"""A line's rollout page: the running (or latest) rollout of a challenger beside the active
model, its side-by-side report and steps chart, what the gate says of the next step, and the
supervisor's actions on it. Each action goes through the owning service (monitoring.rollout_gate
for a step, inspection.rollouts for a switch, a rollback or a stop, ml.challengers for a
promotion), which writes the line's audit log.

Permissions are the console's: whoever sees a line sees its rollouts; acting is line control,
and another line is a 404. A refused action (the gate says not yet, the rollout ended
meanwhile) is a 4xx with the reason as JSON; nothing changes then.
"""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspection import rollouts
from inspection.errors import RolloutConflict
from inspection.models import Rollout, RolloutMode, RolloutState
from inspection.selectors import visible_lines
from loupe.common.errors import InvalidInput, LoupeError
from loupe.common.permissions import CAN_CONTROL_LINES, CAN_VIEW_LINES
from monitoring import rollout_gate
from monitoring.challenger_report import rollout_report, rollout_steps

ACTIONS = ("advance", "switch", "rollback", "stop", "promote")
RATES = ("agreement", "escape", "false_reject")


def _line(request, pk):
    return get_object_or_404(visible_lines(request.user), pk=pk)


@require_GET
@permission_required(CAN_VIEW_LINES, raise_exception=True)
def line_rollout(request, pk):
    line = _line(request, pk)
    history = list(Rollout.objects.filter(line=line).select_related("challenger")[:10])
    shown = history[0] if history else None
    context = {"line": line, "rollout": shown, "history": history}
    if shown is not None:
        report = rollout_report(shown)
        context["report"] = report
        rows = [("active", "Active"), ("challenger", "Challenger")]
        if "active_before" in report:
            rows.insert(1, ("active_before", "Active, the week before"))
        context["report_rows"] = [
            (
                key,
                label,
                {
                    **report[key],
                    "rates": [report[key][k] for k in RATES],
                    "quantiles": [report[key]["latency_ms"][k] for k in ("p50", "p99")],
                },
            )
            for key, label in rows
        ]
        names = sorted({name for key, _ in rows for name in report[key]["per_class"]})
        context["per_class"] = [
            (name, [report[key]["per_class"].get(name) for key, _ in rows]) for name in names
        ]
        context["steps"] = rollout_steps(shown)
        if shown.state == RolloutState.RUNNING and shown.mode != RolloutMode.BLUE_GREEN:
            at_step = rollout_report(shown, current_step_only=True)
            context["ready"], context["why"] = rollout_gate.ready_to_advance(at_step)
            context["next_step"] = rollout_gate.next_step(shown)
            context["at_step"] = at_step
    context["can_control"] = request.user.has_perm(CAN_CONTROL_LINES)
    context["drives_itself"] = rollout_gate.drives_itself(line)
    return render(request, "monitoring/rollout.html", context)


@require_POST
@permission_required(CAN_CONTROL_LINES, raise_exception=True)
def act_on_rollout(request, pk):
    line = _line(request, pk)
    action, who = request.POST.get("action", ""), request.user.get_username()
    reason = request.POST.get("reason", "").strip()[:500]
    try:
        if action not in ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}", field="action")
        rollout = rollouts.running_rollout(line)
        if rollout is None:
            raise RolloutConflict(f"line {line.name} has no running rollout")
        if action == "advance":
            rollout = rollout_gate.advance_rollout(rollout=rollout, changed_by=who, reason=reason)
        elif action == "switch":
            rollout = rollouts.set_rollout_share(
                rollout=rollout, share=1.0 - rollout.share, changed_by=who, reason=reason
            )
        elif action == "promote":
            rollout = rollout_gate.promote_blue_green(
                rollout=rollout, changed_by=who, reason=reason
            )
        else:
            state = RolloutState.ROLLED_BACK if action == "rollback" else RolloutState.STOPPED
            rollout = rollouts.end_rollout(
                rollout=rollout, state=state, changed_by=who, reason=reason
            )
    except LoupeError as error:
        return JsonResponse(
            {"error": error.code, "message": error.message}, status=error.status_code
        )
    messages.success(request, f"Rollout of {rollout.challenger.name}: {action} done.")
    return redirect("monitoring:line-rollout", pk=line.pk)
