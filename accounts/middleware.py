"""Sessions end after LOUPE_SESSION_IDLE_S without a person using the page.

Each request a person makes pushes the session's end back (as SESSION_SAVE_EVERY_REQUEST
would), except the requests a page's JavaScript makes on a timer (`X-Loupe-Background: 1`):
a review queue left open on a shared terminal must not keep its inspector logged in.
"""

BACKGROUND_HEADER = "HTTP_X_LOUPE_BACKGROUND"


class IdleSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if (
            session is not None
            and user is not None
            and user.is_authenticated
            and request.META.get(BACKGROUND_HEADER) != "1"
        ):
            # saving renews the server-side expiry by SESSION_COOKIE_AGE
            session.modified = True
        return response
