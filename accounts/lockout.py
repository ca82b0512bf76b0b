"""What a locked-out login sees: the login page again, saying why and for how long (axes calls
`lockout_response` through AXES_LOCKOUT_CALLABLE instead of its bare text answer)."""

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


def cooloff_minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def lockout_response(request, original_response=None, credentials=None):
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "locked_out": True,
        "cooloff_minutes": cooloff_minutes(),
        "next": request.POST.get("next", request.GET.get("next", "")),
    }
    return render(
        request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE
    )
