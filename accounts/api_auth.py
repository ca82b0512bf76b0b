"""API authentication for scripts: `Authorization: Bearer <API token>` of a Loupe user.

A view lists it before SessionAuthentication, which stays for the pages' own JavaScript (with
its CSRF check). HTTP Basic is not accepted: it made browsers prompt for a password and skipped
the CSRF check on a browser's multipart POSTs.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.tokens import ApiTokenRefused, authenticate_api_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None  # a browser's session, if any, is checked next
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw.strip():
            raise exceptions.AuthenticationFailed(
                "send your API token as 'Authorization: Bearer <token>' "
                "(create one on your API tokens page)"
            )
        try:
            token = authenticate_api_token(raw.strip())
        except ApiTokenRefused as refused:
            raise exceptions.AuthenticationFailed(refused.message) from refused
        return token.user, token

    def authenticate_header(self, request) -> str:
        # a Bearer challenge, so a 401 never makes a browser prompt for a password
        return 'Bearer realm="loupe-api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_auth.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A Loupe user's API token (created on the user's API tokens page).",
        }
