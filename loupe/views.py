from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from loupe.common.permissions import CAN_CONTROL_LINES, CAN_REVIEW
from loupe.health import health_report


def home(request):
    """Each role starts where its daily work is."""
    user = request.user
    if user.has_perm(CAN_CONTROL_LINES):
        return redirect("inspection:lines")
    if user.has_perm(CAN_REVIEW):
        return redirect("review:queue")
    return redirect("labeling:data")


@login_not_required
@never_cache
@require_safe
def health(request):
    """For a load balancer, without a login: 200 when every check passes, else 503 with the
    failing ones (loupe.health)."""
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
