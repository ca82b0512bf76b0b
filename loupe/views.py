from django.shortcuts import redirect

from loupe.common.permissions import CAN_CONTROL_LINES, CAN_REVIEW


def home(request):
    """Each role starts where its daily work is."""
    user = request.user
    if user.has_perm(CAN_CONTROL_LINES):
        return redirect("inspection:lines")
    if user.has_perm(CAN_REVIEW):
        return redirect("review:queue")
    return redirect("labeling:data")
